package deliver

import (
	"bytes"
	"encoding/json"
	"errors"
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
	needNode(t)
	if !standardAccepts(t, secret, r) {
		t.Fatal("standardwebhooks rejected the signature")
	}
	// And it must reject a tampered body.
	tampered := r
	tampered.Body = append(bytes.Clone(r.Body), ' ')
	if standardAccepts(t, secret, tampered) {
		t.Fatal("standardwebhooks accepted a tampered body")
	}
}

// needNode skips the test, saying why, when node or the standardwebhooks
// npm package is missing — and fails it when CI=true.
func needNode(t *testing.T) {
	t.Helper()
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
}

// standardAccepts runs the reference standardwebhooks npm verifier with
// secret over one received notification.
func standardAccepts(t *testing.T, secret string, r received) bool {
	t.Helper()
	in, _ := json.Marshal(map[string]any{
		"secret": secret, "body": string(r.Body),
		"headers": map[string]string{
			"webhook-id":        r.Header.Get("webhook-id"),
			"webhook-timestamp": r.Header.Get("webhook-timestamp"),
			"webhook-signature": r.Header.Get("webhook-signature"),
		},
	})
	cmd := exec.Command("node", "verify.mjs")
	cmd.Dir = filepath.Join("testdata", "swverify")
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil && bytes.Equal(bytes.TrimSpace(out), []byte("ok")):
		return true
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return false
	}
	t.Fatalf("node verify.mjs: %v\n%s", err, out)
	return false
}
