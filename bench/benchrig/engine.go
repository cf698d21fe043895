package benchrig

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/deliver"
)

// CreateWebhooks stores n webhooks matching every event that post to uri,
// each with a property that brings a notification's body to about 1 KB.
func CreateWebhooks(ctx context.Context, s rswebhooks.Store, n int, uri string) error {
	now := time.Now().UTC()
	pad := strings.Repeat("x", 560)
	for range n {
		w := &rswebhooks.Webhook{
			ID: rswebhooks.NewID(now), URI: uri, Secret: "0123456789abcdef0123456789abcdef",
			Filters: []string{"*"}, User: rswebhooks.User{ID: "u1", Name: "bench"},
			Properties: map[string]json.RawMessage{"pad": json.RawMessage(strconv.Quote(pad))}, CreatedUTC: now, UpdatedUTC: now,
		}
		if err := s.CreateWebhook(ctx, w); err != nil {
			return err
		}
	}
	return nil
}

// NewEngine returns a delivery engine on s with the given concurrency
// (the daemon's defaults are 16 and 4), signing for real and allowed to
// post to loopback only.
func NewEngine(s rswebhooks.Store, maxConcurrency, perWebhook int) (*deliver.Engine, error) {
	return deliver.New(deliver.Options{
		Store: s, Access: deliver.AllowAll{}, MaxConcurrency: maxConcurrency, PerWebhookConcurrency: perWebhook,
		Client: deliver.NewHTTPClient(deliver.ClientOptions{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}),
		Logger: zerolog.Nop(), Version: "bench",
	})
}

// Feed calls add with events 0 to n-1, each dated when it is made, at rate
// events per second (0: as fast as add returns), and stops at add's first
// error.
func Feed(n, rate int, add func(i int, ev *rswebhooks.Event) error) error {
	start := time.Now()
	var interval time.Duration
	if rate > 0 {
		interval = time.Second / time.Duration(rate)
	}
	for i := range n {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d) // pacing the load generator, not synchronisation
			}
		}
		t := time.Now().UTC()
		ev := &rswebhooks.Event{ID: rswebhooks.NewID(t), Filter: "reports", Type: "Created", ResourceID: fmt.Sprint(i),
			ResourceName: "Report", UserID: "u1", UserName: "bench", Time: t, APIVersion: "v2", Method: "POST",
			Path: "/api/reportserver/v2/reports"}
		if err := add(i, ev); err != nil {
			return err
		}
	}
	return nil
}

// Receiver answers every notification 204 at once and counts them; with
// Latency it records, for first attempts, the arrival time minus the
// event's TimestampUtc.
type Receiver struct {
	total   int64
	latency bool
	done    chan struct{}
	got     atomic.Int64
	mu      sync.Mutex
	lat     []time.Duration
}

// NewReceiver returns a receiver that is done after total notifications.
func NewReceiver(total int, latency bool) *Receiver {
	return &Receiver{total: int64(total), latency: latency, done: make(chan struct{})}
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	const key = `"TimestampUtc": "`
	body, _ := io.ReadAll(req.Body)
	arrived := time.Now()
	if r.latency {
		if i := strings.Index(string(body), key); i >= 0 && strings.Contains(string(body), `"Attempt": 1,`) {
			s := string(body[i+len(key):])
			if t, err := time.Parse(time.RFC3339Nano, s[:strings.IndexByte(s, '"')]); err == nil {
				r.mu.Lock()
				r.lat = append(r.lat, arrived.Sub(t))
				r.mu.Unlock()
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
	if r.got.Add(1) == r.total {
		close(r.done)
	}
}

// Wait waits up to d until every notification arrived.
func (r *Receiver) Wait(d time.Duration) error {
	select {
	case <-r.done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("only %d of %d deliveries after %s", r.got.Load(), r.total, d)
	}
}

// Latencies returns the recorded latencies, sorted.
func (r *Receiver) Latencies() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.lat)
	slices.Sort(out)
	return out
}
