package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/reportserver"
)

// A changed password is counted as refused and logged once, by its reason;
// an answer that is not a refusal is an error; the first login that works
// again is logged once too.
func TestServiceLoginsCountedAndLoggedOnChange(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	s := newServiceLogins(reg, zerolog.New(&logs))
	refused := fmt.Errorf("reportserver: POST /Token for %q: %w", "svc", reportserver.ErrBadCredentials)

	s.observe(nil)
	s.observe(refused)
	s.observe(refused)
	s.observe(refused)
	s.observe(errors.New("connection refused"))
	s.observe(nil)
	s.observe(nil)

	for result, want := range map[string]float64{"ok": 3, "refused": 3, "error": 1} {
		if got := testutil.ToFloat64(s.total.WithLabelValues(result)); got != want {
			t.Errorf("logins{result=%q} = %v, want %v", result, got, want)
		}
	}
	out := logs.String()
	if n := strings.Count(out, "refuses the service account's name or password"); n != 1 {
		t.Errorf("refusal logged %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "cannot log in"); n != 1 {
		t.Errorf("error logged %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "logs in again"); n != 1 {
		t.Errorf("recovery logged %d times, want once:\n%s", n, out)
	}
	if strings.Contains(out, "password\":") {
		t.Errorf("a log line carries a password field:\n%s", out)
	}
}
