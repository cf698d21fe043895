package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rswebhooks/rswebhooks/buildinfo"
)

// TestVersionCommand: `version`, `--version` and `-v` print the same four
// facts; `version -o json` is the same as data.
func TestVersionCommand(t *testing.T) {
	want := build()
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		var out, errOut bytes.Buffer
		if err := newApp(&out, &errOut).Run(append([]string{"rswebhooks"}, args...)); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut.String())
		}
		if out.String() != want.String() {
			t.Errorf("%v printed %q, want %q", args, out.String(), want.String())
		}
	}

	var out bytes.Buffer
	if err := newApp(&out, &out).Run([]string{"rswebhooks", "version", "--output", "json"}); err != nil {
		t.Fatal(err)
	}
	var got buildinfo.Info
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got != want {
		t.Fatalf("version -o json = %s (%v), want %+v", out.String(), err, want)
	}

	err := newApp(&out, &out).Run([]string{"rswebhooks", "version", "--output", "yaml"})
	if err == nil || !strings.Contains(err.Error(), "--output: must be text or json") {
		t.Fatalf("version --output yaml: %v", err)
	}
}

// TestUnstampedBinaryKnowsItsCommit: a plain `go build` (no -ldflags) still
// says which commit and Go it was built from, from the toolchain's record.
func TestUnstampedBinaryKnowsItsCommit(t *testing.T) {
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("git rev-parse: %v (CI runs in a clone)", err)
		}
		t.Skipf("not in a git work tree (%v): the toolchain records no commit", err)
	}
	if fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(root)), ".git")); err != nil || !fi.IsDir() {
		// cmd/go looks for a .git directory; a linked worktree has a file.
		t.Skip("a linked git worktree: the Go toolchain records VCS information only in a clone")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	// -buildvcs=true: a GOFLAGS=-buildvcs=false in the environment must not
	// hide what this test is about.
	bin := filepath.Join(t.TempDir(), "rswebhooks")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version", "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	var got buildinfo.Info
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, out)
	}
	if !strings.HasPrefix(got.Commit, strings.TrimSpace(string(head))) {
		t.Errorf("commit %q, want HEAD %s (with -dirty when modified)", got.Commit, head)
	}
	if got.Version == "" || got.Date == buildinfo.Unknown || got.GoVersion != runtime.Version() || got.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("version %+v: want a version, the commit date, %s and %s/%s", got, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
}

func TestUnknownCommandIsOneLine(t *testing.T) {
	var out bytes.Buffer
	err := newApp(&out, &out).Run([]string{"rswebhooks", "serv"})
	if err == nil || !strings.Contains(err.Error(), `unknown command "serv"`) {
		t.Fatalf("rswebhooks serv: %v\n%s", err, out.String())
	}
}
