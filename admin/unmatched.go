package admin

import (
	"net/http"

	"github.com/rswebhooks/rswebhooks"
)

// Unmatched lists the successful mutating calls no detection rule matched
// (implemented by *detect.Unmatched).
type Unmatched interface {
	Routes() []rswebhooks.UnmatchedRoute
}

func (h *Handler) listUnmatched(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	if !who.Admin {
		writeError(w, http.StatusForbidden, "unmatched calls: administrators only")
		return
	}
	out := []rswebhooks.UnmatchedRoute{}
	if h.unmatched != nil {
		out = append(out, h.unmatched.Routes()...)
	}
	WriteJSON(w, http.StatusOK, out)
}
