package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestConsoleLogsHaveNoColourOutsideATerminal(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger("info", "console", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Str("k", "v").Msg("hello")
	if out := buf.String(); strings.Contains(out, "\x1b[") || !strings.Contains(out, "hello") {
		t.Fatalf("console log to a buffer: %q", out)
	}
}

func TestBufferedLogBatchesInfoAndFlushesWarnAndShutdown(t *testing.T) {
	var out bytes.Buffer
	logs := newBufferedLog(&out)
	log, err := newLogger("info", "json", logs)
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("one")
	if out.Len() != 0 {
		t.Fatalf("info line written before a flush: %q", out.String())
	}
	log.Warn().Msg("two")
	if got := out.String(); !strings.Contains(got, `"one"`) || !strings.Contains(got, `"two"`) ||
		strings.Index(got, `"one"`) > strings.Index(got, `"two"`) {
		t.Fatalf("a warning must flush everything before it, in order: %q", got)
	}
	log.Info().Msg("three")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- logs.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if got := out.String(); strings.Count(got, "\n") != 3 || !strings.Contains(got, `"three"`) {
		t.Fatalf("shutdown must flush the last line: %q", got)
	}
}

func TestBufferedLogKeepsLinesWhole(t *testing.T) {
	var out bytes.Buffer
	logs := newBufferedLog(&out)
	line := strings.Repeat("x", 40<<10) + "\n" // two of these do not fit the 64 KiB buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if _, err := logs.Write([]byte(line)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := logs.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 160 {
		t.Fatalf("got %d lines, want 160", len(lines))
	}
	for i, l := range lines {
		if l != line[:len(line)-1] {
			t.Fatalf("line %d is split or interleaved (%d bytes)", i, len(l))
		}
	}
}
