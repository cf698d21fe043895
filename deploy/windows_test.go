package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallScriptParses parses deploy/windows/install.ps1 with the
// tree-sitter PowerShell grammar (deploy/windows/psparse; PowerShell itself
// is not available on these machines), and checks the parser does report a
// broken script.
func TestInstallScriptParses(t *testing.T) {
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat("windows/psparse/node_modules/web-tree-sitter")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node or deploy/windows/psparse/node_modules missing (.ci/test runs npm ci): %v", err)
		}
		t.Skipf("node or deploy/windows/psparse/node_modules missing (run npm ci there): %v", err)
	}
	parse := func(path string) (string, error) {
		out, err := exec.Command(node, "windows/psparse/parse.mjs", path).CombinedOutput()
		return string(out), err
	}
	if out, err := parse("windows/install.ps1"); err != nil || !strings.Contains(out, "parsed") {
		t.Fatalf("install.ps1 does not parse: %v\n%s", err, out)
	}

	// The same script with its last closing brace removed must be refused.
	b, err := os.ReadFile("windows/install.ps1")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.LastIndex(s, "}")
	broken := filepath.Join(t.TempDir(), "broken.ps1")
	if err := os.WriteFile(broken, []byte(s[:i]+s[i+1:]), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := parse(broken); err == nil || !strings.Contains(out, "missing }") {
		t.Fatalf("a script with a brace missing was accepted: %v\n%s", err, out)
	}
}
