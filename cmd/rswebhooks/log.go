package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// newLogger builds the process logger from --log-level and --log-format.
func newLogger(level, format string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("--log-level: %q is not one of trace, debug, info, warn, error", level)
	}
	switch format {
	case "json":
	case "console":
		cw := zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !isTerminal(w)}
		if lw, ok := w.(zerolog.LevelWriter); ok {
			w = consoleLevels{cw: cw, out: lw}
		} else {
			w = cw
		}
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format: %q is not json or console", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// consoleLevels formats entries like zerolog.ConsoleWriter and hands them
// on with their level (ConsoleWriter alone drops it).
type consoleLevels struct {
	cw  zerolog.ConsoleWriter
	out zerolog.LevelWriter
}

func (c consoleLevels) Write(p []byte) (int, error) { return c.WriteLevel(zerolog.NoLevel, p) }

func (c consoleLevels) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	var buf bytes.Buffer
	cw := c.cw
	cw.Out = &buf
	if _, err := cw.Write(p); err != nil {
		return 0, err
	}
	if _, err := c.out.WriteLevel(l, buf.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// serveLogs returns the writer serve logs to and the loop that flushes it.
// A zerolog.LevelWriter (the Windows event log, see runAsServiceIfNeeded)
// gets each entry with its level as it is logged. Any other gets buffered lines: the access log
// is one line per proxied request, so the daemon makes a write(2) per
// batch, not per request.
func serveLogs(w io.Writer) (io.Writer, func(ctx context.Context) error) {
	if lw, ok := w.(zerolog.LevelWriter); ok {
		return lw, func(ctx context.Context) error { <-ctx.Done(); return nil }
	}
	b := newBufferedLog(w)
	return b, b.Run
}

// isTerminal reports whether w is a character device (a terminal), so that
// console logs carry colour codes only there, not in files or journald.
func isTerminal(w io.Writer) bool {
	if b, ok := w.(*bufferedLog); ok {
		w = b.out
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// logFlushInterval bounds how long a buffered log line waits before it is written.
const logFlushInterval = 100 * time.Millisecond

// bufferedLog batches log lines (the proxy's access log: one line per
// request) into few write(2) calls. Lines at warn level and above, and every
// line once the 64 KiB buffer fills, are written at once; the rest within
// logFlushInterval. Lines are never split or interleaved. Run flushes on its
// ticker and once more when ctx ends, so a clean shutdown loses nothing.
type bufferedLog struct {
	out io.Writer // what the buffer writes to
	mu  sync.Mutex
	w   *bufio.Writer
}

var _ zerolog.LevelWriter = (*bufferedLog)(nil)

func newBufferedLog(w io.Writer) *bufferedLog {
	return &bufferedLog{out: w, w: bufio.NewWriterSize(w, 64<<10)}
}

// Write implements io.Writer; p is one whole line.
func (b *bufferedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(p) > b.w.Available() && b.w.Buffered() > 0 {
		_ = b.w.Flush() // keep p whole in the next write
	}
	return b.w.Write(p)
}

// WriteLevel implements zerolog.LevelWriter: warnings and errors go out at once.
func (b *bufferedLog) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	n, err := b.Write(p)
	if err == nil && l >= zerolog.WarnLevel && l != zerolog.NoLevel {
		err = b.Flush()
	}
	return n, err
}

// Flush writes out what is buffered.
func (b *bufferedLog) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Flush()
}

// Run flushes every logFlushInterval until ctx ends, then once more.
func (b *bufferedLog) Run(ctx context.Context) error {
	t := time.NewTicker(logFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return b.Flush()
		case <-t.C:
			_ = b.Flush()
		}
	}
}
