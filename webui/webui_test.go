package webui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/rswebhooks/rswebhooks/webui"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	h := webui.Handler()
	want := map[string]string{
		"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
			"img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"X-Frame-Options":        "DENY",
	}
	for _, tc := range []struct {
		method, path string
		status       int
		cache        string
	}{
		{"GET", "/", 200, "no-cache"},
		{"GET", "/index.html", 200, "no-cache"},
		{"HEAD", "/app.js", 200, "no-cache"},
		{"GET", "/app.css", 200, "no-cache"},
		{"GET", "/nope", 404, "no-store"},
		{"GET", "/assets/app.js", 404, "no-store"},
		{"POST", "/", 405, "no-store"},
		{"DELETE", "/app.js", 405, "no-store"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			res := get(t, h, tc.method, tc.path, nil)
			if res.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", res.StatusCode, tc.status)
			}
			for k, v := range want {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if got := res.Header.Get("Cache-Control"); got != tc.cache {
				t.Errorf("Cache-Control = %q, want %q", got, tc.cache)
			}
			if tc.status == 405 && res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow = %q", res.Header.Get("Allow"))
			}
			if res.Header.Get("Set-Cookie") != "" {
				t.Errorf("Set-Cookie = %q; the app must never use cookies", res.Header.Get("Set-Cookie"))
			}
		})
	}
}

func TestContentTypesAndRevalidation(t *testing.T) {
	h := webui.Handler()
	for path, ct := range map[string]string{
		"/":            "text/html; charset=utf-8",
		"/app.js":      "text/javascript; charset=utf-8",
		"/app.css":     "text/css; charset=utf-8",
		"/favicon.svg": "image/svg+xml",
	} {
		t.Run(path, func(t *testing.T) {
			res := get(t, h, "GET", path, nil)
			if got := res.Header.Get("Content-Type"); got != ct {
				t.Fatalf("Content-Type = %q, want %q", got, ct)
			}
			if b := body(t, res); len(b) < 100 {
				t.Fatalf("body is %d bytes", len(b))
			}
			etag := res.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			again := get(t, h, "GET", path, map[string]string{"If-None-Match": etag})
			if again.StatusCode != http.StatusNotModified {
				t.Fatalf("If-None-Match: status = %d, want 304", again.StatusCode)
			}
		})
	}
}

// assets walks the embedded files as served.
func assets(t *testing.T) map[string]string {
	t.Helper()
	h := webui.Handler()
	out := map[string]string{}
	for _, p := range []string{"/index.html", "/app.js", "/app.css", "/favicon.svg"} {
		out[p] = body(t, get(t, h, "GET", p, nil))
	}
	return out
}

var (
	jsComment   = regexp.MustCompile(`(?m)^\s*//.*$|/\*[\s\S]*?\*/`)
	htmlComment = regexp.MustCompile(`<!--[\s\S]*?-->`)
	placeholder = regexp.MustCompile(`placeholder="[^"]*"`)
	svgNS       = regexp.MustCompile(`xmlns="http://www\.w3\.org/2000/svg"`)
	// A link to the project's documentation is navigation the user chooses,
	// opened in a new tab, never a request the page makes.
	docsLink    = regexp.MustCompile(`<a href="https://github\.com/rswebhooks/rswebhooks[^"]*" target="_blank" rel="noopener noreferrer">`)
	externalURL = regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|https?://`)
)

func TestNoExternalURLs(t *testing.T) {
	for p, s := range assets(t) {
		s = jsComment.ReplaceAllString(s, "")
		s = htmlComment.ReplaceAllString(s, "")
		s = placeholder.ReplaceAllString(s, "")
		s = svgNS.ReplaceAllString(s, "") // an XML namespace name, never fetched
		s = docsLink.ReplaceAllString(s, "")
		if m := externalURL.FindString(s); m != "" {
			t.Errorf("%s refers to %q outside the origin", p, m)
		}
		for _, bad := range []string{"@import", "fonts.googleapis", "cdn."} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
	}
}

func TestScannerFindsExternalURLs(t *testing.T) {
	for _, s := range []string{`<script src="https://cdn.example.com/x.js">`, `url(//fonts.example.org/a.woff)`, `fetch("http://10.0.0.1/")`} {
		if externalURL.FindString(s) == "" {
			t.Errorf("the scanner misses %q", s)
		}
	}
}

func TestNoInlineScriptOrStyle(t *testing.T) {
	html := assets(t)["/index.html"]
	scripts := regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(html, -1)
	if len(scripts) != 1 {
		t.Fatalf("want exactly one <script>, got %d", len(scripts))
	}
	for _, s := range scripts {
		if !strings.Contains(s[1], `src="/app.js"`) || strings.TrimSpace(s[2]) != "" {
			t.Errorf("inline script: %q", s[0])
		}
	}
	for _, re := range []string{`(?i)<style\b`, `(?i)\sstyle\s*=`, `(?i)\son[a-z]+\s*=`, `(?i)javascript:`} {
		if m := regexp.MustCompile(re).FindString(html); m != "" {
			t.Errorf("index.html has %q (blocked by the CSP)", m)
		}
	}
	if !strings.Contains(html, `<link rel="stylesheet" href="/app.css">`) {
		t.Error("index.html does not load /app.css")
	}
}

func TestScriptAvoidsInnerHTMLAndCookies(t *testing.T) {
	js := jsComment.ReplaceAllString(assets(t)["/app.js"], "")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "document.cookie", "eval(", "new Function", "localStorage", ".style."} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	for _, want := range []string{"sessionStorage", "crypto.getRandomValues", "Authorization", "credentials: 'omit'", "/me"} {
		if !strings.Contains(js, want) {
			t.Errorf("app.js lacks %s", want)
		}
	}
}

// Every id the script looks up exists in index.html (a typo would only show
// up in the browser).
func TestScriptIDsExist(t *testing.T) {
	a := assets(t)
	html, js := a["/index.html"], a["/app.js"]
	for _, m := range regexp.MustCompile(`\$\('([a-z0-9-]+)'\)`).FindAllStringSubmatch(js, -1) {
		if !strings.Contains(html, `id="`+m[1]+`"`) {
			t.Errorf("app.js uses #%s, missing from index.html", m[1])
		}
	}
}
