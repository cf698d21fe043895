package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// vmHWM reads a process's peak resident set size (bytes) from
// /proc/PID/status.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc/%d/status (not Linux?): %v", pid, err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// TestDocumentLinkStreamsA256MiBDocument: a real `rswebhooks serve`
// process notifies a manual run whose document is 256 MiB; following the
// link downloads exactly its bytes through rswebhooks, and the process's
// peak RSS stays far below the document's size (the download is streamed,
// never held).
func TestDocumentLinkStreamsA256MiBDocument(t *testing.T) {
	if os.Getenv("CI") != "true" && testing.Short() {
		t.Skip("-short: skips the 256 MiB download")
	}
	const size = 256 << 20
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	cat, _ := sim.CreateCategory("Big")
	rep, _ := sim.CreateReport(cat, "Ledger", "")
	task, _ := sim.CreateTask(rep, "monthly", "")
	if err := sim.SetDocumentSize(task, size); err != nil {
		t.Fatal(err)
	}
	token, _ := sim.IssueToken("admin")

	var mu sync.Mutex
	var got []map[string]any
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Notifications []map[string]any }
		if json.NewDecoder(r.Body).Decode(&body) == nil {
			mu.Lock()
			got = append(got, body.Notifications...)
			mu.Unlock()
		}
	}))
	defer rcv.Close()

	const operator = "operator-token-for-the-document-test"
	p := startDaemon(t, "--upstream", up.URL, "--data-dir", t.TempDir(), "--admin-token", operator,
		"--service-user", "admin", "--service-password", "admin", "--watch-interval", "1s", "--reconcile-interval", "0",
		"--allow-target", "127.0.0.0/8")
	c := &http.Client{Timeout: 10 * time.Second}
	if st, b := doJSON(t, c, "POST", p.adminURL+"/api/webhooks/registrations", operator,
		fmt.Sprintf(`{"WebHookUri":%q,"Filters":["tasks"]}`, rcv.URL+"/?noecho=1")); st != http.StatusCreated {
		t.Fatalf("register: %d %s", st, b)
	}
	if st, b := doJSON(t, c, "POST", p.proxyURL+"/api/reportserver/v3/scheduled-tasks/"+task+"/execute", token, ""); st/100 != 2 {
		t.Fatalf("execute: %d %s", st, b)
	}
	var link string
	waitFor(t, "the execute notification with a document link", 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range got {
			if docs, _ := n["Documents"].([]any); len(docs) == 1 {
				link, _ = docs[0].(map[string]any)["Url"].(string)
			}
		}
		return link != ""
	})
	pid := p.cmd.Process.Pid
	before := vmHWM(t, pid)

	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || n != size {
		t.Fatalf("download: %d, %d bytes, %v", resp.StatusCode, n, err)
	}
	want := sha256.New()
	_, _ = io.Copy(want, simulator.DeterministicBytes(size))
	if !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Fatal("downloaded bytes differ from the document's")
	}
	after := vmHWM(t, pid)
	t.Logf("peak RSS of rswebhooks serve: %d MiB before the download, %d MiB after a %d MiB document (peak/document = %.3f)",
		before>>20, after>>20, size>>20, float64(after)/size)
	if after > 96<<20 {
		t.Fatalf("peak RSS %d MiB after streaming a 256 MiB document; want below 96 MiB", after>>20)
	}
	p.stop()
}
