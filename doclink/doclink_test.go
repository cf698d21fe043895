package doclink_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	mimepkg "mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/doclink"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/reportserver"
)

type webhooks struct {
	mu sync.Mutex
	m  map[string]*rswebhooks.Webhook
}

func (w *webhooks) GetWebhook(_ context.Context, id string) (*rswebhooks.Webhook, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if h := w.m[id]; h != nil {
		return h, nil
	}
	return nil, errors.New("not found")
}

type accessFn func(owner rswebhooks.User, ev *rswebhooks.Event) (bool, error)

func (f accessFn) CanRead(_ context.Context, owner rswebhooks.User, ev *rswebhooks.Event) (bool, error) {
	return f(owner, ev)
}

type fixture struct {
	links   *doclink.Links
	srv     *httptest.Server
	sim     *simulator.Server
	hooks   *webhooks
	now     time.Time
	allowed bool
	mu      sync.Mutex
	reg     *prometheus.Registry
}

func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{now: time.Now(), allowed: true, hooks: &webhooks{m: map[string]*rswebhooks.Webhook{
		"w1": {ID: "w1", User: rswebhooks.User{ID: "u1", Name: "alice"}}}}, reg: prometheus.NewRegistry()}
	f.sim = simulator.New(simulator.Options{})
	up := httptest.NewServer(f.sim)
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	rs, err := reportserver.New(reportserver.Options{BaseURL: u, User: "admin", Password: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	base, _ := url.Parse(f.srv.URL)
	f.links, err = doclink.New(doclink.Options{Key: doclink.NewKey(), BaseURL: base, TTL: time.Hour,
		Webhooks: f.hooks, Documents: rs, APIVersion: "v3", Now: f.clock, Metrics: doclink.NewMetrics(f.reg),
		Access: accessFn(func(owner rswebhooks.User, ev *rswebhooks.Event) (bool, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if owner.ID != "u1" || ev.Filter != rswebhooks.FilterTasks || ev.ResourceID == "" {
				return false, nil
			}
			return f.allowed, nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle(doclink.PathPrefix, f.links)
	return f
}

func (f *fixture) clock() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }

func (f *fixture) get(t *testing.T, method, link string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, link, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, b
}

func TestLinks(t *testing.T) {
	f := setup(t)
	tasks, err := f.sim.SeedTasks(1, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.sim.SetDocumentSize(tasks[0], 1<<20+3); err != nil {
		t.Fatal(err)
	}
	x, err := f.sim.RunTask(tasks[0])
	if err != nil {
		t.Fatal(err)
	}
	doc := x.DocumentIds[0]
	r, _, name, mime, _ := f.sim.DocumentContent(doc)
	want := sha256.New()
	_, _ = io.Copy(want, r)
	ev := &rswebhooks.Event{Filter: rswebhooks.FilterTasks, ResourceID: tasks[0]}
	link := f.links.URL("w1", ev, doc, f.clock())
	if !strings.HasPrefix(link, f.srv.URL+doclink.PathPrefix) {
		t.Fatalf("link %s", link)
	}

	status, h, body := f.get(t, http.MethodGet, link)
	if sum := sha256.Sum256(body); status != 200 || !bytes.Equal(sum[:], want.Sum(nil)) {
		t.Fatalf("GET link: %d, %d bytes (sha differs: %v)", status, len(body), !bytes.Equal(sum[:], want.Sum(nil)))
	}
	disp, params, _ := mimepkg.ParseMediaType(h.Get("Content-Disposition"))
	if h.Get("Content-Type") != mime || h.Get("Content-Length") != "1048579" ||
		disp != "attachment" || params["filename"] != name || h.Get("Cache-Control") != "private, no-store" {
		t.Errorf("headers %v", h)
	}
	if status, _, _ := f.get(t, http.MethodPost, link); status != http.StatusMethodNotAllowed {
		t.Errorf("POST link: %d", status)
	}

	_, _, notFoundBody := f.get(t, http.MethodGet, f.srv.URL+doclink.PathPrefix+"x")
	other := f.links.URL("w1", ev, "nosuchdoc00", f.clock())
	for _, tc := range []struct {
		name string
		link func() string
		prep func()
	}{
		{"garbage", func() string { return f.srv.URL + doclink.PathPrefix + "not-a-token" }, nil},
		{"tampered document", func() string {
			return strings.Replace(link, strings.Split(strings.TrimPrefix(link, f.srv.URL+doclink.PathPrefix), ".")[0],
				strings.Split(strings.TrimPrefix(other, f.srv.URL+doclink.PathPrefix), ".")[0], 1)
		}, nil},
		{"tampered signature", func() string { return link[:len(link)-2] + "AA" }, nil},
		{"other key", func() string {
			base, _ := url.Parse(f.srv.URL)
			l2, _ := doclink.New(doclink.Options{Key: doclink.NewKey(), BaseURL: base, Webhooks: f.hooks, Access: accessFn(nil), Documents: nil2{}})
			return l2.URL("w1", ev, doc, f.clock())
		}, nil},
		{"unknown document", func() string { return other }, nil},
		{"expired", func() string { return link }, func() { f.mu.Lock(); f.now = f.now.Add(time.Hour); f.mu.Unlock() }},
		{"access revoked", func() string { return f.links.URL("w1", ev, doc, f.clock()) }, func() { f.mu.Lock(); f.allowed = false; f.mu.Unlock() }},
		{"webhook deleted", func() string { return f.links.URL("w1", ev, doc, f.clock()) }, func() {
			f.mu.Lock()
			f.allowed = true
			f.mu.Unlock()
			f.hooks.mu.Lock()
			delete(f.hooks.m, "w1")
			f.hooks.mu.Unlock()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prep != nil {
				tc.prep()
			}
			status, h, body := f.get(t, http.MethodGet, tc.link())
			if status != http.StatusNotFound || !bytes.Equal(body, notFoundBody) || h.Get("Content-Type") != "application/json; charset=utf-8" {
				t.Fatalf("%d %q, want 404 with the one body %q", status, body, notFoundBody)
			}
		})
	}
	if n := testutil.ToFloat64(f.links.Metrics().Downloads.WithLabelValues(doclink.ResultOK)); n != 1 {
		t.Errorf("ok downloads = %v, want 1", n)
	}
}

type nil2 struct{ doclink.Documents }

func TestNewValidates(t *testing.T) {
	_, err := doclink.New(doclink.Options{Key: []byte("short"), TTL: -1, APIVersion: "v9"})
	for _, want := range []string{"Options.Key", "Options.BaseURL", "Options.TTL", "Options.Webhooks", "Options.APIVersion"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}
