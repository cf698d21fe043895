package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

func TestServeRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"no upstream", []string{"serve"}, nil, "--upstream: is required"},
		{"relative upstream", []string{"serve", "--upstream", "rs.local"}, nil, "--upstream: must be an absolute http or https URL"},
		{"bad delay", []string{"serve", "--upstream", "http://127.0.0.1:1", "--retry-delays", "1s,soon"}, nil, `--retry-delays: entry 2 "soon" is not a Go duration`},
		{"bad cidr", []string{"serve", "--upstream", "http://127.0.0.1:1", "--allow-target", "ten"}, nil, `--allow-target: "ten" is not a CIDR`},
		{"tls half", []string{"serve", "--upstream", "http://127.0.0.1:1", "--tls-cert", "c.pem"}, nil, "--tls-cert: and --tls-key must be given together"},
		{"bad node name", []string{"serve", "--upstream", "http://127.0.0.1:1", "--node-name", "node one"}, nil, `--node-name: may hold only letters, digits`},
		{"node name from env", []string{"serve", "--upstream", "http://127.0.0.1:1"}, []string{"RSWEBHOOKS_NODE_NAME=node/1"}, `--node-name: may hold only letters, digits`},
		{"env is read", []string{"serve"}, []string{"RSWEBHOOKS_UPSTREAM=ftp://x"}, "--upstream: must be an absolute http or https URL"},
		{"int flag that does not parse", []string{"serve", "--upstream", "http://127.0.0.1:1", "--capture-limit", "1x"}, nil, `invalid value "1x" for flag -capture-limit`},
		{"bad log level", []string{"serve", "--upstream", "http://127.0.0.1:1", "--log-level", "loud"}, nil, `--log-level: "loud" is not one of`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binPath, tc.args...)
			cmd.Env = append(os.Environ(), tc.env...)
			cmd.Dir = t.TempDir()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want status 2; stderr:\n%s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stderr %q does not contain %q", stderr.String(), tc.want)
			}
			if _, err := os.Stat(filepath.Join(cmd.Dir, "data")); err == nil {
				t.Fatal("a refused start created the data directory")
			}
		})
	}
}

func TestConfigFileMistakesAreRefused(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "upstream: http://127.0.0.1:1\nlisen: \":1\"\n", `line 2: "lisen" is not a serve flag`},
		{"wrong type", "upstream: http://127.0.0.1:1\nmax-concurrency: lots\n", "Mismatched type for flag 'max-concurrency'"},
		{"not a mapping", "- upstream\n", "line 1: want a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			os.WriteFile(file, []byte(tc.yaml), 0o600)
			cmd := exec.Command(binPath, "serve", "--config", file)
			cmd.Dir = dir
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2; stderr %s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stderr.String(), file) {
				t.Fatalf("stderr %q lacks %q and the file name", stderr.String(), tc.want)
			}
		})
	}
}

// TestConfigFileAndEnvPrecedence: the --config file supplies flags, the
// environment overrides it and command-line flags override both.
func TestConfigFileAndEnvPrecedence(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "rswebhooks.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("upstream: http://127.0.0.1:1\nadmin-token: from-the-config-file-0001\ndata-dir: %s\nwatch-interval: 0s\n", filepath.Join(dir, "data"))), 0o600)
	t.Setenv("RSWEBHOOKS_UPSTREAM", up.URL) // env beats the file
	p := startDaemon(t, "--config", cfg)
	c := &http.Client{Timeout: 5 * time.Second}
	if status, body := doJSON(t, c, "GET", p.adminURL+"/api/webhooks/registrations", "from-the-config-file-0001", ""); status != 200 {
		t.Fatalf("operator token from the config file refused: %d %s", status, body)
	}
	if status, _ := doJSON(t, c, "GET", p.proxyURL+"/api/reportserver/v2/categories", "", ""); status != http.StatusUnauthorized {
		t.Fatalf("proxy did not reach the simulator from RSWEBHOOKS_UPSTREAM: status %d", status)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Fatalf("data-dir from the config file not used: %v", err)
	}
	p.stop()
}

// TestRegistrationsPersistAcrossRestart: a webhook registered through the
// admin API is there after a restart, and neither its secret, nor a secret
// in its URL, nor the operator token appears in any log line.
func TestRegistrationsPersistAcrossRestart(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.URL.Query().Get("echo")))
	}))
	defer rcv.Close()
	dir := t.TempDir()
	const operator = "persisted-operator-token-123"
	const secret = "a-secret-that-must-never-be-logged-0123456789"
	args := []string{"--upstream", up.URL, "--data-dir", dir, "--admin-token", operator, "--allow-target", "127.0.0.1/32", "--watch-interval", "0"}
	p := startDaemon(t, args...)
	c := &http.Client{Timeout: 5 * time.Second}
	status, body := doJSON(t, c, "POST", p.adminURL+"/api/webhooks/registrations", operator,
		fmt.Sprintf(`{"WebHookUri":%q,"Secret":%q,"Description":"kept","Filters":["Reports","TASKS"]}`, rcv.URL+"/in?token=url-secret-123", secret))
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	// A user's token learned at /Token through the proxy keeps working
	// after a restart (checked again with the report server first).
	resp, err := c.PostForm(p.proxyURL+"/Token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Access_token string }
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if status, body := doJSON(t, c, "GET", p.adminURL+"/api/webhooks/registrations", tok.Access_token, ""); status != 200 {
		t.Fatalf("alice before restart: %d %s", status, body)
	}
	p.stop()

	p2 := startDaemon(t, args...)
	if status, body := doJSON(t, c, "GET", p2.adminURL+"/api/webhooks/registrations", tok.Access_token, ""); status != 200 {
		t.Fatalf("alice's token after restart: %d %s", status, body)
	}
	status, body = doJSON(t, c, "GET", p2.adminURL+"/api/webhooks/registrations", operator, "")
	if status != 200 || !bytes.Contains(body, []byte(`"Description":"kept"`)) || !bytes.Contains(body, []byte(`"Filters":["reports","tasks"]`)) {
		t.Fatalf("after restart: %d %s", status, body)
	}
	p2.stop()

	logs := p.logText() + p2.logText()
	for _, s := range []string{secret, operator, "url-secret-123", tok.Access_token} {
		if strings.Contains(logs, s) {
			t.Errorf("log output contains the secret %q", s)
		}
	}
}
