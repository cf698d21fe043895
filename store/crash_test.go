package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
	"github.com/rswebhooks/rswebhooks"
)

const (
	helperEnv = "RSWEBHOOKS_STORE_HELPER"
	helperDir = "RSWEBHOOKS_STORE_HELPER_DIR"
	// The child writes with a large memtable so that, when it is killed, its
	// WAL holds more than an 8 MiB arena can replay.
	crashMemTable = 32 << 20
	crashAcked    = 12000 // ~1 KiB each: ~13 MiB unflushed at the kill
)

// TestHelperProcess is not a test: it is the child process of the crash
// tests, selected by an environment variable.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDir)
	switch os.Getenv(helperEnv) {
	case "append":
		db, err := Open(Options{Dir: dir, Logger: zerolog.Nop(), MemTableSize: crashMemTable, ValueThreshold: 64 << 10})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		pad := strings.Repeat("x", 900)
		for i := 0; ; i++ {
			e := &rswebhooks.Event{ID: rswebhooks.NewID(time.Now()), Filter: "reports", Type: "Created",
				ResourceID: fmt.Sprint(i), ResourceName: pad, Time: time.Now()}
			if err := db.AppendEvent(context.Background(), e); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
			// Acknowledged only after the commit returned; one write per line.
			if _, err := os.Stdout.WriteString(e.ID + "\n"); err != nil {
				os.Exit(4)
			}
		}
	case "migrate":
		migrateHelper(dir)
	case "rawopen":
		// What happens without the guard: Badger with a smaller memtable.
		db, err := badger.Open(badger.DefaultOptions(dir).WithMemTableSize(DefaultMemTableSize).
			WithValueThreshold(DefaultValueThreshold))
		if err != nil {
			fmt.Println("open error:", err)
			os.Exit(4)
		}
		_ = db.Close()
		fmt.Println("opened")
		os.Exit(0)
	}
}

func helper(t *testing.T, mode, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDir+"="+dir)
	return cmd
}

// TestCrashKeepsAcknowledgedEvents SIGKILLs a real writer process and checks
// that every event it acknowledged is there after reopening, with a smaller
// memtable than the one the WAL was written with.
func TestCrashKeepsAcknowledgedEvents(t *testing.T) {
	dir := t.TempDir()
	cmd := helper(t, "append", dir)
	out, err := cmd.StdoutPipe()
	mustNil(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	mustNil(t, cmd.Start())

	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var acked []string
	timeout := time.After(2 * time.Minute)
	for len(acked) < crashAcked {
		select {
		case id, ok := <-lines:
			if !ok {
				t.Fatalf("child exited after %d events: %s", len(acked), stderr.String())
			}
			acked = append(acked, id)
		case <-timeout:
			_ = cmd.Process.Kill()
			t.Fatalf("child acknowledged only %d events in time", len(acked))
		}
	}
	mustNil(t, cmd.Process.Kill()) // SIGKILL
	for id := range lines {        // ids acknowledged before the kill landed
		acked = append(acked, id)
	}
	_ = cmd.Wait()

	// Prove the trap: a plain Badger open with an 8 MiB memtable on a copy
	// of the crashed directory dies inside Badger.
	cp := t.TempDir()
	mustNil(t, os.CopyFS(cp, os.DirFS(dir)))
	// It usually dies with Badger's "Arena too small"; sometimes the
	// overflowing arena corrupts the heap first and the runtime throws.
	// Either way the process does not get to open the store.
	raw, rawErr := helper(t, "rawopen", cp).CombinedOutput()
	if rawErr == nil || strings.Contains(string(raw), "opened") {
		t.Fatalf("plain reopen did not hit the arena trap, so this test proves nothing (output: %.300s)", raw)
	}

	start := time.Now()
	db, _ := openTest(t, dir) // 8 MiB: the guard replays with 32 MiB first
	t.Logf("acknowledged %d events; reopen took %s", len(acked), time.Since(start))
	ctx := context.Background()
	for _, id := range acked {
		if _, err := db.GetEvent(ctx, id); err != nil {
			t.Fatalf("acknowledged event %s lost: %v", id, err)
		}
	}
	un, err := db.UnfannedEvents(ctx, 0)
	mustNil(t, err)
	if len(un) < len(acked) {
		t.Fatalf("unfanned events = %d, acknowledged %d", len(un), len(acked))
	}
}
