package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/signature"
)

func TestVerifyCommand(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	body := []byte("{\n  \"Id\": \"01ABC\",\n  \"Attempt\": 2\n}")
	file := filepath.Join(t.TempDir(), "body.json")
	os.WriteFile(file, body, 0o600)
	sig := signature.Sign(secret, body)
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	std := signature.SignStandard(secret, "01DELIVERY", now, body)
	old := now.Add(-time.Hour)
	stdOld := signature.SignStandard(secret, "01DELIVERY", old, body)
	// A saved request as a receiver would log it: request line, headers, a
	// blank line, the body (and an editor's trailing newline).
	saved := func(name, eol string, ts time.Time, stdSig string) string {
		f := filepath.Join(t.TempDir(), name)
		head := []string{"POST /hooks/rs HTTP/1.1", "Host: receiver.example", "Content-Type: application/json; charset=utf-8",
			"Content-Length: " + strconv.Itoa(len(body)), "ms-signature: " + sig, "webhook-id: 01DELIVERY",
			"webhook-timestamp: " + strconv.FormatInt(ts.Unix(), 10), "webhook-signature: " + stdSig}
		os.WriteFile(f, []byte(strings.Join(head, eol)+eol+eol+string(body)+"\n"), 0o600)
		return f
	}
	crlf := saved("crlf.http", "\r\n", now, std)
	lf := saved("lf.http", "\n", now, std)
	oldReq := saved("old.http", "\r\n", old, stdOld)
	badStd := saved("bad.http", "\r\n", now, "v1,"+base64.StdEncoding.EncodeToString([]byte("not the mac of this body....")))
	whsec := "whsec_" + base64.StdEncoding.EncodeToString([]byte(secret))
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
		{"standard webhooks", []string{"--secret", secret, "--signature", std, "--id", "01DELIVERY", "--timestamp", ts, file}, nil, 0, "webhook-signature: valid\nvalid", ""},
		{"standard webhooks, whsec_ secret", []string{"--secret", whsec, "--signature", std, "--id", "01DELIVERY", "--timestamp", ts, file}, nil, 0, "valid", ""},
		{"standard webhooks, wrong id", []string{"--secret", secret, "--signature", std, "--id", "01OTHER", "--timestamp", ts, file}, nil, 1, "", "webhook-signature: signature does not match"},
		{"standard webhooks without --id", []string{"--secret", secret, "--signature", std, "--timestamp", ts, file}, nil, 2, "", "needs --id and --timestamp"},
		{"standard webhooks, old timestamp", []string{"--secret", secret, "--signature", stdOld, "--id", "01DELIVERY", "--timestamp", fmt.Sprint(old.Unix()), file}, nil, 1, "", "outside tolerance"},
		{"saved request, CRLF", []string{"--secret", secret, crlf}, nil, 0, "ms-signature: valid\nwebhook-signature: valid\nvalid", ""},
		{"saved request on stdin, LF", []string{"--secret", secret}, mustRead(t, lf), 0, "ms-signature: valid\nwebhook-signature: valid\nvalid", ""},
		{"saved old request", []string{"--secret", secret, oldReq}, nil, 1, "ms-signature: valid", "webhook-signature: webhook-timestamp outside tolerance"},
		{"saved old request, tolerance raised", []string{"--secret", secret, "--tolerance", "2h", oldReq}, nil, 0, "webhook-signature: valid", ""},
		{"saved request, one bad signature", []string{"--secret", secret, badStd}, nil, 1, "ms-signature: valid", "webhook-signature: signature does not match"},
		{"no signature at all", []string{"--secret", secret, file}, nil, 2, "", "no signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binPath, append([]string{"verify"}, tc.args...)...)
			cmd.Stdin = bytes.NewReader(tc.stdin)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
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

func mustRead(t *testing.T, f string) []byte {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
