//go:build !windows

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/testutil"
)

// readmeRecipe returns the shell lines of the README block that follows the
// "recipe" marker.
func readmeRecipe(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "<!-- recipe:")
	if !ok {
		t.Fatal("README.md has no <!-- recipe: … --> block")
	}
	_, after, _ = strings.Cut(after, "```sh\n")
	block, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatal("the README recipe block is not closed")
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(block), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestReadmeRecipe runs the README's local recipe as written — the binary
// swapped for the one under test and the fixed ports for free ones — then
// makes a change through the proxy and waits for the receiver to print the
// verified notification.
func TestReadmeRecipe(t *testing.T) {
	lines := readmeRecipe(t)
	if len(lines) < 4 {
		t.Fatalf("the recipe has %d lines: %q", len(lines), lines)
	}
	dir := t.TempDir()
	simAddr, rcvAddr, proxyAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	fix := strings.NewReplacer("./bin/rswebhooks", binPath, "127.0.0.1:8083", simAddr, "127.0.0.1:9000", rcvAddr)
	env := append(os.Environ(),
		"RSWEBHOOKS_LISTEN="+proxyAddr, "RSWEBHOOKS_ADMIN_LISTEN="+adminAddr, "RSWEBHOOKS_ADMIN_URL=http://"+adminAddr,
		"RSWEBHOOKS_DATA_DIR="+filepath.Join(dir, "data"))

	outputs := map[string]*testutil.SyncBuffer{}
	for _, line := range lines {
		cmdLine := fix.Replace(line)
		background := strings.HasSuffix(cmdLine, "&")
		cmdLine = strings.TrimSpace(strings.TrimSuffix(cmdLine, "&"))
		cmd := exec.Command("bash", "-c", cmdLine)
		cmd.Dir, cmd.Env = dir, env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out := &testutil.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if !background {
			// The foreground lines follow what a user waits for: the
			// daemon's admin listener and the receiver answering.
			if strings.Contains(cmdLine, "webhooks add") {
				waitHTTP(t, "http://"+adminAddr+"/healthz")
				waitHTTP(t, "http://"+rcvAddr+"/?echo=up")
			}
			if err := cmd.Run(); err != nil {
				t.Fatalf("recipe line %q: %v\n%s", line, err, out.String())
			}
			continue
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("recipe line %q: %v", line, err)
		}
		outputs[line] = out
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
				t.Errorf("%q did not stop on Ctrl-C within 15s", line)
			}
		})
	}
	var rcvOut *testutil.SyncBuffer
	for line, out := range outputs {
		if strings.Contains(line, " receiver ") {
			rcvOut = out
		}
	}
	if rcvOut == nil {
		t.Fatal("the recipe starts no receiver")
	}

	// A change through the proxy, as admin.
	proxy := "http://" + proxyAddr
	res, err := http.PostForm(proxy+"/Token", url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	req, _ := http.NewRequest("POST", proxy+"/api/reportserver/v2/categories", strings.NewReader(`{"Name":"From the README"}`))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("creating a category through the proxy: %d", res.StatusCode)
	}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		sc := bufio.NewScanner(strings.NewReader(rcvOut.String()))
		for sc.Scan() {
			if l := sc.Text(); strings.Contains(l, "✓ categories Created") && strings.Contains(l, `"From the README"`) && strings.Contains(l, "signatures verified") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver printed no verified notification within 30s:\n%s", rcvOut.String())
		}
		<-tick.C
	}
}

// waitHTTP waits (at most 20 s) until u answers 2xx.
func waitHTTP(t *testing.T, u string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode/100 == 2 {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s did not answer within 20s", u)
		case <-tick.C:
		}
	}
}
