package admin

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/rswebhooks/rswebhooks"
)

// Delivery listing limits.
const (
	DefaultDeliveryLimit = 50
	MaxDeliveryLimit     = 500
)

// DeliveryDetail is the answer of GET /api/webhooks/deliveries/{id}: the
// delivery with its attempt history in Attempts (replacing the count, which
// moves to AttemptCount).
type DeliveryDetail struct {
	rswebhooks.Delivery
	AttemptCount int                   `json:"AttemptCount"`
	Attempts     []*rswebhooks.Attempt `json:"Attempts"`
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (h *Handler) listDeliveries(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	wh, ok := h.lookup(w, r, who, r.PathValue("id"))
	if !ok {
		return
	}
	limit := DefaultDeliveryLimit
	if q := r.URL.Query(); q.Has("limit") {
		s := q.Get("limit")
		n, err := strconv.Atoi(s)
		if err != nil || len(q["limit"]) > 1 || strings.TrimLeft(s, "0123456789") != "" || n < 1 || n > MaxDeliveryLimit {
			writeError(w, http.StatusBadRequest, "limit: must be an integer between 1 and "+strconv.Itoa(MaxDeliveryLimit))
			return
		}
		limit = n
	}
	ds, err := h.store.ListDeliveries(r.Context(), wh.ID, limit)
	if err != nil {
		storeError(w, r, err, "deliveries")
		return
	}
	out := []*rswebhooks.Delivery{}
	for _, d := range ds {
		if visible(who, d) {
			out = append(out, d)
		}
	}
	WriteJSON(w, http.StatusOK, out)
}

// visible reports whether the caller may see d: a delivery whose access is
// still undecided (or could not be decided) may tell of an event its owner
// may not read, so only administrators see it.
func visible(who *rswebhooks.Identity, d *rswebhooks.Delivery) bool {
	return who.Admin || !d.AccessPending
}

// delivery loads a delivery whose webhook the caller may see. Deliveries of
// deleted webhooks are visible to administrators only.
func (h *Handler) delivery(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) (*rswebhooks.Delivery, *rswebhooks.Webhook, bool) {
	id := r.PathValue("id")
	d, err := h.store.GetDelivery(r.Context(), id)
	var wh *rswebhooks.Webhook
	if err == nil {
		wh, err = h.store.GetWebhook(r.Context(), d.WebhookID)
		err = hideUnreadable(who, err)
		switch {
		case err == nil && (!owns(who, wh) || !visible(who, d)):
			err = rswebhooks.ErrNotFound
		case err != nil && who.Admin:
			err, wh = nil, nil
		}
	}
	if err != nil {
		storeError(w, r, err, "delivery")
		return nil, nil, false
	}
	return d, wh, true
}

func (h *Handler) getDelivery(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	d, _, ok := h.delivery(w, r, who)
	if !ok {
		return
	}
	as, err := h.store.Attempts(r.Context(), d.ID)
	if err != nil {
		storeError(w, r, err, "attempts")
		return
	}
	if as == nil {
		as = []*rswebhooks.Attempt{}
	}
	WriteJSON(w, http.StatusOK, DeliveryDetail{Delivery: *d, AttemptCount: d.Attempts, Attempts: forCaller(as, who, h.showResp)})
}

func (h *Handler) redeliver(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	d, wh, ok := h.delivery(w, r, who)
	if !ok {
		return
	}
	if wh == nil {
		writeError(w, http.StatusConflict, "delivery "+d.ID+": its webhook was deleted; it cannot be redelivered")
		return
	}
	if h.limited(w, who, "redeliver") {
		return
	}
	var err error
	if h.deliveries != nil {
		d, err = h.deliveries.Redeliver(r.Context(), d.ID)
	} else {
		d, err = h.store.Redeliver(r.Context(), d.ID, h.now())
	}
	if err != nil {
		storeError(w, r, err, "delivery")
		return
	}
	WriteJSON(w, http.StatusAccepted, d)
}

// Ping notifications carry these values in Action and EventType (as deliver does).
const (
	PingAction    = "ping"
	PingEventType = "Ping"
)

func (h *Handler) ping(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	wh, ok := h.lookup(w, r, who, r.PathValue("id"))
	if !ok || h.limited(w, who, "ping") {
		return
	}
	var d *rswebhooks.Delivery
	var err error
	if h.deliveries != nil {
		d, err = h.deliveries.Ping(r.Context(), wh)
	} else {
		now := h.now().UTC()
		ev := rswebhooks.Event{ID: rswebhooks.NewID(now), Filter: PingAction, Type: PingEventType,
			ResourceID: wh.ID, UserID: who.ID, UserName: who.Name, Time: now}
		d = &rswebhooks.Delivery{ID: rswebhooks.NewID(now), WebhookID: wh.ID, EventID: ev.ID, Event: ev,
			Ping: true, State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now, UpdatedUTC: now}
		err = h.store.PutDelivery(r.Context(), d)
	}
	if err != nil {
		storeError(w, r, err, "ping delivery")
		return
	}
	WriteJSON(w, http.StatusAccepted, d)
}
