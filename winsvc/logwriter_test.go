package winsvc

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

// entry is one event-log entry as the fake sink received it.
type entry struct {
	severity string
	id       uint32
	msg      string
}

// fakeEventLog records entries; err, when set, is returned by every call.
type fakeEventLog struct {
	mu  sync.Mutex
	got []entry
	err error
}

func (f *fakeEventLog) add(sev string, id uint32, msg string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, entry{sev, id, msg})
	return f.err
}

func (f *fakeEventLog) Info(id uint32, msg string) error    { return f.add("info", id, msg) }
func (f *fakeEventLog) Warning(id uint32, msg string) error { return f.add("warning", id, msg) }
func (f *fakeEventLog) Error(id uint32, msg string) error   { return f.add("error", id, msg) }

var _ EventLog = (*fakeEventLog)(nil)

func TestLevelWriterMapsZerologLevels(t *testing.T) {
	sink := &fakeEventLog{}
	log := zerolog.New(NewLevelWriter(sink, zerolog.InfoLevel)).Level(zerolog.TraceLevel)
	log.Trace().Msg("t")
	log.Debug().Msg("d")
	log.Info().Msg("i")
	log.Warn().Str("receiver", "slow").Msg("w")
	log.Error().Msg("e")
	log.WithLevel(zerolog.FatalLevel).Msg("f") // WithLevel does not exit
	log.WithLevel(zerolog.PanicLevel).Msg("p") // nor panic
	log.Log().Msg("no level")
	want := []entry{
		{"info", EventInfo, `{"level":"trace","message":"t"}`},
		{"info", EventInfo, `{"level":"debug","message":"d"}`},
		{"info", EventInfo, `{"level":"info","message":"i"}`},
		{"warning", EventWarning, `{"level":"warn","receiver":"slow","message":"w"}`},
		{"error", EventError, `{"level":"error","message":"e"}`},
		{"error", EventError, `{"level":"fatal","message":"f"}`},
		{"error", EventError, `{"level":"panic","message":"p"}`},
		{"info", EventInfo, `{"message":"no level"}`},
	}
	if fmt.Sprint(sink.got) != fmt.Sprint(want) {
		t.Fatalf("entries:\n%+v\nwant\n%+v", sink.got, want)
	}
}

// The severity comes from the level zerolog passes, not from the text: a
// console line and a message that looks like another level's keep theirs.
func TestLevelWriterTrustsTheLevelNotTheText(t *testing.T) {
	sink := &fakeEventLog{}
	w := NewLevelWriter(sink, zerolog.InfoLevel)
	if _, err := w.WriteLevel(zerolog.InfoLevel, []byte(`{"level":"error","message":"user typed this"}`+"\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteLevel(zerolog.WarnLevel, []byte("12:00:00 INF looks like info\n")); err != nil {
		t.Fatal(err)
	}
	want := []entry{
		{"info", EventInfo, `{"level":"error","message":"user typed this"}`},
		{"warning", EventWarning, "12:00:00 INF looks like info"},
	}
	if fmt.Sprint(sink.got) != fmt.Sprint(want) {
		t.Fatalf("entries %+v, want %+v", sink.got, want)
	}
}

func TestLevelWriterPlainWritesUseTheDefault(t *testing.T) {
	sink := &fakeEventLog{}
	stderr := NewLevelWriter(sink, zerolog.ErrorLevel)
	stdout := NewLevelWriter(sink, zerolog.InfoLevel)
	fmt.Fprintln(stderr, "rswebhooks: --upstream: is required")
	fmt.Fprint(stdout, "rswebhooks version 1.2.3\r\n")
	fmt.Fprint(stdout, "\n  \n") // nothing to say: no entry
	if _, err := stdout.WriteLevel(zerolog.Disabled, []byte("dropped\n")); err != nil {
		t.Fatal(err)
	}
	want := []entry{
		{"error", EventError, "rswebhooks: --upstream: is required"},
		{"info", EventInfo, "rswebhooks version 1.2.3"},
	}
	if fmt.Sprint(sink.got) != fmt.Sprint(want) {
		t.Fatalf("entries %+v, want %+v", sink.got, want)
	}
}

func TestLevelWriterSplitsLongEntriesAndReportsErrors(t *testing.T) {
	boom := errors.New("event log full")
	sink := &fakeEventLog{err: boom}
	w := NewLevelWriter(sink, zerolog.InfoLevel)
	// ä is two bytes; an odd prefix puts a character across every boundary.
	long := "x" + strings.Repeat("ä", maxEntry) + "\n"
	n, err := w.WriteLevel(zerolog.WarnLevel, []byte(long))
	if n != len(long) || !errors.Is(err, boom) {
		t.Fatalf("WriteLevel = %d, %v; want %d, %v", n, err, len(long), boom)
	}
	var joined strings.Builder
	for _, e := range sink.got {
		if e.severity != "warning" || len(e.msg) > maxEntry || !utf8.ValidString(e.msg) {
			t.Fatalf("entry of %d bytes, severity %s, valid UTF-8 %v", len(e.msg), e.severity, utf8.ValidString(e.msg))
		}
		joined.WriteString(e.msg)
	}
	if len(sink.got) != 3 || joined.String() != strings.TrimSuffix(long, "\n") {
		t.Fatalf("%d entries that join to %d bytes, want 3 joining to the message", len(sink.got), joined.Len())
	}
}
