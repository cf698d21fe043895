package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReadmeFlagDefaults checks that every default the README's
// `rswebhooks serve` flag table gives as a literal value is the flag's own
// default, so the table cannot drift from the one source of each default.
func TestReadmeFlagDefaults(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	set := flag.NewFlagSet("serve", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range serveFlags() {
		if err := f.Apply(set); err != nil {
			t.Fatal(err)
		}
	}
	row := regexp.MustCompile("^\\| `--([a-z0-9-]+)[^`]*` \\| `([^`]*)`")
	checked := 0
	for _, line := range strings.Split(string(b), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil || strings.Count(strings.SplitN(line, "|", 3)[1], "--") != 1 {
			continue // not a flag row, or several flags in one row
		}
		name, doc := m[1], m[2]
		f := set.Lookup(name)
		if f == nil {
			t.Errorf("README documents --%s, which serve does not have", name)
			continue
		}
		if f.DefValue == "" {
			continue // empty: the README says what the owning package then does
		}
		checked++
		if want, err := time.ParseDuration(f.DefValue); err == nil {
			if got, err := time.ParseDuration(doc); err != nil || got != want {
				t.Errorf("README: --%s defaults to %q, the flag to %s", name, doc, want)
			}
			continue
		}
		if doc != f.DefValue {
			t.Errorf("README: --%s defaults to %q, the flag to %q", name, doc, f.DefValue)
		}
	}
	if checked < 20 {
		t.Fatalf("checked %d README flag defaults; the table's format changed?", checked)
	}
}
