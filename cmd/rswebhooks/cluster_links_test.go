package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/pgtest"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// TestClusterDocumentLinksWorkOnEveryNode: three `rswebhooks serve`
// processes started at once on one PostgreSQL (a rollout: each makes the
// signing key if none is stored) agree on one key, so the document link in
// a run's notification downloads the document's exact bytes through every
// node's proxy listener, not only through the node that signed it.
func TestClusterDocumentLinksWorkOnEveryNode(t *testing.T) {
	pg := pgtest.Start(t)
	cl := &cluster{t: t, pg: pg, dbURL: pg.NewDatabase(t), sim: simulator.New(simulator.Options{}),
		c: &http.Client{Timeout: 30 * time.Second}}
	cl.up = httptest.NewServer(cl.sim)
	defer cl.up.Close()
	cat, _ := cl.sim.CreateCategory("Ops")
	rep, _ := cl.sim.CreateReport(cat, "Nightly", "")
	task, _ := cl.sim.CreateTask(rep, "Nightly run", "")

	type document struct{ Id, Url string }
	type notification struct {
		ExecutionId string
		Documents   []document
	}
	var mu sync.Mutex
	var got []notification
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Notifications []notification }
		if json.NewDecoder(r.Body).Decode(&body) == nil {
			mu.Lock()
			got = append(got, body.Notifications...)
			mu.Unlock()
		}
	}))
	defer rcv.Close()

	var argss [][]string
	for i := range cl.nodes {
		argss = append(argss, []string{"--upstream", cl.up.URL, "--postgres-url", cl.dbURL, "--node-name", fmt.Sprintf("node-%d", i+1),
			"--data-dir", filepath.Join(t.TempDir(), "data"), "--admin-token", clusterOperator,
			"--service-user", "admin", "--service-password", "admin", "--watch-interval", "1s", "--reconcile-interval", "0",
			"--allow-target", "127.0.0.0/8", "--log-level", "info"})
	}
	copy(cl.nodes[:], startDaemons(t, argss...))

	body := fmt.Sprintf(`{"WebHookUri":%q,"Filters":[%q]}`, rcv.URL+"/?noecho=1", rswebhooks.FilterTasks)
	if st, b := doJSON(t, cl.c, "POST", cl.nodes[0].adminURL+"/api/webhooks/registrations", clusterOperator, body); st != http.StatusCreated {
		t.Fatalf("register: %d %s", st, b)
	}
	// A run after the watcher's baseline is notified.
	leader := cl.leader()
	waitFor(t, "the leader's first poll", 30*time.Second, func() bool {
		return cl.metric(leader, `rswebhooks_watcher_polls_total{result="ok"}`) >= 1
	})
	x, err := cl.sim.RunTask(task)
	if err != nil {
		t.Fatal(err)
	}
	var doc document
	waitFor(t, "the run's notification with a document link", 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range got {
			if e.ExecutionId == x.Id && len(e.Documents) > 0 && e.Documents[0].Url != "" {
				doc = e.Documents[0]
				return true
			}
		}
		return false
	})
	r, n, _, _, err := cl.sim.DocumentContent(doc.Id)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	if _, err := io.Copy(want, r); err != nil {
		t.Fatal(err)
	}
	link, err := url.Parse(doc.Url)
	if err != nil {
		t.Fatal(err)
	}
	for i, node := range cl.nodes {
		proxy, _ := url.Parse(node.proxyURL)
		u := *link
		u.Host = proxy.Host
		res, err := cl.c.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		m, err := io.Copy(h, res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || m != n || !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
			t.Fatalf("document link through node-%d's proxy: %d, %d of %d bytes, %v (same bytes: %v)",
				i+1, res.StatusCode, m, n, err, bytes.Equal(h.Sum(nil), want.Sum(nil)))
		}
	}
}
