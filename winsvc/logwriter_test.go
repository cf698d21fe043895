package winsvc

import (
	"errors"
	"strings"
	"testing"
)

type entry struct {
	level Level
	text  string
}

func TestLineWriter(t *testing.T) {
	var got []entry
	w := &LineWriter{Emit: func(l Level, s string) error { got = append(got, entry{l, s}); return nil }}
	writes := []string{
		`{"level":"info","message":"start`, "ed\"}\r\n",
		"\n",
		`{"level":"error","message":"x"}` + "\n" + `{"level":"warn"}` + "\npartial",
	}
	for _, s := range writes {
		if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []entry{
		{LevelInfo, `{"level":"info","message":"started"}`},
		{LevelError, `{"level":"error","message":"x"}`},
		{LevelWarning, `{"level":"warn"}`},
		{LevelInfo, "partial"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if err := w.Flush(); err != nil || len(got) != 4 {
		t.Fatalf("second Flush emitted again: %v %v", got, err)
	}
}

func TestLineWriterSplitsLongLinesAndReportsErrors(t *testing.T) {
	var n int
	boom := errors.New("event log full")
	w := &LineWriter{Emit: func(l Level, s string) error {
		n++
		if len(s) > maxLine {
			t.Errorf("entry of %d bytes exceeds %d", len(s), maxLine)
		}
		return boom
	}}
	long := strings.Repeat("x", maxLine*2+10) + "\n"
	if _, err := w.Write([]byte(long)); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if n != 3 {
		t.Fatalf("emitted %d entries, want 3", n)
	}
}
