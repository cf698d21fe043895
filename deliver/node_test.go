package deliver

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// verifyWithNode checks a received notification's Standard Webhooks
// signature with the reference standardwebhooks npm package, in a subtest of
// its own. The subtest needs node and testdata/swverify/node_modules (npm ci
// there): without them it is skipped, saying so, and fails when CI=true.
func verifyWithNode(t *testing.T, secret string, r received) {
	t.Helper()
	t.Run("standardwebhooks npm package", func(t *testing.T) { nodeVerify(t, secret, r) })
}

func nodeVerify(t *testing.T, secret string, r received) {
	dir := filepath.Join("testdata", "swverify")
	_, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks"))
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node or the standardwebhooks npm package missing (.ci/test runs npm ci in %s): %v", dir, err)
		}
		t.Skipf("Node cross-check of webhook-signature not run: node or the standardwebhooks npm package missing (run npm ci in %s): %v", dir, err)
	}
	in, _ := json.Marshal(map[string]any{
		"secret": secret,
		"body":   string(r.Body),
		"headers": map[string]string{
			"webhook-id":        r.Header.Get("webhook-id"),
			"webhook-timestamp": r.Header.Get("webhook-timestamp"),
			"webhook-signature": r.Header.Get("webhook-signature"),
		},
	})
	cmd := exec.Command("node", "verify.mjs")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Equal(bytes.TrimSpace(out), []byte("ok")) {
		t.Fatalf("standardwebhooks rejected the signature: %v\n%s", err, out)
	}
	// And it must reject a tampered body.
	var m map[string]any
	_ = json.Unmarshal(in, &m)
	m["body"] = string(r.Body) + " "
	in, _ = json.Marshal(m)
	cmd = exec.Command("node", "verify.mjs")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("standardwebhooks accepted a tampered body: %s", out)
	}
}
