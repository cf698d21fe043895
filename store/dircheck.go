package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ErrForeignDir is returned by Open when Options.Dir holds files that are
// neither rswebhooks' nor Badger's: a mistyped --data-dir must not scatter
// a database among someone else's files (nor later be cleaned up with them).
var ErrForeignDir = errors.New("the data directory holds files that are not rswebhooks data")

// ownFile matches what this package and Badger write in the directory.
var ownFile = regexp.MustCompile(`^(` +
	regexp.QuoteMeta(formatFile) + `(\.tmp)?` +
	`|MANIFEST(-REWRITE)?|KEYREGISTRY(-REWRITE)?|DISCARD|LOCK|FLOCK` +
	`|\d+\.(sst|vlog|mem)(\.tmp)?)$`)

// checkDir accepts a missing or empty directory (lost+found, as on a fresh
// file system, does not count) and one that already holds a store; anything
// else is refused with ErrForeignDir naming a few of the foreign files.
func checkDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read data dir %s: %w", dir, err)
	}
	var foreign []string
	for _, e := range entries {
		n := e.Name()
		if n == "lost+found" && e.IsDir() {
			continue
		}
		if n == "MANIFEST" || n == formatFile {
			return nil // a store (Badger's or ours) lives here
		}
		if !ownFile.MatchString(n) {
			foreign = append(foreign, n)
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	shown := foreign[:min(len(foreign), 3)]
	more := ""
	if len(foreign) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(foreign)-len(shown))
	}
	abs, _ := filepath.Abs(dir)
	return fmt.Errorf("%w: %s holds %s%s and no rswebhooks store; point it at an empty or new directory (or one rswebhooks created)",
		ErrForeignDir, abs, strings.Join(quoteAll(shown), ", "), more)
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}
