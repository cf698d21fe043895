package daemon

import (
	"encoding/json"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// TestNodeNameInLogsAndMetrics: --node-name is on every log line and in
// rswebhooks_node_info{node}; no other series carries it.
func TestNodeNameInLogsAndMetrics(t *testing.T) {
	up := httptest.NewServer(simulator.New(simulator.Options{}))
	defer up.Close()
	var logs testutil.SyncBuffer
	r := start(t, Options{Upstream: up.URL, NodeName: "rs-node-7", Logger: zerolog.New(&logs)})
	_, body := get(t, r.adminURL+"/metrics")
	if !strings.Contains(string(body), `rswebhooks_node_info{node="rs-node-7"} 1`) {
		t.Fatalf("/metrics lacks rswebhooks_node_info{node=\"rs-node-7\"} 1")
	}
	if n := strings.Count(string(body), `node="`); n != 1 {
		t.Errorf("/metrics has %d series with a node label, want only rswebhooks_node_info", n)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("only %d log lines", len(lines))
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["node"] != "rs-node-7" {
			t.Fatalf("log line without node=rs-node-7: %s", l)
		}
	}
}

func TestNodeNameDefaultsToTheHostname(t *testing.T) {
	o := Options{Upstream: "http://127.0.0.1:1"}
	o.setDefaults()
	if o.NodeName != DefaultNodeName() || o.NodeName == "" {
		t.Fatalf("NodeName %q, want the hostname %q", o.NodeName, DefaultNodeName())
	}
}

func TestNodeNameIsValidated(t *testing.T) {
	for _, name := range []string{"two words", strings.Repeat("n", 254), "node\n1", `node"1`} {
		o := Options{Upstream: "http://127.0.0.1:1", NodeName: name}
		o.setDefaults()
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), "--node-name: ") {
			t.Errorf("NodeName %q: %v, want a --node-name error", name, err)
		}
	}
}
