// Package webui serves the Webhooks grid and the Events view: a single-page
// web app on the admin listener over the registrations API and its
// extensions (/api/webhooks/...: registrations, deliveries, replay, the
// events feed and the unmatched calls). Its assets are
// embedded with go:embed, written in plain JavaScript and CSS with no build
// step, and make no request outside their own origin.
//
// Security model:
//
//   - A strict Content-Security-Policy (see CSP) allows only same-origin
//     scripts, styles and fetches, no inline code, no framing and no form
//     posts elsewhere.
//   - CSRF: the page keeps the bearer token in sessionStorage (per tab,
//     gone when the tab closes) and sends it only in the Authorization header
//     of fetch calls. The API never reads a cookie, so a cross-site form or
//     image can reach the API only without credentials (401); and a
//     cross-origin fetch that sets Authorization needs a CORS preflight the
//     admin listener never grants.
//   - The app builds the DOM with textContent, never innerHTML, so webhook
//     fields cannot inject markup.
package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// CSP is the Content-Security-Policy sent with every response.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// contentTypes maps an asset's extension to its Content-Type.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

type handler struct {
	files map[string]asset // request path → asset
}

// Handler returns the web app's handler. Mount it at "/" on the admin
// listener, after the more specific API, health and metrics routes:
//
//	mux.Handle("/", webui.Handler())
//
// It answers GET and HEAD for "/" (index.html), "/index.html", "/app.js",
// "/app.css" and "/favicon.svg"; 404 for other paths and 405 for other
// methods, every response with the security headers.
func Handler() http.Handler {
	h := &handler{files: make(map[string]asset)}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(b)
		h.files["/"+strings.TrimPrefix(p, "assets/")] = asset{
			body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`,
		}
		return nil
	})
	if err != nil { // the embedded tree is fixed at build time
		panic("webui: reading embedded assets: " + err.Error())
	}
	h.files["/"] = h.files["/index.html"]
	return h
}

// setSecurityHeaders sets the headers every answer carries.
func setSecurityHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	a, ok := h.files[r.URL.Path]
	if !ok {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// Assets are small and not fingerprinted: revalidate each time (a 304
	// costs one round trip), so an upgraded daemon never serves a stale app.
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
