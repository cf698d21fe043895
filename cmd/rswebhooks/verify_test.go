package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rswebhooks/rswebhooks/deliver"
)

func TestVerifyCommand(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	body := []byte("{\n  \"Id\": \"01ABC\",\n  \"Attempt\": 2\n}")
	file := filepath.Join(t.TempDir(), "body.json")
	os.WriteFile(file, body, 0o600)
	sig := deliver.Sign(secret, body)
	for _, tc := range []struct {
		name     string
		args     []string
		stdin    []byte
		code     int
		out, err string
	}{
		{"valid file", []string{"--secret", secret, "--signature", sig, file}, nil, 0, "valid", ""},
		{"valid stdin, lower-case hex", []string{"--secret", secret, "--signature", strings.ToLower(sig)}, body, 0, "valid", ""},
		{"wrong secret", []string{"--secret", secret + "x", "--signature", sig, file}, nil, 1, "", "does not match"},
		{"tampered body", []string{"--secret", secret, "--signature", sig}, append(body, ' '), 1, "", "does not match"},
		{"malformed header", []string{"--secret", secret, "--signature", "md5=00", file}, nil, 2, "", "malformed signature header"},
		{"missing file", []string{"--secret", secret, "--signature", sig, file + ".nope"}, nil, 2, "", "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binPath, append([]string{"verify"}, tc.args...)...)
			cmd.Stdin = bytes.NewReader(tc.stdin)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
				t.Fatalf("exit %d stdout %q stderr %q; want exit %d, %q, %q", code, stdout.String(), stderr.String(), tc.code, tc.out, tc.err)
			}
		})
	}
}
