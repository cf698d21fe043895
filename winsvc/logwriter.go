package winsvc

import (
	"bytes"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

// EventLog is where a LevelWriter writes: the Windows event log
// (*eventlog.Log from golang.org/x/sys/windows/svc/eventlog satisfies it;
// OpenEventLog returns one) or, in tests, a fake.
type EventLog interface {
	Info(eventID uint32, msg string) error
	Warning(eventID uint32, msg string) error
	Error(eventID uint32, msg string) error
}

// Event IDs written to the event log, one per severity.
const (
	EventInfo    = 1
	EventWarning = 2
	EventError   = 3
)

// maxEntry bounds one event-log entry in bytes (the event log takes up to
// 31,839 characters); a longer message is split into several entries.
const maxEntry = 16 << 10

// LevelWriter writes each log entry to an EventLog with the severity of the
// entry's zerolog level: error, fatal and panic as errors, warn as a
// warning, everything else as information. It implements zerolog's
// LevelWriter, so a logger built on it hands over the level it already
// knows; nothing is parsed back out of the text. Plain Write calls (no
// level: a CLI error message, a help text) are entries of Default's
// severity. A LevelWriter holds no buffer and is safe for concurrent use as
// far as its EventLog is.
type LevelWriter struct {
	Log EventLog
	// Default is the level of an entry written with Write or with
	// zerolog.NoLevel (e.g. InfoLevel for what would go to stdout,
	// ErrorLevel for stderr).
	Default zerolog.Level
}

var _ zerolog.LevelWriter = (*LevelWriter)(nil)

// NewLevelWriter returns a LevelWriter on l whose plain writes have level def.
func NewLevelWriter(l EventLog, def zerolog.Level) *LevelWriter {
	return &LevelWriter{Log: l, Default: def}
}

// Write writes p as one entry (split if longer than the event log takes)
// with the Default level.
func (w *LevelWriter) Write(p []byte) (int, error) {
	return w.WriteLevel(zerolog.NoLevel, p)
}

// WriteLevel writes p, one log line, as one entry (split if longer than
// the event log takes) with the severity of level. It always reports all
// of p written; the first EventLog error is returned.
func (w *LevelWriter) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	if level == zerolog.NoLevel {
		level = w.Default
	}
	if level == zerolog.Disabled {
		return len(p), nil
	}
	emit := w.Log.Info
	id := uint32(EventInfo)
	switch level {
	case zerolog.ErrorLevel, zerolog.FatalLevel, zerolog.PanicLevel:
		emit, id = w.Log.Error, EventError
	case zerolog.WarnLevel:
		emit, id = w.Log.Warning, EventWarning
	}
	msg := bytes.TrimRight(p, "\r\n")
	var first error
	for len(bytes.TrimSpace(msg)) > 0 {
		n := min(len(msg), maxEntry)
		for n < len(msg) && n > 0 && !utf8.RuneStart(msg[n]) {
			n-- // do not split a character
		}
		if n == 0 {
			n = min(len(msg), maxEntry) // not UTF-8: split anywhere
		}
		if err := emit(id, string(msg[:n])); err != nil && first == nil {
			first = err
		}
		msg = msg[n:]
	}
	return len(p), first
}
