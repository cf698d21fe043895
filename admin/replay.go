package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/identity"
)

// Replay bounds.
const (
	// DefaultMaxReplay is how many events one replay call queues at most
	// (Options.MaxReplay); past it the answer has Done false and a Next
	// request to continue with.
	DefaultMaxReplay = 1000
	// MaxReplayScan bounds the events one call reads (most may not match
	// the webhook's filters), with the same way to continue.
	MaxReplayScan = 20000
)

// The replay's wire types live in the root package (shared with adminclient).
type (
	ReplayRequest = rswebhooks.ReplayRequest
	ReplayResult  = rswebhooks.ReplayResult
)

// decodeReplay reads and checks a replay body against now.
func decodeReplay(body []byte, now time.Time) (*ReplayRequest, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, bad("request body: a JSON object {\"Since\": \"<RFC 3339 time>\", \"Until\": \"<RFC 3339 time>\"} is required")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, bad("request body: must be a JSON object with Since and optionally Until and After: %v", err)
	}
	var in ReplayRequest
	for k, v := range raw {
		var err error
		switch k {
		case "Since":
			err = json.Unmarshal(v, &in.Since)
		case "Until":
			err = json.Unmarshal(v, &in.Until)
		case "After":
			err = json.Unmarshal(v, &in.After)
		case "DryRun":
			err = json.Unmarshal(v, &in.DryRun)
		default:
			return nil, bad("%s: unknown field; a replay takes Since, Until, After and DryRun", k)
		}
		if err != nil {
			what := "an RFC 3339 time such as 2026-11-27T10:00:00Z"
			switch k {
			case "After":
				what = "an event id (the After of an earlier answer's Next)"
			case "DryRun":
				what = "true or false"
			}
			return nil, bad("%s: must be %s", k, what)
		}
	}
	switch {
	case in.Since.IsZero():
		return nil, bad("Since: required, an RFC 3339 time such as 2026-11-27T10:00:00Z")
	case in.Since.After(now):
		return nil, bad("Since: must not be in the future, got %s", in.Since.UTC().Format(time.RFC3339Nano))
	case in.After != "" && !validULID(in.After):
		return nil, bad("After: must be an event id (26 characters) from an earlier answer's Next, got %q", in.After)
	}
	if in.Until.IsZero() {
		in.Until = now
	}
	if !in.Since.Before(in.Until) {
		return nil, bad("Until: must be after Since (%s), got %s", in.Since.UTC().Format(time.RFC3339Nano), in.Until.UTC().Format(time.RFC3339Nano))
	}
	return &in, nil
}

func (h *Handler) replay(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	wh, ok := h.lookup(w, r, who, r.PathValue("id"))
	if !ok {
		return
	}
	if !jsonContentType(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type: must be application/json (or text/json), with no charset other than utf-8")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body: must be at most "+itoa(h.maxBody)+" bytes")
			return
		}
		writeError(w, http.StatusBadRequest, "request body: cannot be read")
		return
	}
	now := h.now().UTC()
	in, err := decodeReplay(body, now)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if wh.IsPaused {
		writeError(w, http.StatusConflict, "webhook "+wh.ID+" is paused: resume it (IsPaused false) before replaying to it")
		return
	}
	if h.limited(w, who, "replay") {
		return
	}
	ctx := r.Context()
	log := zerolog.Ctx(ctx)
	from, to := idAt(in.Since), idAt(in.Until)
	if in.After != "" && in.After >= from {
		from = in.After + "0" // just after it: ids are 26 characters
	}
	res := ReplayResult{}
	var ds []*rswebhooks.Delivery
	scanned, last := 0, ""
	err = h.store.ScanEvents(ctx, from, to, false, func(e *rswebhooks.Event) (bool, error) {
		if res.Matched == h.maxReplay || scanned == MaxReplayScan {
			res.Next = &ReplayRequest{Since: in.Since, Until: in.Until, After: last}
			return false, nil
		}
		scanned++
		last = e.ID
		if !wh.Matches(e.Filter) {
			return true, nil
		}
		res.Matched++
		if !h.ownerMayRead(ctx, log, wh, e) {
			return true, nil
		}
		ds = append(ds, &rswebhooks.Delivery{
			ID: rswebhooks.NewID(now), WebhookID: wh.ID, EventID: e.ID, Event: *e,
			State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now, UpdatedUTC: now,
			// The engine checks access again just before the first send.
			AccessPending: true,
		})
		return true, nil
	})
	if err != nil {
		storeError(w, r, err, "events")
		return
	}
	if in.DryRun {
		res.Queued, res.Done = len(ds), res.Next == nil
		if res.Next != nil {
			res.Next.DryRun = true
		}
		WriteJSON(w, http.StatusOK, res)
		return
	}
	res.Queued, err = h.store.PutDeliveries(ctx, ds)
	if res.Queued > 0 {
		h.wake()
	}
	if err != nil {
		log.Error().Err(err).Int("queued", res.Queued).Str("webhook_id", wh.ID).Msg("replay cut short")
		storeError(w, r, err, "replayed deliveries")
		return
	}
	res.Done = res.Next == nil
	log.Info().Str("webhook_id", wh.ID).Time("since", in.Since).Time("until", in.Until).
		Int("matched", res.Matched).Int("queued", res.Queued).Bool("done", res.Done).Msg("replay queued")
	WriteJSON(w, http.StatusAccepted, res)
}

// ownerMayRead decides, for a replay, whether the webhook's owner may read
// the event: a transient failure queues it anyway (the engine decides before
// sending, on its retry schedule); a decided "no" (denied, access unknown,
// owner missing) leaves it out.
// Without an access checker only the operator's webhooks get events.
func (h *Handler) ownerMayRead(ctx context.Context, log *zerolog.Logger, wh *rswebhooks.Webhook, e *rswebhooks.Event) bool {
	if wh.User.ID == identity.OperatorID {
		return true // the operator acts as an administrator
	}
	if h.access == nil {
		return false
	}
	ok, err := h.access.CanRead(ctx, wh.User, e)
	switch {
	case err == nil:
		return ok
	case errors.Is(err, rswebhooks.ErrAccessUnknown), errors.Is(err, rswebhooks.ErrOwnerMissing):
		return false
	default:
		log.Warn().Err(err).Str("webhook_id", wh.ID).Str("event_id", e.ID).Msg("replay: cannot decide the owner's access now; queued for the delivery engine to decide")
		return true
	}
}

// wake tells the delivery engine that deliveries wait, when it can be told.
func (h *Handler) wake() {
	if wk, ok := h.deliveries.(interface{ Wake() }); ok {
		wk.Wake()
	}
}
