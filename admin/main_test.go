package admin_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/internal/testutil"
)

// logSink collects every log line written by this package's tests, and
// sensitive remembers every secret, token and password they used; TestMain
// fails the run if any of them appears in any log line.
var (
	logSink   = &testutil.SyncBuffer{}
	sensitive = &secretSet{m: map[string]bool{}}
)

type secretSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *secretSet) add(v string) {
	if len(v) < 8 { // short values (e.g. password "bob") cannot be told from words
		return
	}
	s.mu.Lock()
	s.m[v] = true
	s.mu.Unlock()
}

func (s *secretSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.m))
	for k := range s.m {
		out = append(out, k)
	}
	return out
}

func testLogger() zerolog.Logger {
	return zerolog.New(logSink).Level(zerolog.DebugLevel).With().Timestamp().Logger()
}

// leaks returns the sensitive values found in the collected logs.
func leaks() []string {
	logs := logSink.String()
	var found []string
	for _, s := range sensitive.list() {
		if strings.Contains(logs, s) {
			found = append(found, s[:4]+"…")
		}
	}
	for _, marker := range []string{"password=", `"password":`, "Bearer "} {
		if strings.Contains(logs, marker) {
			found = append(found, marker)
		}
	}
	return found
}

// TestMain scans the logs of every test that ran, once all are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if l := leaks(); code == 0 && len(l) > 0 {
		fmt.Fprintf(os.Stderr, "log scan: sensitive values in logs: %v\n", l)
		code = 1
	}
	os.Exit(code)
}

// TestLogsCarryNoSecrets drives a full scenario at debug level and asserts
// that none of the secrets, tokens and passwords it used reached the logs.
func TestLogsCarryNoSecrets(t *testing.T) {
	e := newEnv(t, envOptions{})
	if _, err := e.sim.AddUser("dave", "dave-password-0123456789", true); err != nil {
		t.Fatal(err)
	}
	sensitive.add("dave-password-0123456789")
	login := e.do("POST", "/api/webhooks/login", "", map[string]string{"username": "dave", "password": "dave-password-0123456789"})
	var lr struct {
		AccessToken string `json:"access_token"`
	}
	login.json(t, &lr)
	sensitive.add(lr.AccessToken)
	tok := e.token("alice")
	body := hookBody("http://user:hunter2-userinfo-pass@"+strings.TrimPrefix(e.recv.URL, "http://")+"/in?token=query-secret-value-1&x=1",
		map[string]any{"Headers": map[string]string{"Authorization": "Basic header-secret-value-1"}})
	sensitive.add("hunter2-userinfo-pass")
	sensitive.add("query-secret-value-1")
	sensitive.add("header-secret-value-1")
	var w struct {
		ID string `json:"Id"`
	}
	res := e.do("POST", "/api/webhooks/registrations", tok, body)
	res.json(t, &w)
	if res.status != 201 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	e.recv.setMode("wrong")
	e.do("PUT", "/api/webhooks/registrations/"+w.ID, lr.AccessToken, hookBody(e.recv.URL+"/in?token=query-secret-value-1", map[string]any{"Id": w.ID}))
	e.do("GET", "/api/webhooks/registrations", "Bearer-less-garbage-token-xyz", nil)
	sensitive.add("Bearer-less-garbage-token-xyz")
	if n := len(sensitive.list()); n < 8 {
		t.Fatalf("only %d sensitive values recorded; the scan would prove nothing", n)
	}
	if !strings.Contains(logSink.String(), w.ID) {
		t.Fatalf("logs do not mention the webhook id; is the logger wired? logs: %.500s", logSink.String())
	}
	if l := leaks(); len(l) > 0 {
		t.Fatalf("sensitive values in logs: %v", l)
	}
}
