package winsvc

import (
	"bytes"
	"encoding/json"
	"sync"
)

// Level is the severity of an event-log entry.
type Level int

// Event-log severities.
const (
	LevelInfo Level = iota
	LevelWarning
	LevelError
)

func (l Level) String() string {
	switch l {
	case LevelWarning:
		return "warning"
	case LevelError:
		return "error"
	}
	return "info"
}

// LineLevel picks the event-log severity of one log line: the "level" field
// of a zerolog JSON line, the ERR/WRN/FTL/PNC mark of a console line, and
// error for the "rswebhooks: …" line main prints when it exits with an error.
func LineLevel(line []byte) Level {
	line = bytes.TrimSpace(line)
	if len(line) > 0 && line[0] == '{' {
		var v struct {
			Level string `json:"level"`
		}
		if json.Unmarshal(line, &v) == nil {
			switch v.Level {
			case "error", "fatal", "panic":
				return LevelError
			case "warn", "warning":
				return LevelWarning
			}
			return LevelInfo
		}
	}
	if bytes.HasPrefix(line, []byte("rswebhooks: ")) {
		return LevelError
	}
	for _, f := range bytes.Fields(line) {
		switch string(f) {
		case "ERR", "FTL", "PNC":
			return LevelError
		case "WRN":
			return LevelWarning
		}
	}
	return LevelInfo
}

// maxLine bounds one event-log entry; longer lines are split.
const maxLine = 16 << 10

// LineWriter turns a byte stream (the daemon's log output) into one Emit
// call per line, with the line's level. It is safe for concurrent use.
type LineWriter struct {
	// Emit receives each complete line without its newline.
	Emit func(Level, string) error

	mu  sync.Mutex
	buf []byte
}

// Write buffers p and emits every complete line. It always consumes all of
// p; the first Emit error is returned.
func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	var first error
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 && len(w.buf) < maxLine {
			break
		}
		if i < 0 || i > maxLine {
			i = maxLine
		}
		line := bytes.TrimRight(w.buf[:i], "\r")
		if len(bytes.TrimSpace(line)) > 0 {
			if err := w.Emit(LineLevel(line), string(line)); err != nil && first == nil {
				first = err
			}
		}
		if i < len(w.buf) && w.buf[i] == '\n' {
			i++
		}
		w.buf = w.buf[i:]
	}
	if len(w.buf) == 0 {
		w.buf = nil
	}
	return len(p), first
}

// Flush emits a trailing partial line, if any.
func (w *LineWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	line := bytes.TrimSpace(w.buf)
	w.buf = nil
	if len(line) == 0 {
		return nil
	}
	return w.Emit(LineLevel(line), string(line))
}
