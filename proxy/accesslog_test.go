package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/internal/testutil"
)

// TestAccessLogLine: one line per request with the escaped path (never the
// query), status, bytes, a duration in milliseconds and the request id.
func TestAccessLogLine(t *testing.T) {
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello"))
	}))
	var logs testutil.SyncBuffer
	px := newTestProxy(t, up.url(t), func(o *Options) { o.Logger = zerolog.New(&logs) })
	req := newReq(t, "GET", px.URL+"/api/a%2Fb?access_token=secret-in-query", nil)
	req.Header.Set("X-Request-Id", "rid-1")
	testutil.Do(t, client(), req)

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1: %q", len(lines), lines)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatal(err)
	}
	if got["path"] != "/api/a%2Fb" || got["status"] != float64(200) || got["bytes"] != float64(5) || got["request_id"] != "rid-1" {
		t.Fatalf("access line %v", got)
	}
	if ms, ok := got["duration_ms"].(float64); !ok || ms < 0 {
		t.Fatalf("duration_ms %v", got["duration_ms"])
	}
	if strings.Contains(lines[0], "secret-in-query") {
		t.Fatalf("the query reached the log: %s", lines[0])
	}
}
