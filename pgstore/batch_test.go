package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
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
