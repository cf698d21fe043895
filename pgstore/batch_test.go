package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// queued waits until b holds n requests not yet sent.
func queued[Req, Res any](t *testing.T, b *batcher[Req, Res], n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		b.mu.Lock()
		got := len(b.queue)
		b.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued after 10s, want %d", got, n)
		}
		<-tick.C
	}
}

// Requests made while a batch is in flight go together in the next one,
// in one call of run, and each caller gets its own result.
func TestBatcherGroupsWaitingRequests(t *testing.T) {
	release, inflight := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var batches [][]int
	b := &batcher[int, string]{run: func(_ context.Context, reqs []int) ([]string, error) {
		mu.Lock()
		batches = append(batches, slices.Clone(reqs))
		first := len(batches) == 1
		mu.Unlock()
		if first {
			close(inflight)
			<-release
		}
		out := make([]string, len(reqs))
		for i, r := range reqs {
			out[i] = fmt.Sprint("r", r)
		}
		return out, nil
	}}
	ctx := context.Background()
	results := make(chan string, 6)
	go func() { r, _ := b.do(ctx, 0); results <- r }()
	<-inflight
	for i := 1; i <= 5; i++ {
		go func() {
			r, err := b.do(ctx, i)
			if err != nil {
				r = err.Error()
			}
			results <- fmt.Sprint(i, "=", r)
		}()
	}
	queued(t, b, 5)
	close(release)
	got := map[string]bool{}
	for range 6 {
		got[<-results] = true
	}
	for i := 1; i <= 5; i++ {
		if want := fmt.Sprint(i, "=r", i); !got[want] {
			t.Fatalf("results %v lack %s", got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(batches) != 2 || len(batches[0]) != 1 || len(batches[1]) != 5 {
		t.Fatalf("batches %v, want [0] then the five waiting together", batches)
	}
}

// A request whose context ended before its batch was sent is not sent; an
// error of run reaches every caller of the batch.
func TestBatcherDropsCancelledAndSharesErrors(t *testing.T) {
	release, inflight := make(chan struct{}), make(chan struct{})
	boom := errors.New("boom")
	var mu sync.Mutex
	var sent [][]int
	b := &batcher[int, int]{run: func(_ context.Context, reqs []int) ([]int, error) {
		mu.Lock()
		sent = append(sent, slices.Clone(reqs))
		first := len(sent) == 1
		mu.Unlock()
		if first {
			close(inflight)
			<-release
			return []int{0}, nil
		}
		return nil, boom
	}}
	bg := context.Background()
	first := make(chan error, 1)
	go func() { _, err := b.do(bg, 0); first <- err }()
	<-inflight
	cctx, cancel := context.WithCancel(bg)
	cancelled := make(chan error, 1)
	go func() { _, err := b.do(cctx, 1); cancelled <- err }()
	queued(t, b, 1)
	kept := make(chan error, 1)
	go func() { _, err := b.do(bg, 2); kept <- err }()
	queued(t, b, 2)
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first = %v", err)
	}
	if err := <-kept; !errors.Is(err, boom) {
		t.Fatalf("caller of a failed batch got %v, want its error", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 2 || !slices.Equal(sent[1], []int{2}) {
		t.Fatalf("sent %v, want [0] then [2] (1 was cancelled before it went)", sent)
	}
}

// A transaction PostgreSQL aborted as a deadlock's victim or a
// serialization failure is sent again, up to abortedTries times; any other
// error, or a caller gone, is returned at once.
func TestAgainIfAborted(t *testing.T) {
	deadlock := fmt.Errorf("complete: %w", &pgconn.PgError{Code: "40P01", Message: "deadlock detected"})
	serial := &pgconn.PgError{Code: "40001", Message: "could not serialize access"}
	other := &pgconn.PgError{Code: "23505", Message: "duplicate key"}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		errs      []error // f's answers, in turn; nil: success
		wantCalls int
		wantErr   error
	}{
		{"deadlock then success", context.Background(), []error{deadlock, nil}, 2, nil},
		{"serialization failure twice then success", context.Background(), []error{serial, serial, nil}, 3, nil},
		{"aborted every time", context.Background(), []error{deadlock, deadlock, deadlock, nil}, abortedTries, deadlock},
		{"another error", context.Background(), []error{other, nil}, 1, other},
		{"caller gone", cancelled, []error{deadlock, nil}, 1, deadlock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			v, err := againIfAborted(tc.ctx, func() (int, error) {
				err := tc.errs[calls]
				calls++
				if err != nil {
					return 0, err
				}
				return 42, nil
			})
			if calls != tc.wantCalls {
				t.Errorf("f called %d times, want %d", calls, tc.wantCalls)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && v != 42 {
				t.Errorf("value = %d, want f's 42", v)
			}
		})
	}
}
