package pgstore

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
)

// maxBatch bounds the requests one statement carries.
const maxBatch = 128

// batcher sends concurrent requests of one kind in shared round trips
// (group commit): a request arriving while none is in flight goes at once,
// alone; those arriving while one is in flight wait for it and then go
// together, in one statement and one transaction. A caller returns after
// its own request's result is known, so a write is as durable at return as
// when sent alone; under load, many callers share one round trip and one
// commit instead of queueing for connections.
type batcher[Req, Res any] struct {
	// run executes reqs in one round trip and returns one result per
	// request, or an error for all of them.
	run func(ctx context.Context, reqs []Req) ([]Res, error)

	mu      sync.Mutex
	queue   []*call[Req, Res]
	running bool
}

type call[Req, Res any] struct {
	ctx  context.Context
	req  Req
	res  Res
	err  error
	done chan struct{}
}

// do sends req with the next batch and waits for its result. When ctx ends
// before the batch is sent the request is dropped; once sent, do returns
// ctx's error without waiting, and the request takes effect or not, as a
// single statement cancelled in flight would.
func (b *batcher[Req, Res]) do(ctx context.Context, req Req) (Res, error) {
	c := &call[Req, Res]{ctx: ctx, req: req, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if !b.running {
		b.running = true
		go b.loop()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		var zero Res
		return zero, ctx.Err()
	}
}

// loop sends batches until the queue is empty.
func (b *batcher[Req, Res]) loop() {
	for {
		b.mu.Lock()
		n := min(len(b.queue), maxBatch)
		if n == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		batch := make([]*call[Req, Res], 0, n)
		for _, c := range b.queue[:n] {
			if c.ctx.Err() == nil {
				batch = append(batch, c)
			}
		}
		clear(b.queue[:n])
		b.queue = b.queue[n:]
		b.mu.Unlock()
		if len(batch) > 0 {
			b.send(batch)
		}
	}
}

// send runs one batch under a context that ends when every caller's has.
func (b *batcher[Req, Res]) send(batch []*call[Req, Res]) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	live := len(batch)
	for _, c := range batch {
		stop := context.AfterFunc(c.ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			if live--; live == 0 {
				cancel()
			}
		})
		defer stop()
	}
	reqs := make([]Req, len(batch))
	for i, c := range batch {
		reqs[i] = c.req
	}
	res, err := b.run(ctx, reqs)
	for i, c := range batch {
		if err != nil {
			c.err = err
		} else {
			c.res = res[i]
		}
		close(c.done)
	}
}

// abortedTries bounds how often one transaction that PostgreSQL aborted as
// a deadlock's victim or a serialization failure is sent.
const abortedTries = 3

// againIfAborted runs f, and again (abortedTries times in all) while
// PostgreSQL aborted its transaction as a deadlock's victim (40P01) or a
// serialization failure (40001). Such a transaction was rolled back whole,
// so sending it again is safe; without this, a completion chosen as the
// victim of a deadlock with other nodes' leases would leave a delivery
// already sent pending, and it would be sent again.
func againIfAborted[T any](ctx context.Context, f func() (T, error)) (T, error) {
	for try := 1; ; try++ {
		v, err := f()
		if err == nil || try == abortedTries || ctx.Err() != nil || !aborted(err) {
			return v, err
		}
	}
}

// aborted reports whether err is PostgreSQL aborting a transaction that
// can be sent again as it was.
func aborted(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}
