package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// TestTLSListener: --tls-cert/--tls-key serve the proxy over TLS.
func TestTLSListener(t *testing.T) {
	up := httptest.NewServer(simulator.New(simulator.Options{}))
	defer up.Close()
	certFile, keyFile, pool := selfSigned(t)
	r := start(t, Options{Upstream: up.URL, TLSCert: certFile, TLSKey: keyFile, WatchInterval: 0})
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(strings.Replace(r.proxyURL, "http://", "https://", 1) + "/api/reports/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("TLS proxy: status %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
}

// TestShutdownDrainsInFlightRequests: a request in flight when the daemon is
// told to stop still completes; Run returns once it has.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	}))
	defer up.Close()
	r := start(t, Options{Upstream: up.URL, WatchInterval: 0, ShutdownTimeout: 10 * time.Second})
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(r.proxyURL + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{string(b), err}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()
	// New connections are refused once shutdown began; wait for that.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(r.proxyURL, "http://"), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the proxy listener still accepts connections during shutdown")
		}
		<-time.After(10 * time.Millisecond)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) while a request was in flight", err)
	default:
	}
	close(release)
	if res := <-got; res.err != nil || res.body != "done" {
		t.Fatalf("in-flight request: %q, %v", res.body, res.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestScheduledRunIsDelivered: a task the report server runs on its own
// (no API call) reaches a subscribed receiver as one Executed notification.
func TestScheduledRunIsDelivered(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	cat, _ := sim.CreateCategory("Ops")
	rep, _ := sim.CreateReport(cat, "Nightly", "")
	task, _ := sim.CreateTask(rep, "Nightly run", "")
	const operator = "operator-token-for-the-watcher"
	r := start(t, Options{Upstream: up.URL, AdminToken: operator, ServiceUser: "admin", ServicePassword: "admin",
		WatchInterval: time.Second, AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	exec, got := runTaskNotified(t, r, sim, operator, task)
	if len(got) != 1 || got[0]["Action"] != "tasks" || got[0]["EventType"] != "Executed" ||
		got[0]["ResourceId"] != task || got[0]["ExecutionId"] != exec.Id {
		t.Fatalf("notifications %v, want one Executed for task %s execution %s", got, task, exec.Id)
	}
}

// runTaskNotified subscribes a receiver to "tasks" (registered with the
// operator token), waits for the watcher's first successful poll (it
// records the state it finds, so a run after it is new), runs task at the
// report server as if on its schedule and waits up to 30 s for a
// notification. It returns the run and every notification received.
func runTaskNotified(t *testing.T, r *running, sim *simulator.Server, operator, task string) (simulator.Execution, []map[string]any) {
	t.Helper()
	in := newInbox(t)
	if st, b := call(t, "POST", r.adminURL+"/api/webhooks/registrations", operator,
		fmt.Sprintf(`{"WebHookUri":%q,"Filters":["tasks"]}`, in.srv.URL+"/?noecho=1")); st != http.StatusCreated {
		t.Fatalf("register: %d %s", st, b)
	}
	waitMetric(t, r.adminURL, `rswebhooks_watcher_polls_total{result="ok"}`)
	exec, err := sim.RunTask(task)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a notification for the scheduled run", func() bool { return in.count() > 0 })
	return exec, in.all()
}

// waitMetric polls /metrics (bounded) until a sample with that name and
// labels has a value of at least 1.
func waitMetric(t *testing.T, adminURL, series string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, body := get(t, adminURL+"/metrics")
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok && v != "0" {
				return
			}
		}
		<-time.After(50 * time.Millisecond)
	}
	t.Fatalf("metric %s never became non-zero", series)
}

func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
