package deliver

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/signature"
	"github.com/rswebhooks/rswebhooks/store"
)

const rotatedSecret = "fedcba9876543210fedcba9876543210-rotated"

// offsetClock is the store's clock: the real time plus an offset a test
// moves forward to end a grace period (the engine keeps the real time, so
// the Standard Webhooks timestamp stays within the verifier's tolerance).
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// newRotationHarness is newHarness with a store on an offsetClock.
func newRotationHarness(t *testing.T) (*harness, *offsetClock) {
	t.Helper()
	clk := &offsetClock{}
	db, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: db, reg: prometheus.NewRegistry(), finished: make(chan rswebhooks.Delivery, 1000), now: time.Now}
	e, err := New(Options{
		Store: db, Access: AllowAll{}, Client: loopbackClient(5 * time.Second),
		Policy:         Policy{Delays: []time.Duration{time.Millisecond, time.Millisecond}},
		AttemptTimeout: 5 * time.Second, Registerer: h.reg, Logger: zerolog.Nop(), Version: "1.2.3",
	})
	if err != nil {
		t.Fatal(err)
	}
	e.onComplete = func(d rswebhooks.Delivery) { h.finished <- d }
	h.e = e
	t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
		}
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return h, clk
}

// endGrace moves the store's clock past every grace period and lets the
// store erase the previous secrets, as its Run loop does.
func endGrace(t *testing.T, h *harness, clk *offsetClock) {
	t.Helper()
	clk.off.Store(int64(rswebhooks.MaxRotationGrace + time.Minute))
	ended, err := h.db.EndRotations(context.Background())
	if err != nil || len(ended) == 0 {
		t.Fatalf("EndRotations = %v, %v; want a rotation ended", ended, err)
	}
}

// deliverBatch appends n events and waits until each is delivered.
func deliverBatch(t *testing.T, h *harness, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		h.addEvent(rswebhooks.FilterReports, "r")
	}
	for i := 0; i < n; i++ {
		if d := h.nextFinal(); d.State != rswebhooks.DeliverySucceeded {
			t.Fatalf("delivery %s ended %s (%s), want succeeded", d.ID, d.State, d.Reason)
		}
	}
}

// A Standard Webhooks receiver may hold the old or the new secret at any
// moment of the grace period: the reference verifier accepts every
// notification with either; after the grace period only the new one.
func TestRotationStandardWebhooksVerifierOldAndNewSecret(t *testing.T) {
	needNode(t)
	h, clk := newRotationHarness(t)
	got := make(chan received, 100)
	srv := httptest.NewServer(receiver(got, nil))
	defer srv.Close()
	w := h.addWebhook(srv.URL+"/hook", nil)
	h.start()

	if _, err := h.db.RotateSecret(context.Background(), w.ID, rotatedSecret, time.Hour); err != nil {
		t.Fatal(err)
	}
	const n = 4
	deliverBatch(t, h, n)
	for i := 0; i < n; i++ {
		r := recv(t, got, "a notification during the grace period")
		if sigs := bytes.Fields([]byte(r.Header.Get(signature.HeaderWebhookSignature))); len(sigs) != 2 {
			t.Fatalf("webhook-signature during grace = %q, want two entries", r.Header.Get(signature.HeaderWebhookSignature))
		}
		if !standardAccepts(t, testSecret, r) {
			t.Errorf("notification %d: rejected with the old secret during the grace period", i)
		}
		if !standardAccepts(t, rotatedSecret, r) {
			t.Errorf("notification %d: rejected with the new secret during the grace period", i)
		}
		// ms-signature stays on the old secret until promoted.
		if err := signature.Verify(testSecret, r.Header.Get(signature.HeaderSignature), r.Body); err != nil {
			t.Errorf("notification %d: ms-signature not signed with the old secret before promotion: %v", i, err)
		}
	}

	endGrace(t, h, clk)
	deliverBatch(t, h, n)
	for i := 0; i < n; i++ {
		r := recv(t, got, "a notification after the grace period")
		if standardAccepts(t, testSecret, r) {
			t.Errorf("notification %d: accepted with the old secret after the grace period", i)
		}
		if !standardAccepts(t, rotatedSecret, r) {
			t.Errorf("notification %d: rejected with the new secret after the grace period", i)
		}
		if err := signature.Verify(rotatedSecret, r.Header.Get(signature.HeaderSignature), r.Body); err != nil {
			t.Errorf("notification %d: ms-signature after the grace period: %v", i, err)
		}
	}
}

// aspNetReceiver checks ms-signature like an ASP.NET WebHooks custom
// receiver: the secret is looked up by the {id} at the end of the path
// (MS_WebHookReceiverSecret_Custom = "a=<secret>,b=<secret>"), a missing
// id or a wrong signature is answered 400 and counted as a rejection.
type aspNetReceiver struct {
	mu       sync.Mutex
	secrets  map[string]string
	accepted map[string]int
	rejected []string
}

func (a *aspNetReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.PathValue("id")
	a.mu.Lock()
	defer a.mu.Unlock()
	secret, ok := a.secrets[id]
	if !ok {
		a.rejected = append(a.rejected, id+": no secret for this receiver id")
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if err := signature.Verify(secret, r.Header.Get(signature.HeaderSignature), body); err != nil {
		a.rejected = append(a.rejected, id+": "+err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	a.accepted[id]++
	w.WriteHeader(http.StatusOK)
}

func (a *aspNetReceiver) set(id, secret string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if secret == "" {
		delete(a.secrets, id)
		return
	}
	a.secrets[id] = secret
}

func (a *aspNetReceiver) counts() (map[string]int, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := make(map[string]int, len(a.accepted))
	for k, v := range a.accepted {
		c[k] = v
	}
	return c, append([]string(nil), a.rejected...)
}

// The ms-signature path of docs/rotation.md, step by step, with
// notifications flowing between the steps: the receiver never rejects one.
func TestRotationASPNetPathNeverRejects(t *testing.T) {
	h, clk := newRotationHarness(t)
	rcv := &aspNetReceiver{secrets: map[string]string{"a": testSecret}, accepted: map[string]int{}}
	mux := http.NewServeMux()
	mux.Handle("POST /api/webhooks/incoming/custom/{id}", rcv)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	w := h.addWebhook(srv.URL+"/api/webhooks/incoming/custom/a", nil)
	h.start()
	ctx := context.Background()
	const n = 3

	deliverBatch(t, h, n) // before the rotation
	// 1. Rotate: ms-signature keeps the old secret.
	if _, err := h.db.RotateSecret(ctx, w.ID, rotatedSecret, 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	deliverBatch(t, h, n)
	// 2. The receiver learns the new secret under a second id, keeping a.
	rcv.set("b", rotatedSecret)
	deliverBatch(t, h, n)
	// 3. Promote with the new URL: secret and URL switch in one write.
	if _, err := h.db.PromoteRotation(ctx, w.ID, srv.URL+"/api/webhooks/incoming/custom/b"); err != nil {
		t.Fatal(err)
	}
	deliverBatch(t, h, n)
	// 4. The receiver drops the old secret; the grace period ends.
	rcv.set("a", "")
	deliverBatch(t, h, n)
	endGrace(t, h, clk)
	deliverBatch(t, h, n)

	acc, rej := rcv.counts()
	if len(rej) != 0 {
		t.Fatalf("the receiver rejected %d notifications: %q", len(rej), rej)
	}
	if acc["a"] != 3*n || acc["b"] != 3*n {
		t.Fatalf("accepted per receiver id = %v, want a:%d b:%d", acc, 3*n, 3*n)
	}
}
