package main

import (
	"bytes"
	"strings"
	"testing"
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
