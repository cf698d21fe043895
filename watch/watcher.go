package watch

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/poll"
	"github.com/rswebhooks/rswebhooks/reportserver"
)

// metaInitialized is the store meta key written once the first poll has
// recorded the existing history; it holds the baseline (see state).
const metaInitialized = "watch/initialized"

// Defaults for Options.
const (
	DefaultInterval    = 30 * time.Second
	DefaultJitter      = 0.1
	DefaultConcurrency = 8
	DefaultPollTimeout = 5 * time.Minute
	DefaultResolveStep = 250 * time.Millisecond
)

// DocumentReader describes one document of an execution.
type DocumentReader interface {
	DocumentInfo(ctx context.Context, version, filter, resourceID, executionID, documentID string) (rswebhooks.Document, error)
}

// ErrDisabled is returned by New when the report-server client has no
// service account: the watcher is off and the proxy's execute calls notify
// on their own.
var ErrDisabled = errors.New("watch: no service account configured; execution watcher disabled")

// ReportServer is the part of *reportserver.Client the watcher uses.
type ReportServer interface {
	ProbeExecutionsAPI(ctx context.Context) (string, error)
	ScheduledTasks(ctx context.Context, version string) ([]reportserver.ScheduledItem, reportserver.Stamp, error)
	DataAlerts(ctx context.Context, version string) ([]reportserver.ScheduledItem, reportserver.Stamp, error)
	TaskExecutions(ctx context.Context, version, id, etag string) ([]reportserver.Execution, reportserver.Stamp, error)
	AlertExecutions(ctx context.Context, version, id, etag string) ([]reportserver.Execution, reportserver.Stamp, error)
}

// Store is the part of the store the watcher (and its Correlator) uses.
type Store interface {
	CorrelatorStore
	GetEvent(ctx context.Context, id string) (*rswebhooks.Event, error)
	SeenExecutions(ctx context.Context, ids []string) (map[string]bool, error)
}

var _ ReportServer = (*reportserver.Client)(nil)

// Options configure New. Client and Store are required.
type Options struct {
	// Client reads tasks, alerts and executions with the service account.
	// Required. A *reportserver.Client without a service account makes New
	// return ErrDisabled.
	Client ReportServer
	// Store holds the seen-set, the baseline and the events. Required.
	Store Store
	// Correlator, when set, de-duplicates against execute calls seen by the
	// proxy; pass the same value as detect.Options.Store. Nil: no
	// correlation (every execution record gets an event).
	Correlator *Correlator
	// APIVersion is "v2" or "v3"; "" probes v3 then v2 on the first poll.
	APIVersion string
	// Interval between polls. Zero means DefaultInterval (30 s); a caller
	// that wants the watcher off (--watch-interval 0) does not start it.
	Interval time.Duration
	// Jitter spreads each delay by ±Jitter (a fraction). Zero means
	// DefaultJitter (0.1); negative means none.
	Jitter float64
	// Concurrency limits the history reads in flight. Zero means 8.
	Concurrency int
	// MaxBackoff caps the delay after failed or slow polls. Zero means
	// 10 × Interval.
	MaxBackoff time.Duration
	// PollTimeout bounds one poll cycle. Zero means 5 min.
	PollTimeout time.Duration
	// Retention is the store's retention (store.DB.Retention): seen marks
	// expire after it, so executions dated before (server now − Retention
	// + 1 h) are never notified (their marks may be gone). Zero means
	// rswebhooks.DefaultRetention (7 days, the store's default).
	Retention time.Duration
	// SkewTolerance absorbs the error of the server-clock estimate. Zero
	// means 5 s.
	SkewTolerance time.Duration
	// RecordWait bounds how long an execute call's notification waits for
	// the run's execution record before it leaves without (Missing names
	// ExecutionId, ExecutionDateUtc, DocumentIds). Zero means 2 × Interval.
	RecordWait time.Duration
	// ResolveStep is the first pause between reads of a task's or alert's
	// history after an execute call (doubling, up to 8 × ResolveStep).
	// Zero means DefaultResolveStep (250 ms).
	ResolveStep time.Duration
	// Documents, when set, describes each document of a run (name,
	// format, MIME type). Nil: documents are listed by id.
	Documents DocumentReader
	// OnEvent, when set, is called after a poll stored new events (to wake
	// the delivery side). It must not block.
	OnEvent func()
	// Logger is the parent logger. Zero value: silent.
	Logger zerolog.Logger
	// Metrics, when set, is used as is; otherwise NewMetrics(Registerer)
	// (Registerer nil: metrics kept but not registered).
	Metrics    *Metrics
	Registerer prometheus.Registerer
	// Now is the local clock. Default time.Now.
	Now func() time.Time

	// sleep replaces Run's timer in tests.
	sleep func(ctx context.Context, d time.Duration) error
}

// Watcher polls the report server for executions. Use PollOnce for one
// cycle or Run for the loop; a Watcher is not meant for concurrent polls
// (PollOnce serialises them).
type Watcher struct {
	o     Options
	log   zerolog.Logger
	m     *Metrics
	rng   func() float64
	start time.Time

	pollMu  sync.Mutex // one poll at a time; guards everything below
	loaded  bool
	st      state
	version string
	offset  time.Duration
	etags   map[string]string // execution list ETags by resource key
	lastOK  time.Time
}

// state is the persisted value of metaInitialized.
type state struct {
	// BaselineUTC is the server-clock time of the first poll: executions
	// dated before it are history and never notified.
	BaselineUTC time.Time `json:"BaselineUtc"`
}

// NewCorrelated is New with a Correlator over opts.Store (same logger,
// clock and skew tolerance; its persisted state loaded with ctx), which
// replaces opts.Correlator. The Correlator is the event store the proxy's
// detector must append through, so an execute call seen by the proxy and
// the execution record the watcher later finds make one event. On error
// (ErrDisabled included) neither is returned.
func NewCorrelated(ctx context.Context, opts Options) (*Watcher, *Correlator, error) {
	if opts.Client == nil {
		return nil, nil, errors.New("watch: Options.Client is required")
	}
	if c, ok := opts.Client.(interface{ Configured() bool }); ok && !c.Configured() {
		return nil, nil, ErrDisabled
	}
	if opts.Store == nil {
		return nil, nil, errors.New("watch: Options.Store is required")
	}
	corr, err := NewCorrelator(ctx, CorrelatorOptions{
		Store:         opts.Store,
		SkewTolerance: opts.SkewTolerance,
		Logger:        opts.Logger,
		Now:           opts.Now,
	})
	if err != nil {
		return nil, nil, err
	}
	opts.Correlator = corr
	w, err := New(opts)
	if err != nil {
		return nil, nil, err
	}
	return w, corr, nil
}

// New validates opts and returns a Watcher, or ErrDisabled.
func New(opts Options) (*Watcher, error) {
	if opts.Client == nil {
		return nil, errors.New("watch: Options.Client is required")
	}
	if c, ok := opts.Client.(interface{ Configured() bool }); ok && !c.Configured() {
		return nil, ErrDisabled
	}
	if opts.Store == nil {
		return nil, errors.New("watch: Options.Store is required")
	}
	var errs []error
	switch opts.APIVersion {
	case "", reportserver.APIv2, reportserver.APIv3:
	default:
		errs = append(errs, fmt.Errorf("watch: Options.APIVersion must be \"\", \"v2\" or \"v3\", got %q", opts.APIVersion))
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"Interval", opts.Interval}, {"MaxBackoff", opts.MaxBackoff}, {"PollTimeout", opts.PollTimeout},
		{"Retention", opts.Retention}, {"SkewTolerance", opts.SkewTolerance},
		{"RecordWait", opts.RecordWait}, {"ResolveStep", opts.ResolveStep}} {
		if f.d < 0 {
			errs = append(errs, fmt.Errorf("watch: Options.%s must not be negative, got %s", f.name, f.d))
		}
	}
	if opts.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("watch: Options.Concurrency must not be negative, got %d", opts.Concurrency))
	}
	if opts.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("watch: Options.Jitter must be below 1, got %g", opts.Jitter))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	o := opts
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Jitter == 0 {
		o.Jitter = DefaultJitter
	} else if o.Jitter < 0 {
		o.Jitter = 0
	}
	if o.RecordWait == 0 {
		o.RecordWait = 2 * o.Interval
	}
	if o.ResolveStep == 0 {
		o.ResolveStep = DefaultResolveStep
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 10 * o.Interval
	}
	if o.MaxBackoff < o.Interval {
		o.MaxBackoff = o.Interval
	}
	if o.PollTimeout == 0 {
		o.PollTimeout = DefaultPollTimeout
	}
	if o.Retention == 0 {
		o.Retention = rswebhooks.DefaultRetention
	}
	if o.SkewTolerance == 0 {
		o.SkewTolerance = DefaultSkewTolerance
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.sleep == nil {
		o.sleep = poll.Sleep
	}
	m := o.Metrics
	if m == nil {
		m = NewMetrics(o.Registerer)
	}
	return &Watcher{
		o:       o,
		log:     o.Logger.With().Str("component", "watch").Logger(),
		m:       m,
		rng:     rand.Float64,
		start:   o.Now(),
		version: o.APIVersion,
		etags:   map[string]string{},
	}, nil
}

// Run is RunPolls and RunResolver together, until ctx is done: what a node
// alone runs. In a cluster every node runs RunResolver and the elected one
// RunPolls.
func (w *Watcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.RunResolver(ctx) }()
	defer wg.Wait()
	return w.RunPolls(ctx)
}

// RunPolls polls at once and then every Interval (jittered) until ctx is
// done, backing off exponentially (up to MaxBackoff) while polls fail and
// stretching the delay when a poll is slow. Poll errors are logged, not
// returned; RunPolls returns nil when ctx is done.
func (w *Watcher) RunPolls(ctx context.Context) error {
	return poll.Loop{
		Schedule: w.schedule(),
		Once:     w.PollOnce,
		OnError: func(err error, fails int, retryIn time.Duration) {
			w.log.Warn().Err(err).Int("failures", fails).Dur("retry_in", retryIn).Msg("execution poll failed")
		},
		Now:   w.o.Now,
		Sleep: w.o.sleep,
	}.Run(ctx)
}

func (w *Watcher) schedule() poll.Schedule {
	return poll.Schedule{Interval: w.o.Interval, MaxBackoff: w.o.MaxBackoff, Jitter: w.o.Jitter, Rand: w.rng}
}

// nextDelay is the pause before the next poll (see poll.Schedule.Next).
func (w *Watcher) nextDelay(fails int, took time.Duration) time.Duration {
	return w.schedule().Next(fails, took)
}

// item is one task or alert with its history.
type item struct {
	filter string
	reportserver.ScheduledItem
	execs    []reportserver.Execution
	skip     bool // deleted meanwhile or not modified
	err      error
	resource string
}

// PollOnce runs one poll cycle: list, read histories, notify what is new.
// It returns the first error met; executions read successfully are still
// processed.
func (w *Watcher) PollOnce(ctx context.Context) (err error) {
	w.pollMu.Lock()
	defer w.pollMu.Unlock()
	start := w.o.Now()
	defer func() {
		end := w.o.Now()
		w.m.PollDuration.Observe(end.Sub(start).Seconds())
		if err == nil {
			w.m.Polls.WithLabelValues(ResultOK).Inc()
			w.lastOK = start
		} else {
			w.m.Polls.WithLabelValues(ResultError).Inc()
		}
		since := w.lastOK
		if since.IsZero() {
			since = w.start
		}
		w.m.Lag.Set(end.Sub(since).Seconds())
	}()
	ctx, cancel := context.WithTimeout(ctx, w.o.PollTimeout)
	defer cancel()

	if err := w.load(ctx); err != nil {
		return err
	}
	err = w.poll(ctx)
	// Execute calls that waited too long leave now, even if this poll
	// could not reach the report server; decisions another node left
	// unfinished are carried out.
	if serr := w.settleClaims(ctx); serr != nil && err == nil {
		err = serr
	}
	return err
}

// poll is one cycle of PollOnce, under pollMu.
func (w *Watcher) poll(ctx context.Context) error {
	if w.version == "" {
		v, err := w.o.Client.ProbeExecutionsAPI(ctx)
		if err != nil {
			return fmt.Errorf("watch: pick API version: %w", err)
		}
		w.version = v
		w.log.Info().Str("api_version", v).Msg("execution watcher uses this API version")
	}

	// Lists, timed on the local clock to estimate the server's.
	var items []*item
	var stamps []reportserver.Stamp
	for _, filter := range []string{rswebhooks.FilterTasks, rswebhooks.FilterAlerts} {
		t0 := w.o.Now()
		var list []reportserver.ScheduledItem
		var st reportserver.Stamp
		var err error
		if filter == rswebhooks.FilterTasks {
			list, st, err = w.o.Client.ScheduledTasks(ctx, w.version)
		} else {
			list, st, err = w.o.Client.DataAlerts(ctx, w.version)
		}
		if err != nil {
			return fmt.Errorf("watch: list %s: %w", filter, err)
		}
		w.observeClock(st.Date, t0, w.o.Now())
		stamps = append(stamps, st)
		for _, it := range list {
			if it.ID == "" {
				continue
			}
			items = append(items, &item{filter: filter, ScheduledItem: it, resource: resKey(filter, it.ID)})
		}
	}
	serverNow := w.o.Now().Add(w.offset)
	initial := w.st.BaselineUTC.IsZero()
	if initial {
		// Anything not in the lists was created after the server wrote the
		// earliest of them, i.e. at or after its (truncated) Date.
		base := serverNow.Add(-w.o.SkewTolerance)
		for _, st := range stamps {
			if !st.Date.IsZero() && st.Date.Before(base) {
				base = st.Date
			}
		}
		w.st.BaselineUTC = base.UTC()
	}

	firstErr := w.readHistories(ctx, items)
	stored, err := w.process(ctx, items, serverNow, initial)
	if err != nil {
		if initial {
			w.st.BaselineUTC = time.Time{} // retry the first start next time
		}
		return err
	}
	if stored.err != nil && firstErr == nil {
		firstErr = stored.err
	}
	// The first start completes once the lists were read and the history
	// marked; a history read that failed is covered by the baseline later.
	if initial && stored.markErr == nil {
		raw, _ := json.Marshal(&w.st) // a struct of one time.Time cannot fail
		if err := w.o.Store.PutMeta(ctx, metaInitialized, raw); err != nil {
			w.st.BaselineUTC = time.Time{}
			return fmt.Errorf("watch: record first start: %w", err)
		}
		w.log.Info().Int("executions", stored.marked).Time("baseline", w.st.BaselineUTC).
			Msg("execution watcher initialised; existing history recorded without notifying")
	} else if initial {
		w.st.BaselineUTC = time.Time{} // retry the first start next time
	}
	return firstErr
}

// outcome is what process did: a non-fatal first error, the error of the
// seen marks, and how many executions were marked.
type outcome struct {
	err, markErr error
	marked       int
}

// process decides, for every execution read, whether it is new and who
// notifies it: a claim (an execute call seen by the proxy on any node) takes
// its run, and the rest are the watcher's to notify; then it appends the
// events and marks the executions seen. An error is returned only when
// nothing could be decided (seen-set or claims unreadable).
func (w *Watcher) process(ctx context.Context, items []*item, serverNow time.Time, initial bool) (outcome, error) {
	var keys []string
	for _, it := range items {
		for _, ex := range it.execs {
			if ex.ID != "" {
				keys = append(keys, execKey(it.filter, it.ID, ex.ID))
			}
		}
	}
	seen, err := w.o.Store.SeenExecutions(ctx, keys)
	if err != nil {
		return outcome{}, fmt.Errorf("watch: read seen-set: %w", err)
	}
	cutoff := serverNow.Add(-w.o.Retention + min(time.Hour, w.o.Retention/10))
	type found struct {
		it   *item
		ex   reportserver.Execution
		key  string
		date time.Time
	}
	var fresh []found
	withNew := map[*item]bool{}
	for _, it := range items {
		for _, ex := range it.execs {
			if ex.ID == "" {
				continue
			}
			k := execKey(it.filter, it.ID, ex.ID)
			if seen[k] {
				continue
			}
			date := ex.ExecutionDateUTC
			if date.IsZero() {
				date = serverNow // unknown date: treat as just now, never as history
			}
			if date.Before(cutoff) {
				// Older than retention: its seen mark may have expired. Ignored.
				continue
			}
			fresh = append(fresh, found{it, ex, k, date})
			withNew[it] = true
		}
	}

	var out outcome
	stored := 0
	// Claims first: a run an execute call is waiting for leaves as the
	// call's event (with the caller), whichever node took the call.
	handled := map[string]bool{}
	if len(fresh) > 0 && w.o.Correlator != nil {
		cls, err := w.o.Correlator.claims(ctx)
		if err != nil {
			return outcome{}, err
		}
		claimed := map[string]bool{}
		for _, cl := range cls {
			claimed[cl.Res] = true
		}
		for _, it := range items {
			if !withNew[it] || !claimed[it.resource] {
				continue
			}
			h, n, err := w.o.Correlator.match(ctx, it.resource, w.runs(ctx, it, serverNow), seen, cls)
			stored += n
			if err != nil && out.err == nil {
				out.err = err
			}
			for k := range h {
				handled[k] = true
			}
		}
	}

	var mark []string
	for _, f := range fresh {
		if handled[f.key] {
			continue
		}
		// History at first start or of an item first seen later is
		// recorded without notifying.
		if initial || f.date.Before(w.st.BaselineUTC) {
			mark = append(mark, f.key)
			continue
		}
		// Crash safety: the emission (so a late execute call of this very
		// run is dropped), then the event (deterministic id: re-appending
		// after a crash is ErrConflict, i.e. already done), then the seen
		// mark.
		if w.o.Correlator != nil {
			if err := w.o.Correlator.emitted(ctx, f.it.resource, f.key, f.date); err != nil {
				if out.err == nil {
					out.err = err
				}
				continue
			}
		}
		e := w.event(f.it, f.ex, f.date, w.documents(ctx, f.it, f.ex))
		err := w.o.Store.AppendEvent(ctx, e)
		switch {
		case err == nil:
			stored++
			w.log.Debug().Str("event_id", e.ID).Str("filter", e.Filter).Str("resource_id", e.ResourceID).
				Str("execution_id", e.ExecutionID).Msg("execution event stored")
		case errors.Is(err, rswebhooks.ErrConflict):
			// Stored already: by this watcher before a crash, or as an
			// execute call's event by another node (then the emission is
			// not this watcher's to keep).
			if w.o.Correlator != nil {
				if prev, gerr := w.o.Store.GetEvent(ctx, e.ID); gerr == nil && rswebhooks.EventSource(prev) != rswebhooks.SourceWatch {
					w.o.Correlator.unemit(ctx, f.key)
				}
			}
		default:
			if out.err == nil {
				out.err = fmt.Errorf("watch: append event for execution %s: %w", f.key, err)
			}
			continue
		}
		mark = append(mark, f.key)
	}
	if len(mark) > 0 {
		if out.markErr = w.o.Store.MarkExecutionsSeen(ctx, mark); out.markErr != nil && out.err == nil {
			out.err = fmt.Errorf("watch: mark executions seen: %w", out.markErr)
		}
	}
	out.marked = len(mark)
	if stored > 0 && w.o.OnEvent != nil {
		w.o.OnEvent()
	}
	return out, nil
}

// runs describes the executions of it for the correlator.
func (w *Watcher) runs(ctx context.Context, it *item, serverNow time.Time) []run {
	out := make([]run, 0, len(it.execs))
	for _, ex := range it.execs {
		if ex.ID == "" {
			continue
		}
		date := ex.ExecutionDateUTC
		if date.IsZero() {
			date = serverNow
		}
		out = append(out, run{
			key:  execKey(it.filter, it.ID, ex.ID),
			date: date,
			id:   EventID(it.filter, it.ID, ex.ID, date.UTC()),
			enrich: func(e *rswebhooks.Event) {
				enrich(e, it, ex, date, w.documents(ctx, it, ex))
			},
		})
	}
	return out
}

// settleClaims carries out claim decisions left unfinished (by this node
// or one that died), lets execute calls that waited RecordWait for their run
// leave without it, and forgets done claims past the window.
func (w *Watcher) settleClaims(ctx context.Context) error {
	if w.o.Correlator == nil {
		return nil
	}
	cls, err := w.o.Correlator.claims(ctx)
	if err != nil {
		return err
	}
	stored, err := w.o.Correlator.settle(ctx, cls, w.o.RecordWait)
	if stored > 0 && w.o.OnEvent != nil {
		w.o.OnEvent()
	}
	return err
}

// resolveOnce reads the history of every task and alert with a held
// execute call (no ETag: the record is expected now), lets the calls take
// their runs, then settles the claims (see settleClaims). It serves the
// calls of every node sharing the store. held reports whether calls still
// wait for their run.
func (w *Watcher) resolveOnce(ctx context.Context) (held bool, err error) {
	w.pollMu.Lock()
	defer w.pollMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, w.o.PollTimeout)
	defer cancel()
	corr := w.o.Correlator
	cls, err := corr.claims(ctx)
	if err != nil {
		return true, err
	}
	var (
		items    []*item
		keys     []string
		firstErr error
		stored   int
	)
	note := func(n int, err error) {
		stored += n
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	wanted := map[string]bool{}
	for _, cl := range cls {
		if !cl.held() || wanted[cl.Res] {
			continue
		}
		wanted[cl.Res] = true
		if w.version == "" {
			v, err := w.o.Client.ProbeExecutionsAPI(ctx)
			if err != nil {
				note(0, fmt.Errorf("watch: pick API version: %w", err))
				break
			}
			w.version = v
		}
		it := &item{filter: cl.Event.Filter, ScheduledItem: reportserver.ScheduledItem{ID: cl.Event.ResourceID}, resource: cl.Res}
		t0 := w.o.Now()
		var st reportserver.Stamp
		if it.filter == rswebhooks.FilterTasks {
			it.execs, st, it.err = w.o.Client.TaskExecutions(ctx, w.version, it.ID, "")
		} else {
			it.execs, st, it.err = w.o.Client.AlertExecutions(ctx, w.version, it.ID, "")
		}
		if it.err != nil {
			if !errors.Is(it.err, reportserver.ErrNotFound) {
				note(0, fmt.Errorf("watch: read executions of %s: %w", it.resource, it.err))
			}
			continue
		}
		w.observeClock(st.Date, t0, w.o.Now())
		items = append(items, it)
		for _, ex := range it.execs {
			if ex.ID != "" {
				keys = append(keys, execKey(it.filter, it.ID, ex.ID))
			}
		}
	}
	if len(items) > 0 {
		seen, err := w.o.Store.SeenExecutions(ctx, keys)
		if err != nil {
			note(0, fmt.Errorf("watch: read seen-set: %w", err))
		} else {
			serverNow := w.o.Now().Add(w.offset)
			for _, it := range items {
				_, n, err := corr.match(ctx, it.resource, w.runs(ctx, it, serverNow), seen, cls)
				note(n, err)
			}
		}
	}
	note(corr.settle(ctx, cls, w.o.RecordWait))
	if stored > 0 && w.o.OnEvent != nil {
		w.o.OnEvent()
	}
	for _, cl := range cls {
		if cl.held() {
			held = true
		}
	}
	return held, firstErr
}

// RunResolver serves execute calls until ctx is done: when one is held
// (by this node, or found held in the store, left by another node or a
// previous process) it reads that task's or alert's history at once, then
// again after ResolveStep, doubling up to 8 × ResolveStep, until the run's
// record is found or RecordWait passed. With nothing held it looks at the
// store every Interval. In a cluster every node runs it; the claims decide
// who notifies. It returns nil when ctx is done.
func (w *Watcher) RunResolver(ctx context.Context) error {
	if w.o.Correlator == nil {
		<-ctx.Done()
		return nil
	}
	step := w.o.ResolveStep
	timer := time.NewTimer(0) // claims left by a previous process or another node
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.o.Correlator.Woken():
			step = w.o.ResolveStep
		case <-timer.C:
		}
		held, err := w.resolveOnce(ctx)
		if err != nil && ctx.Err() == nil {
			w.log.Warn().Err(err).Msg("reading the run of an execute call failed; retrying")
		}
		if held {
			timer.Reset(step)
			step = min(2*step, 8*w.o.ResolveStep)
		} else {
			timer.Reset(w.nextDelay(0, 0))
			step = w.o.ResolveStep
		}
	}
}

// documents describes ex's documents with the service account, when a
// DocumentReader is configured; a document that cannot be described is
// listed by id alone.
func (w *Watcher) documents(ctx context.Context, it *item, ex reportserver.Execution) []rswebhooks.Document {
	if len(ex.DocumentIDs) == 0 {
		return nil
	}
	out := make([]rswebhooks.Document, 0, len(ex.DocumentIDs))
	for _, id := range ex.DocumentIDs {
		d := rswebhooks.Document{ID: id}
		if w.o.Documents != nil {
			info, err := w.o.Documents.DocumentInfo(ctx, w.version, it.filter, it.ID, ex.ID, id)
			if err != nil {
				w.log.Warn().Err(err).Str("document_id", id).Str("execution_id", ex.ID).Msg("document not described")
			} else {
				d = info
				d.ID = id
			}
		}
		out = append(out, d)
	}
	return out
}

// load reads the persisted baseline once.
func (w *Watcher) load(ctx context.Context) error {
	if w.loaded {
		return nil
	}
	raw, err := w.o.Store.GetMeta(ctx, metaInitialized)
	switch {
	case errors.Is(err, rswebhooks.ErrNotFound):
	case err != nil:
		return fmt.Errorf("watch: load state: %w", err)
	default:
		if err := json.Unmarshal(raw, &w.st); err != nil {
			return fmt.Errorf("watch: decode %s: %w", metaInitialized, err)
		}
	}
	w.loaded = true
	return nil
}

// observeClock updates the estimate of server clock minus local clock from
// a Date header read between local times t0 and t1. The header is truncated
// to the second, so the server's time was on average half a second later.
func (w *Watcher) observeClock(date, t0, t1 time.Time) {
	if date.IsZero() {
		return
	}
	mid := t0.Add(t1.Sub(t0) / 2)
	w.offset = date.Add(500 * time.Millisecond).Sub(mid)
	if w.o.Correlator != nil {
		w.o.Correlator.setOffset(w.offset)
	}
}

// readHistories fills each item's executions, Concurrency at a time.
func (w *Watcher) readHistories(ctx context.Context, items []*item) error {
	sem := make(chan struct{}, w.o.Concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex // guards etags
	for _, it := range items {
		mu.Lock()
		etag := w.etags[it.resource]
		mu.Unlock()
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			it.err = ctx.Err()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var st reportserver.Stamp
			if it.filter == rswebhooks.FilterTasks {
				it.execs, st, it.err = w.o.Client.TaskExecutions(ctx, w.version, it.ID, etag)
			} else {
				it.execs, st, it.err = w.o.Client.AlertExecutions(ctx, w.version, it.ID, etag)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(it.err, reportserver.ErrNotFound):
				// Deleted between the list and this read: nothing to notify.
				it.err, it.skip, it.execs = nil, true, nil
				delete(w.etags, it.resource)
			case it.err != nil:
			case st.NotModified:
				it.skip = true
			case st.ETag != "":
				w.etags[it.resource] = st.ETag
			}
		}()
	}
	wg.Wait()
	for _, it := range items {
		if it.err != nil {
			it.execs = nil
			return fmt.Errorf("watch: read executions of %s: %w", it.resource, it.err)
		}
	}
	return nil
}

// event builds the Executed event of one execution.
func (w *Watcher) event(it *item, ex reportserver.Execution, date time.Time, docs []rswebhooks.Document) *rswebhooks.Event {
	e := &rswebhooks.Event{
		ID:           EventID(it.filter, it.ID, ex.ID, date.UTC()),
		Filter:       it.filter,
		Type:         rswebhooks.EventExecuted,
		ResourceID:   it.ID,
		ResourceName: it.Name,
		Time:         w.o.Now().UTC(),
		APIVersion:   w.version,
		Source:       rswebhooks.SourceWatch,
	}
	enrich(e, it, ex, date, docs)
	return e
}

// enrich attaches an execution record to an Executed event: the run's id,
// date, documents and, for alerts, whether it triggered.
func enrich(e *rswebhooks.Event, it *item, ex reportserver.Execution, date time.Time, docs []rswebhooks.Document) {
	d := date.UTC()
	e.ExecutionID = ex.ID
	e.ExecutionDateUTC = &d
	e.DocumentIDs = ex.DocumentIDs
	e.Documents = docs
	if e.ResourceName == "" {
		e.ResourceName = it.Name
	}
	if it.filter == rswebhooks.FilterAlerts {
		t := ex.AlertTriggered
		e.AlertTriggered = &t
	}
}

// EventID is the deterministic event id of one execution: a ULID whose time
// is the execution date and whose 80 "random" bits are a SHA-256 of the
// filter, the task or alert id and the execution id (case-folded). The same
// execution always gets the same id, so store.AppendEvent refuses a second
// copy with ErrConflict.
func EventID(filter, resourceID, executionID string, date time.Time) string {
	h := sha256.Sum256([]byte("rswebhooks/watch\x00" + execKey(filter, resourceID, executionID)))
	return rswebhooks.IDFrom(date, [10]byte(h[:10]))
}
