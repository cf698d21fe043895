package demo

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// syncBuffer is a bytes.Buffer safe for the receiver's and the script's
// concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDemoDeliversVerifiedNotifications(t *testing.T) {
	var out syncBuffer
	var metrics string
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	err := Run(ctx, Options{
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", SimListen: "127.0.0.1:0",
		Out: &out, Logger: zerolog.Nop(),
		Scripted: func(_, adminURL string) {
			// The receiver answers before the engine records the success:
			// poll the metrics (bounded) until the fourth is counted.
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				resp, err := http.Get(adminURL + "/metrics")
				if err != nil {
					t.Error(err)
					return
				}
				var b bytes.Buffer
				b.ReadFrom(resp.Body)
				resp.Body.Close()
				if metrics = b.String(); strings.Contains(metrics, `rswebhooks_deliveries_total{outcome="succeeded"} 4`) {
					return
				}
				<-time.After(20 * time.Millisecond)
			}
		},
	})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"categories Created", "reports    Created", "reports    Updated", "reports    Deleted",
		"4 notifications delivered and verified",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "✓"); n != 4 {
		t.Errorf("%d verified deliveries printed, want 4:\n%s", n, text)
	}
	if strings.Contains(text, "✗") {
		t.Errorf("a notification failed verification:\n%s", text)
	}
	if !strings.Contains(metrics, `rswebhooks_deliveries_total{outcome="succeeded"} 4`) {
		t.Errorf("metrics do not count 4 successful deliveries:\n%s", grepLines(metrics, "rswebhooks_deliveries_total"))
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
