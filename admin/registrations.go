package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// owns reports whether the caller may see and change w.
func owns(who *rswebhooks.Identity, w *rswebhooks.Webhook) bool {
	return who.Admin || w.User.ID == who.ID
}

// lookup loads a webhook the caller may see; another user's webhook is
// answered exactly like a missing one.
func (h *Handler) lookup(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity, id string) (*rswebhooks.Webhook, bool) {
	wh, err := h.getWebhook(r.Context(), id)
	if err == nil && !owns(who, wh) {
		err = rswebhooks.ErrNotFound
	}
	if err = hideUnreadable(who, err); err != nil {
		storeError(w, r, err, "webhook")
		return nil, false
	}
	return wh, true
}

// getWebhook loads a webhook by a path id. Ids are case-insensitive, as in
// the stock store (which lower-cases them) and in PUT's body Id compare; the
// ids this handler generates are lower-case hex.
func (h *Handler) getWebhook(ctx context.Context, id string) (*rswebhooks.Webhook, error) {
	wh, err := h.store.GetWebhook(ctx, id)
	if errors.Is(err, rswebhooks.ErrNotFound) {
		if l := strings.ToLower(id); l != id {
			return h.store.GetWebhook(ctx, l)
		}
	}
	return wh, err
}

// out makes a stored webhook ready for the wire (empty maps, not null; a
// rotation without its previous secret, and none once its grace period is
// over).
func (h *Handler) out(wh *rswebhooks.Webhook) *rswebhooks.Webhook {
	c := *wh
	c.Rotation = nil
	if wh.Rotation.Active(h.now()) {
		r := *wh.Rotation
		r.PreviousSecret = ""
		c.Rotation = &r
	}
	if c.Headers == nil {
		c.Headers = map[string]string{}
	}
	if c.Properties == nil {
		c.Properties = map[string]json.RawMessage{}
	}
	if c.Filters == nil {
		c.Filters = []string{rswebhooks.FilterAll}
	}
	return &c
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	owner := who.ID
	if who.Admin {
		owner = ""
	}
	whs, err := h.store.ListWebhooks(r.Context(), owner)
	if err != nil {
		storeError(w, r, err, "webhooks")
		return
	}
	res := make([]*rswebhooks.Webhook, 0, len(whs))
	for _, wh := range whs {
		if owns(who, wh) {
			res = append(res, h.out(wh))
		}
	}
	WriteJSON(w, http.StatusOK, res)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	if wh, ok := h.lookup(w, r, who, r.PathValue("id")); ok {
		WriteJSON(w, http.StatusOK, h.out(wh))
	}
}

// readWebhook reads, decodes and validates a request body.
func (h *Handler) readWebhook(w http.ResponseWriter, r *http.Request, keepSecret string) (*webhookIn, *rswebhooks.Webhook, bool) {
	if !jsonContentType(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type: must be application/json (or text/json), with no charset other than utf-8")
		return nil, nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body: must be at most "+itoa(h.maxBody)+" bytes")
			return nil, nil, false
		}
		writeError(w, http.StatusBadRequest, "request body: cannot be read")
		return nil, nil, false
	}
	in, err := decodeWebhook(body)
	if err == nil {
		var wh *rswebhooks.Webhook
		if wh, err = h.buildWebhook(in, keepSecret); err == nil {
			return in, wh, true
		}
	}
	writeError(w, http.StatusBadRequest, err.Error())
	return nil, nil, false
}

// jsonContentType reports whether a request body of this Content-Type is
// read: application/json and text/json, as the stock controller, any
// +json type, and none at all (scripts often omit it). The body is read as
// UTF-8, so any other charset is refused rather than misread.
func jsonContentType(ct string) bool {
	if strings.TrimSpace(ct) == "" {
		return true
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !utf8Charset(params) {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// utf8Charset reports whether the charset parameter is absent or UTF-8.
func utf8Charset(params map[string]string) bool {
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "utf8")
}

func (h *Handler) verify(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity, wh *rswebhooks.Webhook) bool {
	if h.limited(w, who, "registration") {
		return false
	}
	if err := h.verifier.Verify(r.Context(), wh); err != nil {
		zerolog.Ctx(r.Context()).Info().Str("webhook_id", wh.ID).Str("uri", rswebhooks.RedactURL(wh.URI)).Str("reason", err.Error()).Msg("receiver verification failed")
		var refusal interface{ AddressRefused() bool }
		if !who.Admin && !(errors.As(err, &refusal) && refusal.AddressRefused()) {
			// One answer whatever failed, so the echo check is no port scanner.
			writeError(w, http.StatusBadRequest, uniformEchoError)
			return false
		}
		writeError(w, http.StatusBadRequest, "WebHookUri: receiver verification failed: "+err.Error())
		return false
	}
	return true
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	_, wh, ok := h.readWebhook(w, r, "")
	if !ok {
		return
	}
	wh.ID = randomHex(16) // the client's Id is ignored, as the stock controller does
	wh.User = who.User
	if !who.Admin && h.maxPerUser > 0 {
		mine, err := h.store.ListWebhooks(r.Context(), who.ID)
		if err != nil {
			storeError(w, r, err, "webhooks")
			return
		}
		if len(mine) >= h.maxPerUser {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("webhooks: a user may register at most %d (the daemon's --max-webhooks-per-user); delete one first or ask an administrator", h.maxPerUser))
			return
		}
	}
	if !h.verify(w, r, who, wh) {
		return
	}
	now := h.now().UTC()
	wh.CreatedUTC, wh.UpdatedUTC = now, now
	if err := h.store.CreateWebhook(r.Context(), wh); err != nil {
		storeError(w, r, err, "webhook")
		return
	}
	zerolog.Ctx(r.Context()).Info().Str("webhook_id", wh.ID).Str("uri", rswebhooks.RedactURL(wh.URI)).Strs("filters", wh.Filters).Msg("webhook registered")
	w.Header().Set("Location", location(r, wh.ID))
	WriteJSON(w, http.StatusCreated, h.out(wh))
}

// location is the absolute URL of a registration, like the stock
// CreatedAtRoute: scheme and host of the request, path of this API.
func location(r *http.Request, id string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: r.Host, Path: "/api/webhooks/registrations/" + id}
	return u.String()
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	id := r.PathValue("id")
	cur, err := h.getWebhook(r.Context(), id)
	if err == nil && !owns(who, cur) {
		err = rswebhooks.ErrNotFound
	}
	err = hideUnreadable(who, err)
	keep := ""
	if err == nil {
		keep = cur.Secret
	}
	in, wh, ok := h.readWebhook(w, r, keep)
	if !ok {
		return
	}
	if !strings.EqualFold(in.ID, id) {
		writeError(w, http.StatusBadRequest, "Id: the body's Id must equal the id in the path")
		return
	}
	if err != nil {
		storeError(w, r, err, "webhook")
		return
	}
	wh.ID, wh.User, wh.CreatedUTC = cur.ID, cur.User, cur.CreatedUTC // ownership is kept
	if in.Ordered == nil {
		wh.Ordered = cur.Ordered
	}
	if in.MaxPerSecond == nil {
		wh.MaxPerSecond = cur.MaxPerSecond
	}
	if who.Admin && in.User != nil && in.User.ID != "" && !strings.EqualFold(in.User.ID, cur.User.ID) {
		// An administrator gives the webhook to another user (for example
		// when its owner left); access is checked for the new owner.
		if in.User.Name == "" {
			writeError(w, http.StatusBadRequest, "User.Name: required when an administrator gives a webhook to another user (User.Id)")
			return
		}
		wh.User = rswebhooks.User{ID: in.User.ID, Name: in.User.Name}
		zerolog.Ctx(r.Context()).Info().Str("webhook_id", wh.ID).Str("from", cur.User.ID).Str("to", wh.User.ID).Msg("webhook given to another owner")
	}
	if !h.verify(w, r, who, wh) {
		return
	}
	wh.UpdatedUTC = h.now().UTC()
	if err := h.store.UpdateWebhook(r.Context(), wh); err != nil {
		storeError(w, r, err, "webhook")
		return
	}
	zerolog.Ctx(r.Context()).Info().Str("webhook_id", wh.ID).Str("uri", rswebhooks.RedactURL(wh.URI)).Strs("filters", wh.Filters).Bool("paused", wh.IsPaused).Msg("webhook updated")
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	wh, err := h.getWebhook(r.Context(), r.PathValue("id"))
	if ue, ok := asUnreadable(err); ok && (who.Admin || ue.Owner == who.ID) {
		// A record that cannot be decoded is deleted by id all the same.
		wh, err = &rswebhooks.Webhook{ID: ue.ID}, nil
	} else if err == nil && !owns(who, wh) {
		err = rswebhooks.ErrNotFound
	}
	if err != nil {
		if _, ok := asUnreadable(err); ok {
			err = rswebhooks.ErrNotFound
		}
		storeError(w, r, err, "webhook")
		return
	}
	if err := h.store.DeleteWebhook(r.Context(), wh.ID); err != nil {
		storeError(w, r, err, "webhook")
		return
	}
	zerolog.Ctx(r.Context()).Info().Str("webhook_id", wh.ID).Msg("webhook deleted")
	w.WriteHeader(http.StatusOK)
}

// deleteAll deletes the caller's own webhooks (also for administrators and
// the operator: never anybody else's).
func (h *Handler) deleteAll(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	n, err := h.store.DeleteWebhooksOf(r.Context(), who.ID)
	if err != nil {
		storeError(w, r, err, "webhooks")
		return
	}
	zerolog.Ctx(r.Context()).Info().Int("deleted", n).Msg("webhooks of the caller deleted")
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) listFilters(w http.ResponseWriter, _ *http.Request, _ *rswebhooks.Identity) {
	WriteJSON(w, http.StatusOK, h.filters)
}

// Me is the answer of GET /api/webhooks/me: who the caller is.
type Me struct {
	ID              string `json:"Id"`
	Name            string `json:"Name"`
	IsAdministrator bool   `json:"IsAdministrator"`
	IsOperator      bool   `json:"IsOperator"`
}

func (h *Handler) me(w http.ResponseWriter, _ *http.Request, id *rswebhooks.Identity) {
	WriteJSON(w, http.StatusOK, Me{ID: id.ID, Name: id.Name, IsAdministrator: id.Admin, IsOperator: id.Operator})
}
