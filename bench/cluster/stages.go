package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/pgstore"
	"github.com/rswebhooks/rswebhooks/signature"
)

// stageClock records when each delivery passed each stage on its way from
// its event to its first attempt (-stages): the event made (its time),
// appended (AppendEvent returned), fanned out (the fan-out that wrote it
// returned), first listed by a due read, leased (by Lease, or moved to it
// by a slot going on with its webhook: chained) and arrived at the
// receiver. It sees the engine through a wrapper of its store (stagedDB),
// so the engine runs unchanged.
type stageClock struct {
	mu     sync.Mutex
	start  time.Time
	events map[string]*eventStages // by event id
	byID   map[string]*stages      // by delivery id
	all    []*stages
	reads  []readSpan // each due read: when it started and how long it took
}

type eventStages struct {
	made, appended time.Time
	node           int
}

type stages struct {
	ev                            *eventStages
	fanned, read, leased, arrived time.Time
	chained                       bool
}

type readSpan struct {
	kind string
	at   time.Time
	took time.Duration
	node int
	rows int
}

func newStageClock() *stageClock {
	return &stageClock{start: time.Now(), events: map[string]*eventStages{}, byID: map[string]*stages{}}
}

// reset forgets what was recorded and starts the clock again.
func (c *stageClock) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.start = time.Now()
	clear(c.events)
	clear(c.byID)
	c.all, c.reads = nil, nil
}

// stagedDB is a PostgreSQL store whose hot-path calls the clock sees. It
// embeds the store, so the engine finds every optional interface.
type stagedDB struct {
	*pgstore.DB
	c    *stageClock
	node int
}

func (s stagedDB) AppendEvent(ctx context.Context, e *rswebhooks.Event) error {
	es := &eventStages{made: e.Time, node: s.node}
	s.c.mu.Lock()
	s.c.events[e.ID] = es
	s.c.mu.Unlock()
	start := time.Now()
	err := s.DB.AppendEvent(ctx, e)
	now := time.Now()
	s.call("append", start, 1)
	s.c.mu.Lock()
	es.appended = now
	s.c.mu.Unlock()
	return err
}

// fanning notes the deliveries of fs before they are written (the
// dispatcher may lease one before the fan-out call returns); fanned, after
// the call, stamps those written and forgets the others.
func (s stagedDB) fanning(fs []rswebhooks.EventFanOut) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	for _, f := range fs {
		ev := s.c.events[f.EventID]
		if ev == nil {
			continue
		}
		for _, d := range f.Deliveries {
			s.c.byID[d.ID] = &stages{ev: ev}
		}
	}
}

func (s stagedDB) fanned(fs []rswebhooks.EventFanOut, errs []error) {
	now := time.Now()
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	for i, f := range fs {
		for _, d := range f.Deliveries {
			st := s.c.byID[d.ID]
			if st == nil {
				continue
			}
			if errs != nil && errs[i] != nil {
				delete(s.c.byID, d.ID)
				continue
			}
			st.fanned = now
			s.c.all = append(s.c.all, st)
		}
	}
}

func (s stagedDB) FanOutEventsHere(ctx context.Context, fs []rswebhooks.EventFanOut) []error {
	start := time.Now()
	s.fanning(fs)
	errs := s.DB.FanOutEventsHere(ctx, fs)
	s.call("fanout", start, len(fs))
	s.fanned(fs, errs)
	return errs
}

func (s stagedDB) FanOutEvents(ctx context.Context, fs []rswebhooks.EventFanOut) []error {
	s.fanning(fs)
	errs := s.DB.FanOutEvents(ctx, fs)
	s.fanned(fs, errs)
	return errs
}

// seen wraps a due read's callback.
func (s stagedDB) seen(fn func(rswebhooks.DueRef) bool, rows *int) func(rswebhooks.DueRef) bool {
	return func(d rswebhooks.DueRef) bool {
		*rows++
		now := time.Now()
		s.c.mu.Lock()
		if st := s.c.byID[d.ID]; st != nil && st.read.IsZero() {
			st.read = now
		}
		s.c.mu.Unlock()
		return fn(d)
	}
}

func (s stagedDB) timed(start time.Time, rows int) { s.call("read", start, rows) }

// call notes a call of kind that started at start.
func (s stagedDB) call(kind string, start time.Time, rows int) {
	took := time.Since(start)
	s.c.mu.Lock()
	s.c.reads = append(s.c.reads, readSpan{kind: kind, at: start, took: took, node: s.node, rows: rows})
	s.c.mu.Unlock()
}

func (s stagedDB) ScanDueByWebhook(ctx context.Context, now time.Time, perWebhook, max int, fn func(rswebhooks.DueRef) bool) error {
	start, rows := time.Now(), 0
	defer func() { s.timed(start, rows) }()
	return s.DB.ScanDueByWebhook(ctx, now, perWebhook, max, s.seen(fn, &rows))
}

func (s stagedDB) ScanDue(ctx context.Context, now time.Time, max int, fn func(rswebhooks.DueRef) bool) error {
	start, rows := time.Now(), 0
	defer func() { s.timed(start, rows) }()
	return s.DB.ScanDue(ctx, now, max, s.seen(fn, &rows))
}

func (s stagedDB) ScanDueAfter(ctx context.Context, now time.Time, after rswebhooks.DueRef, max int, fn func(rswebhooks.DueRef) bool) error {
	start, rows := time.Now(), 0
	defer func() { s.timed(start, rows) }()
	return s.DB.ScanDueAfter(ctx, now, after, max, s.seen(fn, &rows))
}

func (s stagedDB) NodeUnfannedEvents(ctx context.Context, limit int) ([]*rswebhooks.Event, error) {
	start := time.Now()
	evs, err := s.DB.NodeUnfannedEvents(ctx, limit)
	s.call("unfanned", start, len(evs))
	return evs, err
}

func (s stagedDB) ListWebhooks(ctx context.Context, owner string) ([]*rswebhooks.Webhook, error) {
	start := time.Now()
	ws, err := s.DB.ListWebhooks(ctx, owner)
	s.call("webhooks", start, len(ws))
	return ws, err
}

func (s stagedDB) leased(id string, chained bool) {
	now := time.Now()
	s.c.mu.Lock()
	if st := s.c.byID[id]; st != nil && st.leased.IsZero() {
		st.leased, st.chained = now, chained
	}
	s.c.mu.Unlock()
}

func (s stagedDB) Lease(ctx context.Context, id string, now time.Time, req rswebhooks.LeaseRequest) (*rswebhooks.Delivery, error) {
	start := time.Now()
	d, err := s.DB.Lease(ctx, id, now, req)
	s.call("lease", start, 1)
	if err == nil {
		s.leased(id, false)
	}
	return d, err
}

func (s stagedDB) CompleteAndLease(ctx context.Context, d *rswebhooks.Delivery, a *rswebhooks.Attempt, now time.Time,
	req rswebhooks.LeaseRequest) (*rswebhooks.Delivery, error) {
	start := time.Now()
	next, err := s.DB.CompleteAndLease(ctx, d, a, now, req)
	s.call("complete", start, 1)
	if next != nil {
		s.leased(next.ID, true)
	}
	return next, err
}

// receiver notes each first attempt's arrival before h answers it.
func (c *stageClock) receiver(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		now := time.Now()
		if bytes.Contains(b, []byte(`"Attempt": 1,`)) {
			c.mu.Lock()
			if st := c.byID[r.Header.Get(signature.HeaderWebhookID)]; st != nil && st.arrived.IsZero() {
				st.arrived = now
			}
			c.mu.Unlock()
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		h.ServeHTTP(w, r)
	})
}

// print shows, for every delivery and for the slowest 1 %, how long each
// stage took (p50 and max), when the slowest ones were made, the due reads
// around them and the Go GC's pauses.
func (c *stageClock) print() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var done []*stages
	for _, s := range c.all {
		if !s.arrived.IsZero() && !s.ev.appended.IsZero() && !s.leased.IsZero() {
			done = append(done, s)
		}
	}
	if len(done) == 0 {
		return
	}
	total := func(s *stages) time.Duration { return s.arrived.Sub(s.ev.made) }
	slices.SortFunc(done, func(a, b *stages) int { return int(total(a) - total(b)) })
	slow := done[len(done)*99/100:]
	type gap struct {
		name string
		f    func(*stages) time.Duration
	}
	gaps := []gap{
		{"append", func(s *stages) time.Duration { return s.ev.appended.Sub(s.ev.made) }},
		{"->fanned", func(s *stages) time.Duration { return s.fanned.Sub(s.ev.appended) }},
		{"->read", func(s *stages) time.Duration {
			if s.read.IsZero() || (s.chained && s.read.After(s.leased)) {
				return 0
			}
			return s.read.Sub(s.fanned)
		}},
		{"->leased", func(s *stages) time.Duration {
			if s.read.IsZero() || s.chained && s.read.After(s.leased) {
				return s.leased.Sub(s.fanned)
			}
			return s.leased.Sub(s.read)
		}},
		{"->arrived", func(s *stages) time.Duration { return s.arrived.Sub(s.leased) }},
		{"total", total},
	}
	row := func(label string, set []*stages) {
		chained := 0
		for _, s := range set {
			if s.chained {
				chained++
			}
		}
		fmt.Printf("  stages %-9s n=%-5d chained %3.0f%%:", label, len(set), 100*float64(chained)/float64(len(set)))
		for _, g := range gaps {
			ds := make([]time.Duration, len(set))
			for i, s := range set {
				ds[i] = max(0, g.f(s)) // a read or lease can come before the fan-out call returns
			}
			slices.Sort(ds)
			fmt.Printf("  %s %s/%s", g.name, ms(ds[len(ds)/2]), ms(ds[len(ds)-1]))
		}
		fmt.Println()
	}
	row("all", done)
	row("slowest1%", slow)
	// The slowest few, each stage's time since the row started.
	rel := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return fmt.Sprint(int(t.Sub(c.start) / time.Millisecond))
	}
	for _, s := range slow[max(0, len(slow)-3):] {
		fmt.Printf("  slow: made %s appended %s fanned %s read %s leased %s (chained %v) arrived %s (ms)\n",
			rel(s.ev.made), rel(s.ev.appended), rel(s.fanned), rel(s.read), rel(s.leased), s.chained, rel(s.arrived))
	}
	// When the slowest were made (ms since the row started), in order.
	var at []int
	for _, s := range slow {
		at = append(at, int(s.ev.made.Sub(c.start)/time.Millisecond))
	}
	slices.Sort(at)
	fmt.Printf("  slowest1%% made at (ms): %v\n", at)
	// Store calls: count, p50, p99, max by kind, and those that took long.
	kinds := map[string][]time.Duration{}
	var long []string
	for _, r := range c.reads {
		kinds[r.kind] = append(kinds[r.kind], r.took)
		if r.took >= 20*time.Millisecond || r.at.Sub(c.start) < 400*time.Millisecond {
			long = append(long, fmt.Sprintf("%s@%d:n%d:%s:%d", r.kind, r.at.Sub(c.start)/time.Millisecond, r.node, ms(r.took), r.rows))
		}
	}
	for _, k := range []string{"append", "unfanned", "fanout", "read", "lease", "complete"} {
		ds := kinds[k]
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		fmt.Printf("  calls %-8s n=%-5d p50 %s p99 %s max %s\n", k, len(ds), ms(ds[len(ds)/2]), ms(ds[len(ds)*99/100]), ms(ds[len(ds)-1]))
	}
	if len(long) > 120 {
		long = long[:120]
	}
	fmt.Printf("  calls >=20ms (kind@ms:node:took:n): %v\n", long)
	// Arrivals and the worst latency per 250 ms of event time.
	const bucket = 250 * time.Millisecond
	worst := map[int]time.Duration{}
	last := 0
	for _, s := range done {
		b := int(s.ev.made.Sub(c.start) / bucket)
		worst[b] = max(worst[b], total(s))
		last = max(last, b)
	}
	fmt.Printf("  worst latency per %s of event time (ms):", bucket)
	for b := 0; b <= last; b++ {
		fmt.Printf(" %d", worst[b]/time.Millisecond)
	}
	fmt.Println()
	var gc debug.GCStats
	gc.PauseQuantiles = make([]time.Duration, 5)
	debug.ReadGCStats(&gc)
	fmt.Printf("  go gc: %d cycles in the process, pause max %s, total %s\n", gc.NumGC, gc.PauseQuantiles[4], gc.PauseTotal)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// printServerWork prints what the server did besides the statements since
// it started: checkpoints, and autovacuum and autoanalyze runs on the
// database at url.
func printServerWork(url string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		fmt.Println("  server work:", err)
		return
	}
	defer conn.Close(ctx)
	var timed, req, vac, an int64
	err = conn.QueryRow(ctx, `SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter`).Scan(&timed, &req)
	if err == nil {
		err = conn.QueryRow(ctx, `SELECT coalesce(sum(autovacuum_count), 0), coalesce(sum(autoanalyze_count), 0) FROM pg_stat_user_tables`).Scan(&vac, &an)
	}
	if err != nil {
		fmt.Println("  server work:", err)
		return
	}
	fmt.Printf("  server: checkpoints %d timed, %d requested (since it started); this database: %d autovacuums, %d autoanalyzes\n", timed, req, vac, an)
}
