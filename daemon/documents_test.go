package daemon

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// download follows a document link and returns status, SHA-256 of the body
// and the body when it is short.
func download(t *testing.T, link string) (int, [32]byte, []byte) {
	t.Helper()
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	var head bytes.Buffer
	if _, err := io.Copy(io.MultiWriter(h, &limitedBuffer{&head, 4096}), resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, [32]byte(h.Sum(nil)), head.Bytes()
}

// limitedBuffer keeps the first n bytes written.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// TestExecuteCallsCarryRunAndDocumentLinks: a user's manual execute of a
// task (v3) and of a data alert (v2) through the proxy gives one
// notification each, with the caller, the run (ExecutionId, date, document
// ids) and a link per document that downloads exactly the document's bytes
// through rswebhooks. A tampered link and a link of a resource the owner
// may no longer read get the same 404.
func TestExecuteCallsCarryRunAndDocumentLinks(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	cat, _ := sim.CreateCategory("Ops")
	rep, _ := sim.CreateReport(cat, "Stock", "")
	task, _ := sim.CreateTask(rep, "nightly", "")
	alert, _ := sim.CreateAlert(rep, "low stock", "")
	if err := sim.SetDocumentSize(task, 5<<20+11); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Grant("alice", simulator.AccessRead|simulator.AccessModify, simulator.ScopeSpecificScheduledTask, task); err != nil {
		t.Fatal(err)
	}
	alertPerm, err := sim.Grant("alice", simulator.AccessRead|simulator.AccessModify, simulator.ScopeSpecificDataAlert, alert)
	if err != nil {
		t.Fatal(err)
	}
	in := newInbox(t)
	r := start(t, Options{Upstream: up.URL, ServiceUser: "admin", ServicePassword: "admin", WatchInterval: time.Second,
		AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	resp, err := http.PostForm(r.proxyURL+"/Token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	decode(t, resp, &tok)
	if st, b := call(t, "POST", r.adminURL+"/api/webhooks/registrations", tok.AccessToken,
		fmt.Sprintf(`{"WebHookUri":%q,"Filters":["tasks","alerts"]}`, in.srv.URL+"/?noecho=1")); st != http.StatusCreated {
		t.Fatalf("register: %d %s", st, b)
	}
	for _, p := range []string{"/api/reportserver/v3/scheduled-tasks/" + task + "/execute", "/api/reportserver/v2/executions/dataalerts/" + alert} {
		if st, b := call(t, "POST", r.proxyURL+p, tok.AccessToken, ""); st/100 != 2 {
			t.Fatalf("POST %s: %d %s", p, st, b)
		}
	}
	waitFor(t, "both execute notifications", func() bool { return len(in.about(task)) == 1 && len(in.about(alert)) == 1 })

	links := map[string][]string{}
	for _, id := range []string{task, alert} {
		n := in.about(id)[0]
		xs, _ := sim.Executions(id)
		if len(xs) != 1 || n["ExecutionId"] != xs[0].Id || n["ExecutionDateUtc"] == nil || n["UserName"] != "alice" ||
			n["Source"] != "proxy" || n["Missing"] != nil {
			t.Fatalf("notification %v, want alice's call carrying run %+v", n, xs)
		}
		docs, _ := n["Documents"].([]any)
		if len(docs) == 0 || len(docs) != len(xs[0].DocumentIds) {
			t.Fatalf("notification documents %v, want %v", n["Documents"], xs[0].DocumentIds)
		}
		for i, d := range docs {
			doc := d.(map[string]any)
			content, size, name, mime, err := sim.DocumentContent(xs[0].DocumentIds[i])
			if err != nil || doc["Id"] != xs[0].DocumentIds[i] || doc["Name"] != name || doc["MimeType"] != mime || doc["Format"] != "PDF" {
				t.Fatalf("document %v, want %s %q %q (%v)", doc, xs[0].DocumentIds[i], name, mime, err)
			}
			link, _ := doc["Url"].(string)
			if !strings.HasPrefix(link, r.proxyURL+"/~rswebhooks/documents/") {
				t.Fatalf("document Url %q, want one on the proxy listener", link)
			}
			if id == task {
				want := sha256.New()
				_, _ = io.Copy(want, content)
				st, sum, _ := download(t, link)
				if st != 200 || !bytes.Equal(sum[:], want.Sum(nil)) {
					t.Fatalf("download of %d bytes: %d, sha256 differs: %v", size, st, !bytes.Equal(sum[:], want.Sum(nil)))
				}
			}
			links[id] = append(links[id], link)
		}
	}
	_, _, notFound := download(t, r.proxyURL+"/~rswebhooks/documents/nothing")
	// Tampered: another document id in the payload, the old signature.
	tl := links[task][0]
	payload, sig, _ := strings.Cut(strings.TrimPrefix(tl, r.proxyURL+"/~rswebhooks/documents/"), ".")
	if st, _, body := download(t, r.proxyURL+"/~rswebhooks/documents/"+payload+"x."+sig); st != 404 || !bytes.Equal(body, notFound) {
		t.Errorf("tampered link: %d %q", st, body)
	}
	// Revoked: alice loses Read on the alert.
	admin, _ := sim.IssueToken("admin")
	if st, b := call(t, "DELETE", up.URL+"/api/reportserver/v2/permissions/4/"+alertPerm, admin, ""); st/100 != 2 {
		t.Fatalf("revoke: %d %s", st, b)
	}
	if st, _, body := download(t, links[alert][0]); st != 404 || !bytes.Equal(body, notFound) {
		t.Errorf("link after the owner lost access: %d %q, want the 404", st, body)
	}
	// Later polls notify nothing more: one notification per run.
	polls := metricValue(t, r.adminURL, `rswebhooks_watcher_polls_total{result="ok"}`)
	waitFor(t, "two more polls", func() bool {
		return metricValue(t, r.adminURL, `rswebhooks_watcher_polls_total{result="ok"}`) >= polls+2
	})
	if len(in.about(task)) != 1 || len(in.about(alert)) != 1 {
		t.Fatalf("after more polls: %d and %d notifications, want 1 each", len(in.about(task)), len(in.about(alert)))
	}
	if v := metricValue(t, r.adminURL, `rswebhooks_document_downloads_total{result="ok"}`); v != 1 {
		t.Errorf("ok downloads = %v, want 1", v)
	}
}
