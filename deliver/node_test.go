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
// signature with the reference standardwebhooks npm package. It runs when
// testdata/swverify/node_modules exists (npm ci there), and fails instead of
// being silent when CI=true and it does not.
func verifyWithNode(t *testing.T, secret string, r received) {
	t.Helper()
	dir := filepath.Join("testdata", "swverify")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("standardwebhooks npm package missing (run npm ci in %s): %v", dir, err)
		}
		t.Logf("standardwebhooks npm package not installed in %s; Node cross-check not run", dir)
		return
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
