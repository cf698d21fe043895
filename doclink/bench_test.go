package doclink_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/doclink"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/reportserver"
)

// BenchmarkDocumentDownload compares downloading a 64 MiB document
// through a link (signature, webhook and access checks, then streamed from
// the report server) with downloading it from the report server directly,
// in the same run: the ratio of the two is the link's cost.
func BenchmarkDocumentDownload(b *testing.B) {
	const size = 64 << 20
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	tasks, _ := sim.SeedTasks(1, "")
	_ = sim.SetDocumentSize(tasks[0], size)
	x, _ := sim.RunTask(tasks[0])
	doc := x.DocumentIds[0]
	u, _ := url.Parse(up.URL)
	rs, _ := reportserver.New(reportserver.Options{BaseURL: u, User: "admin", Password: "admin"})
	hooks := &webhooks{m: map[string]*rswebhooks.Webhook{"w1": {ID: "w1", User: rswebhooks.User{ID: "u1"}}}}
	mux := http.NewServeMux()
	front := httptest.NewServer(mux)
	defer front.Close()
	base, _ := url.Parse(front.URL)
	links, err := doclink.New(doclink.Options{Key: doclink.NewKey(), BaseURL: base, Webhooks: hooks, Documents: rs,
		Access: accessFn(func(rswebhooks.User, *rswebhooks.Event) (bool, error) { return true, nil })})
	if err != nil {
		b.Fatal(err)
	}
	mux.Handle(doclink.PathPrefix, links)
	tok, _ := sim.IssueToken("admin")
	fetch := func(b *testing.B, req *http.Request) {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil || n != size || res.StatusCode != 200 {
			b.Fatalf("%d, %d bytes, %v", res.StatusCode, n, err)
		}
	}
	b.Run("direct", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodGet, up.URL+"/api/reportserver/v2/documents/"+doc, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			fetch(b, req)
		}
	})
	b.Run("link", func(b *testing.B) {
		b.SetBytes(size)
		link := links.URL("w1", &rswebhooks.Event{Filter: rswebhooks.FilterTasks, ResourceID: tasks[0]}, doc, time.Now())
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodGet, link, nil)
			fetch(b, req)
		}
	})
}
