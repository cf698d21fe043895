package admin

import (
	_ "embed"
	"net/http"

	"github.com/rswebhooks/rswebhooks"
)

// openAPIDoc is the OpenAPI 3 description of the admin listener, checked in
// as openapi.json and tested against the route table.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3 document served at /api/webhooks/openapi.json.
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

func (h *Handler) openAPI(w http.ResponseWriter, _ *http.Request, _ *rswebhooks.Identity) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIDoc)
}
