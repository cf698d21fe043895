package admin

import (
	"errors"
	"net/http"
	"slices"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// unreadableMessage answers a read of a record the store cannot decode.
func unreadableMessage(ue *rswebhooks.UnreadableError) string {
	return ue.Kind + " " + ue.ID + ": the stored record cannot be decoded; an administrator can see it at GET /api/webhooks/unreadable and delete it by id"
}

// listUnreadable answers GET /api/webhooks/unreadable: the records the
// store cannot decode (administrators only).
func (h *Handler) listUnreadable(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	if !who.Admin {
		writeError(w, http.StatusForbidden, "unreadable records: administrators only")
		return
	}
	us, err := h.store.UnreadableRecords(r.Context())
	if err != nil {
		storeError(w, r, err, "unreadable records")
		return
	}
	if us == nil {
		us = []rswebhooks.Unreadable{}
	}
	WriteJSON(w, http.StatusOK, us)
}

// deleteUnreadable answers DELETE /api/webhooks/unreadable/{kind}/{id}:
// removes a record without decoding it (administrators only). Only records
// the store reports unreadable may be deleted this way.
func (h *Handler) deleteUnreadable(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	if !who.Admin {
		writeError(w, http.StatusForbidden, "unreadable records: administrators only")
		return
	}
	kind, id := r.PathValue("kind"), r.PathValue("id")
	if !slices.Contains(rswebhooks.RecordKinds(), kind) {
		writeError(w, http.StatusBadRequest, "kind: must be one of webhook, event, delivery, attempt")
		return
	}
	us, err := h.store.UnreadableRecords(r.Context())
	if err != nil {
		storeError(w, r, err, "unreadable records")
		return
	}
	if !slices.ContainsFunc(us, func(u rswebhooks.Unreadable) bool { return u.Kind == kind && u.ID == id }) {
		writeError(w, http.StatusNotFound, kind+" "+id+": no such unreadable record (readable records are deleted through their own endpoints)")
		return
	}
	if err := h.store.DeleteUnreadable(r.Context(), kind, id); err != nil {
		storeError(w, r, err, kind)
		return
	}
	zerolog.Ctx(r.Context()).Warn().Str("kind", kind).Str("id", id).Msg("unreadable record deleted")
	w.WriteHeader(http.StatusOK)
}

// asUnreadable returns the UnreadableError in err, if any.
func asUnreadable(err error) (*rswebhooks.UnreadableError, bool) {
	var ue *rswebhooks.UnreadableError
	ok := errors.As(err, &ue)
	return ue, ok
}

// hideUnreadable answers an unreadable webhook like a missing one to
// callers other than its owner and administrators.
func hideUnreadable(who *rswebhooks.Identity, err error) error {
	if ue, ok := asUnreadable(err); ok && ue.Kind == rswebhooks.RecordWebhook && !who.Admin && ue.Owner != who.ID {
		return rswebhooks.ErrNotFound
	}
	return err
}
