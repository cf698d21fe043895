package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestOpenRefusesAForeignDirectory: a data dir that holds someone else's
// files is refused with a message naming them, and nothing is written
// there; a missing, empty (or lost+found only) directory and an existing
// store are fine.
func TestOpenRefusesAForeignDirectory(t *testing.T) {
	foreign := t.TempDir()
	for _, n := range []string{"notes.txt", "photo.jpg", "a", "b"} {
		if err := os.WriteFile(filepath.Join(foreign, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Open(Options{Dir: foreign, Logger: zerolog.Nop()})
	if !errors.Is(err, ErrForeignDir) || !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), "1 more") {
		t.Fatalf("Open(foreign) = %v, want ErrForeignDir naming the files", err)
	}
	if es, _ := os.ReadDir(foreign); len(es) != 4 {
		t.Fatalf("Open wrote into the foreign dir: %d entries", len(es))
	}

	fresh := t.TempDir()
	if err := os.Mkdir(filepath.Join(fresh, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{fresh, filepath.Join(t.TempDir(), "new", "dir")} {
		db, err := Open(Options{Dir: dir, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatalf("Open(%s): %v", dir, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db, err = Open(Options{Dir: dir, Logger: zerolog.Nop()}) // our own store: fine
		if err != nil {
			t.Fatalf("reopen %s: %v", dir, err)
		}
		_ = db.Close()
	}
}
