package admin_test

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
)

// logSink collects every log line written by this package's tests, and
// sensitive remembers every secret, token and password they used; TestMain
// fails the run if any of them appears in any log line.
var (
	logSink   = &syncBuffer{}
	sensitive = &secretSet{m: map[string]bool{}}
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type secretSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *secretSet) add(v string) {
	if len(v) < 8 { // short values (e.g. password "bob") cannot be told from words
		return
	}
	s.mu.Lock()
	s.m[v] = true
	s.mu.Unlock()
}

func (s *secretSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.m))
	for k := range s.m {
		out = append(out, k)
	}
	return out
}

func testLogger() zerolog.Logger {
	return zerolog.New(logSink).Level(zerolog.DebugLevel).With().Timestamp().Logger()
}

// leaks returns the sensitive values found in the collected logs.
func leaks() []string {
	logs := logSink.String()
	var found []string
	for _, s := range sensitive.list() {
		if strings.Contains(logs, s) {
			found = append(found, s[:4]+"…")
		}
	}
	for _, marker := range []string{"password=", `"password":`, "Bearer "} {
		if strings.Contains(logs, marker) {
			found = append(found, marker)
		}
	}
	return found
}

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if n := len(sensitive.list()); n < 10 {
			fmt.Fprintf(os.Stderr, "log scan: only %d sensitive values recorded; the scan would prove nothing\n", n)
			code = 1
		}
		if len(logSink.String()) == 0 {
			fmt.Fprintln(os.Stderr, "log scan: no log output captured")
			code = 1
		}
		if l := leaks(); len(l) > 0 {
			fmt.Fprintf(os.Stderr, "log scan: sensitive values in logs: %v\n", l)
			code = 1
		}
	}
	os.Exit(code)
}
