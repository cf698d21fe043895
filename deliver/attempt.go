package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/signature"
)

const (
	maxResponseBody = 16 << 10 // recorded
	maxDrain        = 64 << 10 // read and dropped so the connection can be reused
)

// newRequest builds attempt n of d to w at time now: body, signatures and
// headers. skipped lists the webhook headers that were not applied.
func (e *Engine) newRequest(ctx context.Context, d *rswebhooks.Delivery, w *rswebhooks.Webhook, n int, now time.Time) (req *http.Request, skipped []string, err error) {
	off := e.linksOff
	if off == "" {
		off = "document links are off"
	}
	body, err := marshalBody(d, w, n, e.links, off, now, &e.notes)
	if err != nil {
		return nil, nil, err
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, w.URI, bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("webhook %s WebHookUri: %w", w.ID, errors.Unwrap(err))
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return nil, nil, fmt.Errorf("webhook %s WebHookUri: scheme must be http or https, got %q", w.ID, req.URL.Scheme)
	}
	h := req.Header
	h[hContentType] = []string{"application/json; charset=utf-8"}
	// During a secret rotation webhook-signature carries the new and the
	// previous secret's signatures, and ms-signature (one signature) the
	// one the rotation's stage calls for (see rswebhooks.Webhook.SigningSecrets).
	standard, ms := w.SigningSecrets(now)
	sig := ""
	for i, s := range standard {
		if i > 0 {
			sig += " "
		}
		sig += signature.SignStandard(s, d.ID, now, body)
	}
	// One backing array for the values (each capped, so appending to one
	// cannot overwrite the next).
	v := [...]string{signature.Sign(ms, body), d.ID, strconv.FormatInt(now.Unix(), 10), sig, e.userAgent}
	vs := v[:]
	h[hSignature] = vs[0:1:1]
	h[hWebhookID] = vs[1:2:2]
	h[hWebhookTimestamp] = vs[2:3:3]
	h[hWebhookSignature] = vs[3:4:4]
	h[hUserAgent] = vs[4:5:5]
	if len(w.Headers) == 0 {
		return req, nil, nil
	}
	names := make([]string, 0, len(w.Headers))
	for k := range w.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := w.Headers[k]
		ck := textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k))
		if rswebhooks.ReservedHeader(ck) || !validHeaderName(ck) || strings.ContainsAny(v, "\r\n\x00") {
			skipped = append(skipped, k)
			continue
		}
		h.Set(ck, v)
	}
	return req, skipped, nil
}

// The canonical forms of the headers every notification carries (set
// directly, without canonicalising them on each attempt).
var (
	hContentType      = textproto.CanonicalMIMEHeaderKey("Content-Type")
	hSignature        = textproto.CanonicalMIMEHeaderKey(signature.HeaderSignature)
	hWebhookID        = textproto.CanonicalMIMEHeaderKey(signature.HeaderWebhookID)
	hWebhookTimestamp = textproto.CanonicalMIMEHeaderKey(signature.HeaderWebhookTimestamp)
	hWebhookSignature = textproto.CanonicalMIMEHeaderKey(signature.HeaderWebhookSignature)
	hUserAgent        = textproto.CanonicalMIMEHeaderKey("User-Agent")
)

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// describeErr turns a client error into text fit for logs and the attempt
// record: URL redacted, timeouts named.
func describeErr(err error, timedOut bool, timeout time.Duration) string {
	if timedOut {
		return fmt.Sprintf("no answer within the attempt timeout of %s", timeout)
	}
	return rswebhooks.RedactError(err)
}

// attempt makes one attempt of d and records it. When ctx ends (shutdown)
// during the attempt nothing is recorded: the delivery stays pending. It
// reports whether it recorded an attempt, which ended d's lease; on every
// other way out the caller releases the lease.
func (e *Engine) attempt(ctx context.Context, d *rswebhooks.Delivery) (recorded bool) {
	log := &deliveryLog{base: &e.log, d: d}
	now := e.opts.Now().UTC()
	w, err := e.hooks.get(ctx, d.WebhookID)
	switch {
	case errors.Is(err, rswebhooks.ErrNotFound):
		e.finishWithout(ctx, log, d, rswebhooks.DeliveryFailed, ReasonWebhookDeleted, OutcomeFailed, now)
		return false
	case errors.Is(err, rswebhooks.ErrUnreadable):
		// Logged and counted once by the store; retrying cannot help.
		e.finishWithout(ctx, log, d, rswebhooks.DeliveryFailed, ReasonWebhookUnreadable, OutcomeFailed, now)
		return false
	case err != nil:
		if ctx.Err() == nil {
			log.get().Error().Err(err).Msg("read webhook; delivery stays pending")
		}
		return false
	case w.IsPaused && !d.Ping:
		e.finishWithout(ctx, log, d, rswebhooks.DeliverySkipped, ReasonWebhookPaused, OutcomeSkipped, now)
		return false
	case d.AccessPending && !d.Ping:
		if !e.decideAccess(ctx, log, d, w, now) {
			return false
		}
	}

	n := d.Attempts + 1
	actx, cancel := context.WithTimeout(ctx, e.opts.AttemptTimeout)
	defer cancel()
	a := &rswebhooks.Attempt{DeliveryID: d.ID, N: n, StartedUTC: now}
	req, skipped, err := e.newRequest(actx, d, w, n, now)
	if len(skipped) > 0 {
		e.warnOnce("headers/"+w.ID+"/"+w.UpdatedUTC.String(), func() *zerolog.Event {
			return log.get().Warn().Strs("headers", skipped)
		}, "webhook Headers that would replace notification headers or are invalid were not sent")
	}
	var (
		status int
		header http.Header
		dec    Decision
	)
	if err != nil {
		a.Error = err.Error()
		dec = Decision{Kind: Fail, Reason: err.Error()}
	} else {
		span := e.traceAttempt(req, d, w, n)
		defer func() { endAttemptSpan(span, status, a.Error) }()
		start := time.Now()
		resp, err := e.opts.Client.Do(req)
		if err == nil {
			status, header = resp.StatusCode, resp.Header
			var body []byte
			if resp.ContentLength != 0 { // 0: no body (204, or Content-Length: 0)
				body, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
			}
			_ = resp.Body.Close()
			a.ResponseBody = string(body)
			a.ResponseHeaders = resp.Header
			if err != nil && actx.Err() == nil {
				// The status is known; a broken body does not change it.
				err = nil
			}
		}
		a.Duration = time.Since(start)
		if ctx.Err() != nil {
			return false // shutting down: leave the delivery pending
		}
		if err != nil {
			timedOut := errors.Is(actx.Err(), context.DeadlineExceeded)
			a.Error = describeErr(err, timedOut, e.opts.AttemptTimeout)
			status, header = 0, nil
		}
		a.StatusCode = status
		e.m.Attempts.WithLabelValues(statusClass(status, err)).Inc()
		e.m.AttemptDuration.Observe(a.Duration.Seconds())
		dec = e.policy.Classify(status, err, header, now)
		if throttles(status) {
			observed := float64(e.opts.PerWebhookConcurrency) / max(a.Duration.Seconds(), 0.001)
			if w.Ordered {
				observed = 1 / max(a.Duration.Seconds(), 0.001)
			}
			if e.pace.slowdown(w.ID, w.MaxPerSecond, observed, dec.After, e.opts.Now()) {
				e.m.Slowdowns.WithLabelValues(strconv.Itoa(status)).Inc()
				log.get().Info().Int("status", status).Float64("rate", e.pace.rate(w.ID, w.MaxPerSecond, e.opts.Now())).
					Msg("receiver asked to slow down; webhook rate lowered")
			}
			e.wakeDispatcher()
		}
	}

	d.Attempts = n
	d.LastStatus = status
	d.LastError = a.Error
	d.UpdatedUTC = e.opts.Now().UTC()
	outcome := ""
	switch dec.Kind {
	case Success:
		d.State, d.Reason = rswebhooks.DeliverySucceeded, ""
		outcome = OutcomeSucceeded
	case Gone:
		if err := e.opts.Store.SetPaused(ctx, w.ID, true); err != nil {
			log.get().Error().Err(err).Msg("pause webhook after 410 Gone")
		}
		d.State, d.Reason = rswebhooks.DeliveryGone, ReasonGone
		outcome = OutcomeGone
	case Fail:
		d.State, d.Reason = rswebhooks.DeliveryFailed, dec.Reason
		outcome = OutcomeFailed
	default:
		if wait, ok := e.policy.Next(n, dec, e.opts.Rand()); ok {
			d.State, d.Reason = rswebhooks.DeliveryPending, dec.Reason
			d.NextUTC = now.Add(wait)
		} else {
			d.State = rswebhooks.DeliveryFailed
			d.Reason = fmt.Sprintf("gave up after %d attempts: %s", n, dec.Reason)
			outcome = OutcomeFailed
		}
	}
	if err := e.complete(ctx, d, a); err != nil {
		if ctx.Err() == nil {
			log.get().Error().Err(err).Msg("record attempt; delivery stays pending and will be retried")
		}
		return false
	}
	// The line, and the redacted URL in it, are built only when its level
	// is on (one per attempt; at the default level only failures log).
	ev := e.log.Debug()
	if d.State == rswebhooks.DeliveryFailed || d.State == rswebhooks.DeliveryGone {
		ev.Discard()
		ev = e.log.Warn()
	}
	if ev.Enabled() {
		ev.Str("delivery_id", d.ID).Str("webhook_id", d.WebhookID).Int("attempt", n).Int("status", status).Str("error", a.Error).Str("state", d.State).
			Str("url", rswebhooks.RedactURL(w.URI)).Time("next", d.NextUTC).Msg("delivery attempt")
	}
	if outcome != "" {
		e.m.Deliveries.WithLabelValues(outcome).Inc()
	}
	if outcome == OutcomeSucceeded && !d.Ping {
		e.m.Lag.Observe(max(0, e.opts.Now().Sub(d.Event.Time).Seconds()))
	}
	// Last, so whoever waits on it sees the metrics already counted.
	if e.onComplete != nil {
		e.onComplete(*d)
	}
	return true
}

// deliveryLog is the engine's logger with a delivery's ids, made when the
// first line about the delivery is logged: most attempts log nothing at the
// default level, and making it copies the logger's context.
type deliveryLog struct {
	base *zerolog.Logger
	d    *rswebhooks.Delivery
	l    *zerolog.Logger
}

func (dl *deliveryLog) get() *zerolog.Logger {
	if dl.l == nil {
		l := dl.base.With().Str("delivery_id", dl.d.ID).Str("webhook_id", dl.d.WebhookID).Logger()
		dl.l = &l
	}
	return dl.l
}

// finishWithout ends a delivery without an attempt.
func (e *Engine) finishWithout(ctx context.Context, log *deliveryLog, d *rswebhooks.Delivery, state, reason, outcome string, now time.Time) {
	d.State, d.Reason, d.UpdatedUTC = state, reason, now
	if err := e.opts.Store.Complete(ctx, d, nil); err != nil {
		if ctx.Err() == nil {
			log.get().Error().Err(err).Msg("record delivery end")
		}
		return
	}
	log.get().Info().Str("state", state).Str("reason", reason).Msg("delivery ended without an attempt")
	e.m.Deliveries.WithLabelValues(outcome).Inc()
	if e.onComplete != nil {
		e.onComplete(*d)
	}
}
