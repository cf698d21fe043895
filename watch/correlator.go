package watch

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// Store meta keys of the correlator. Each claim and each emission is a key
// of its own, so nodes sharing a store never overwrite each other's.
const (
	// claimPrefix + the call's event id: one execute call (see claim).
	claimPrefix = "watch/claim/"
	// emittedPrefix + execution key: a run the watcher notified on its
	// own (see emission); it expires after the window.
	emittedPrefix = "watch/emitted/"
	// legacyState is the single key of earlier releases, converted to the
	// keys above and removed when a Correlator starts.
	legacyState = "watch/correlator"
)

// Defaults for CorrelatorOptions.
const (
	DefaultWindow        = 10 * time.Minute
	DefaultSkewTolerance = 5 * time.Second
)

// CorrelatorStore is the part of the store a Correlator uses: it passes
// events through to AppendEvent, keeps each claim and emission under a meta
// key of its own, decides a claim's fate with SwapMeta (so that, of several
// nodes sharing the store, one decides), and marks the runs it notified seen.
type CorrelatorStore interface {
	AppendEvent(ctx context.Context, e *rswebhooks.Event) error
	MarkExecutionsSeen(ctx context.Context, ids []string) error
	GetMeta(ctx context.Context, key string) ([]byte, error)
	PutMeta(ctx context.Context, key string, v []byte) error
	PutMetaUntil(ctx context.Context, key string, v []byte, expires time.Time) error
	ListMeta(ctx context.Context, prefix string) ([]rswebhooks.MetaEntry, error)
	SwapMeta(ctx context.Context, key string, old, v []byte) (bool, error)
	DeleteMetaIf(ctx context.Context, key string, old []byte) (bool, error)
}

// CorrelatorOptions configure NewCorrelator. Store is required.
type CorrelatorOptions struct {
	// Store receives every event passed to AppendEvent and keeps the
	// correlator's claims (meta keys "watch/claim/…"). Required.
	Store CorrelatorStore
	// Window is how long an execute call seen by the proxy waits for the
	// execution record the watcher will find (the report server queues the
	// run for its agent, so the record can be dated later than the call).
	// A record found later than that gets its own event. Default 10 min.
	Window time.Duration
	// SkewTolerance absorbs the error of the server-clock estimate (the
	// HTTP Date header has one-second resolution, plus the round trip).
	// Default 5 s.
	SkewTolerance time.Duration
	// Logger gets one debug line per correlated execution.
	Logger zerolog.Logger
	// Now is the local clock. Default time.Now.
	Now func() time.Time
}

// Correlator de-duplicates executions between the proxy and the watcher.
// It implements the detector's event store: give it to detect.Options.Store
// and to watch.Options.Correlator. Every event passes through to the real
// store, except that
//
//   - an Executed event of a task or alert that the proxy saw (an execute
//     call) is held as a claim, a store meta key of its own, instead of
//     being appended: a resolver (Watcher.RunResolver, on every node of a
//     cluster) reads that task's or alert's history at once, attaches the
//     run's record to the held event and appends it under the run's
//     deterministic event id (EventID), so the event carries both the
//     caller and the run; if no record appears within the watcher's
//     RecordWait, the event is appended as it is, naming the fields it
//     lacks in Missing;
//   - in the rare race where the watcher already emitted the record of that
//     very call (dated within SkewTolerance of it), the proxy's event is
//     dropped instead.
//
// Every decision on a claim (which run it takes, or that it leaves
// without) is one SwapMeta of its key, so when several nodes share the
// store exactly one of them decides, and any node can finish what another
// decided (append, mark seen, remove): a node that dies loses nothing.
// It is safe for concurrent use.
type Correlator struct {
	store  CorrelatorStore
	window time.Duration
	tol    time.Duration
	log    zerolog.Logger
	now    func() time.Time
	wake   chan struct{}

	mu  sync.Mutex    // guards off
	off time.Duration // estimate of server clock minus local clock
}

// claim is an execute call seen by the proxy, stored under claimPrefix +
// the call's event id. Its states:
//
//   - held (Exec "", not Flushed): Event is the call's, waiting for its run;
//   - matched (Exec set): it took that run; Event, when set, is the call's
//     enriched with the run (id EventID of the run) and still to append;
//     then the run is marked seen and the claim removed;
//   - flushing (Flushed, not Done): Event is the call's without its run
//     (Missing, Note), still to append;
//   - done (Flushed and Done): appended without its run; kept until the
//     window passes so a record that shows up late is taken (marked seen)
//     rather than notified again.
type claim struct {
	Res     string            `json:"R"` // resource key
	At      time.Time         `json:"T"` // local time of the call (event time)
	Exec    string            `json:"X,omitempty"`
	Flushed bool              `json:"F,omitempty"`
	Done    bool              `json:"D,omitempty"`
	Event   *rswebhooks.Event `json:"E,omitempty"`

	id  string // the call's event id (key suffix)
	raw []byte // the stored value, for SwapMeta
}

func (cl *claim) key() string { return claimPrefix + cl.id }

// gone makes cl inert: it is no longer in the store.
func (cl *claim) gone() { *cl = claim{Res: cl.Res, At: cl.At, id: cl.id} }

// held reports whether the claim waits for its run.
func (cl *claim) held() bool { return cl.Exec == "" && !cl.Flushed && cl.Event != nil }

// open reports whether the claim may still take a run: held, or done
// without one (a late record is then taken without a notification).
func (cl *claim) open() bool { return cl.Exec == "" && (cl.held() || (cl.Flushed && cl.Done)) }

// pendingWork reports whether a decision was taken and not yet carried out.
func (cl *claim) pendingWork() bool { return cl.Exec != "" || (cl.Flushed && !cl.Done) }

// emission is a run the watcher notified with an event of its own.
type emission struct {
	Res  string    `json:"R"`
	Date time.Time `json:"D"` // execution date, server clock
}

// NewCorrelator validates opts and converts the state of earlier releases
// (one meta key) into claims.
func NewCorrelator(ctx context.Context, opts CorrelatorOptions) (*Correlator, error) {
	if opts.Store == nil {
		return nil, errors.New("watch: CorrelatorOptions.Store is required")
	}
	if opts.Window < 0 {
		return nil, fmt.Errorf("watch: CorrelatorOptions.Window must not be negative, got %s", opts.Window)
	}
	if opts.SkewTolerance < 0 {
		return nil, fmt.Errorf("watch: CorrelatorOptions.SkewTolerance must not be negative, got %s", opts.SkewTolerance)
	}
	c := &Correlator{
		store:  opts.Store,
		window: opts.Window,
		tol:    opts.SkewTolerance,
		log:    opts.Logger.With().Str("component", "watch").Logger(),
		now:    opts.Now,
		wake:   make(chan struct{}, 1),
	}
	if c.window == 0 {
		c.window = DefaultWindow
	}
	if c.tol == 0 {
		c.tol = DefaultSkewTolerance
	}
	if c.now == nil {
		c.now = time.Now
	}
	if err := c.convertLegacy(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// legacy is the state earlier releases kept under legacyState.
type legacy struct {
	Claims []struct {
		Res   string            `json:"R"`
		At    time.Time         `json:"T"`
		Exec  string            `json:"X,omitempty"`
		Sent  bool              `json:"S,omitempty"`
		Event *rswebhooks.Event `json:"E,omitempty"`
	} `json:"Claims"`
	Emitted []struct {
		Res  string    `json:"R"`
		Exec string    `json:"X"`
		Date time.Time `json:"D"`
		At   time.Time `json:"T"`
		Used bool      `json:"U,omitempty"`
	} `json:"Emitted"`
}

// convertLegacy turns the single state key of earlier releases into one key
// per claim and emission, then removes it. Running it on several nodes at
// once writes the same keys twice, which is harmless.
func (c *Correlator) convertLegacy(ctx context.Context) error {
	raw, err := c.store.GetMeta(ctx, legacyState)
	switch {
	case errors.Is(err, rswebhooks.ErrNotFound):
		return nil
	case errors.Is(err, rswebhooks.ErrStoreUnavailable):
		// Degraded store: converted at the next start.
		c.log.Warn().Err(err).Msg("correlator state of the previous release not read: the store is unavailable")
		return nil
	case err != nil:
		return fmt.Errorf("watch: load correlator state: %w", err)
	}
	var old legacy
	if err := json.Unmarshal(raw, &old); err != nil {
		return fmt.Errorf("watch: decode correlator state: %w", err)
	}
	now := c.now()
	limit := now.Add(-c.window - c.tol)
	for _, o := range old.Claims {
		cl := claim{Res: o.Res, At: o.At}
		switch {
		case !o.Sent && o.Event != nil: // held, or matched and not yet appended
			cl.Exec, cl.Event, cl.id = o.Exec, o.Event, o.Event.ID
		case o.Exec == "" && o.At.After(limit): // left without its run
			cl.Flushed, cl.Done, cl.id = true, true, rswebhooks.NewID(o.At)
		default:
			continue
		}
		if err := c.put(ctx, &cl); err != nil {
			return err
		}
	}
	for _, em := range old.Emitted {
		if !em.Used && em.At.After(limit) {
			if err := c.putEmission(ctx, em.Res, em.Exec, em.Date, em.At); err != nil {
				return err
			}
		}
	}
	if err := c.store.PutMetaUntil(ctx, legacyState, nil, time.Time{}); err != nil {
		return fmt.Errorf("watch: remove converted correlator state: %w", err)
	}
	c.log.Info().Int("claims", len(old.Claims)).Msg("correlator state converted to one key per claim")
	return nil
}

// resKey names a task or alert: "tasks:<id>" or "alerts:<id>", lower case
// (the report server's ids are case-insensitive).
func resKey(filter, id string) string {
	return filter + ":" + url.PathEscape(strings.ToLower(id))
}

// execKey names one execution; it is also the seen-set key in the store.
func execKey(filter, id, execID string) string {
	return resKey(filter, id) + ":" + url.PathEscape(strings.ToLower(execID))
}

func isExecution(e *rswebhooks.Event) bool {
	return e.Type == rswebhooks.EventExecuted && e.ResourceID != "" &&
		(e.Filter == rswebhooks.FilterTasks || e.Filter == rswebhooks.FilterAlerts)
}

// AppendEvent passes e to the store. An Executed event of a task or alert
// becomes a claim, stored before AppendEvent returns (so before the client
// sees its 2xx), or is dropped when the watcher already notified that very
// execution (see Correlator). Other events cost nothing more than the
// store's AppendEvent.
func (c *Correlator) AppendEvent(ctx context.Context, e *rswebhooks.Event) error {
	if e == nil || !isExecution(e) {
		return c.store.AppendEvent(ctx, e)
	}
	res := resKey(e.Filter, e.ResourceID)
	at := e.Time
	if at.IsZero() {
		at = c.now()
	}
	dropped, err := c.alreadyEmitted(ctx, res, at)
	if err != nil {
		return err
	}
	if dropped != "" {
		c.log.Debug().Str("resource", res).Str("execution", dropped).Str("event_id", e.ID).
			Msg("execute call already notified by the watcher; proxy event dropped")
		return nil
	}
	held := *e
	held.Time = at
	if err := c.put(ctx, &claim{Res: res, At: at.UTC(), Event: &held, id: e.ID}); err != nil {
		return err
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// alreadyEmitted consumes an emission of resource res dated within the
// skew tolerance of local time at, and returns its execution key ("" when
// there is none).
func (c *Correlator) alreadyEmitted(ctx context.Context, res string, at time.Time) (string, error) {
	es, err := c.store.ListMeta(ctx, emittedPrefix+res+":")
	if err != nil {
		return "", fmt.Errorf("watch: read the watcher's recent runs: %w", err)
	}
	srv := at.Add(c.offset())
	for _, kv := range es {
		var em emission
		if json.Unmarshal(kv.Value, &em) != nil || em.Res != res || absDur(em.Date.Sub(srv)) > c.tol {
			continue
		}
		ok, err := c.store.DeleteMetaIf(ctx, kv.Key, kv.Value)
		if err != nil {
			return "", fmt.Errorf("watch: consume the watcher's run: %w", err)
		}
		if ok {
			return strings.TrimPrefix(kv.Key, emittedPrefix), nil
		}
	}
	return "", nil
}

// put stores a new claim.
func (c *Correlator) put(ctx context.Context, cl *claim) error {
	raw, err := json.Marshal(cl)
	if err != nil {
		return fmt.Errorf("watch: encode claim: %w", err)
	}
	if err := c.store.PutMeta(ctx, cl.key(), raw); err != nil {
		return fmt.Errorf("watch: store the execute call's claim: %w", err)
	}
	cl.raw = raw
	return nil
}

// emitted records that the watcher notifies execution key of resource res
// (dated date on the server clock) with an event of its own, so that an
// execute call of that very run arriving late is dropped. It is written
// before the event, and expires after the window.
func (c *Correlator) emitted(ctx context.Context, res, key string, date time.Time) error {
	return c.putEmission(ctx, res, key, date, c.now())
}

func (c *Correlator) putEmission(ctx context.Context, res, key string, date, at time.Time) error {
	raw, _ := json.Marshal(emission{Res: res, Date: date.UTC()}) // cannot fail
	if err := c.store.PutMetaUntil(ctx, emittedPrefix+key, raw, at.Add(c.window+c.tol)); err != nil {
		return fmt.Errorf("watch: record the watcher's run %s: %w", key, err)
	}
	return nil
}

// unemit forgets the emission of execution key: its event turned out to be
// an execute call's (the watcher's copy was refused as a duplicate).
func (c *Correlator) unemit(ctx context.Context, key string) {
	raw, err := c.store.GetMeta(ctx, emittedPrefix+key)
	if err == nil {
		_, err = c.store.DeleteMetaIf(ctx, emittedPrefix+key, raw)
	}
	if err != nil && !errors.Is(err, rswebhooks.ErrNotFound) {
		c.log.Warn().Err(err).Str("execution", key).Msg("the watcher's run could not be forgotten; a second execute call within seconds of it may lack its run")
	}
}

// Woken is signalled (without blocking) after each execute call is held,
// so the resolver can read that history at once.
func (c *Correlator) Woken() <-chan struct{} { return c.wake }

// claims reads every claim in the store, in call order. A claim that cannot
// be decoded is logged and left alone.
func (c *Correlator) claims(ctx context.Context) ([]*claim, error) {
	es, err := c.store.ListMeta(ctx, claimPrefix)
	if err != nil {
		return nil, fmt.Errorf("watch: read execute calls' claims: %w", err)
	}
	out := make([]*claim, 0, len(es))
	for _, kv := range es {
		cl := &claim{id: strings.TrimPrefix(kv.Key, claimPrefix), raw: kv.Value}
		if err := json.Unmarshal(kv.Value, cl); err != nil {
			c.log.Error().Err(err).Str("key", kv.Key).Msg("execute call's claim cannot be decoded; left in the store")
			continue
		}
		out = append(out, cl)
	}
	slices.SortStableFunc(out, func(a, b *claim) int {
		return cmp.Or(a.At.Compare(b.At), strings.Compare(a.id, b.id))
	})
	return out, nil
}

// decide replaces cl's stored value with next (SwapMeta) and carries the
// decision out. If another node decided first, its decision is read back
// and carried out instead (every step is idempotent).
func (c *Correlator) decide(ctx context.Context, cl *claim, next claim) (stored int, err error) {
	raw, err := json.Marshal(&next)
	if err != nil {
		return 0, fmt.Errorf("watch: encode claim: %w", err)
	}
	ok, err := c.store.SwapMeta(ctx, cl.key(), cl.raw, raw)
	if err != nil {
		return 0, fmt.Errorf("watch: decide execute call %s: %w", cl.id, err)
	}
	if ok {
		next.id, next.raw = cl.id, raw
		*cl = next
		stored, err = c.finish(ctx, cl)
		return stored, err
	}
	// Another node decided (or finished) first: follow it.
	cur, err := c.store.GetMeta(ctx, cl.key())
	if errors.Is(err, rswebhooks.ErrNotFound) {
		cl.gone()
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("watch: read execute call %s: %w", cl.id, err)
	}
	fresh := claim{id: cl.id, raw: cur}
	if err := json.Unmarshal(cur, &fresh); err != nil {
		return 0, fmt.Errorf("watch: decode claim %s: %w", cl.id, err)
	}
	*cl = fresh
	if cl.pendingWork() {
		stored, err = c.finish(ctx, cl)
	}
	return stored, err
}

// finish carries out a decision: it appends the claim's event (a second
// append is ErrConflict: already done), then for a matched claim marks its
// run seen and removes the claim, and for a flushed one records it done.
func (c *Correlator) finish(ctx context.Context, cl *claim) (stored int, err error) {
	if cl.Event != nil && (cl.Exec != "" || (cl.Flushed && !cl.Done)) {
		err := c.store.AppendEvent(ctx, cl.Event)
		switch {
		case err == nil:
			stored = 1
			if cl.Exec != "" {
				c.log.Debug().Str("execution", cl.Exec).Str("event_id", cl.Event.ID).Str("call", cl.id).
					Msg("execute call's run found; its event leaves with the record")
			} else {
				c.log.Info().Str("event_id", cl.Event.ID).Str("filter", cl.Event.Filter).Str("resource_id", cl.Event.ResourceID).
					Strs("missing", cl.Event.Missing).Msg("execute call notified without its run: no record in time")
			}
		case errors.Is(err, rswebhooks.ErrConflict):
		default:
			return 0, fmt.Errorf("watch: append the event of execute call %s: %w", cl.id, err)
		}
	}
	switch {
	case cl.Exec != "":
		if err := c.store.MarkExecutionsSeen(ctx, []string{cl.Exec}); err != nil {
			return stored, fmt.Errorf("watch: mark execution %s seen: %w", cl.Exec, err)
		}
		if _, err := c.store.DeleteMetaIf(ctx, cl.key(), cl.raw); err != nil {
			return stored, fmt.Errorf("watch: remove execute call %s: %w", cl.id, err)
		}
		cl.gone()
	case cl.Flushed && !cl.Done:
		next := claim{Res: cl.Res, At: cl.At, Flushed: true, Done: true}
		raw, _ := json.Marshal(&next) // cannot fail: no event
		if _, err := c.store.SwapMeta(ctx, cl.key(), cl.raw, raw); err != nil {
			return stored, fmt.Errorf("watch: record execute call %s done: %w", cl.id, err)
		}
		next.id, next.raw = cl.id, raw
		*cl = next
	}
	return stored, nil
}

// settle carries out decisions not yet carried out (a node died, or a step
// failed), lets held claims older than wait leave without their run, and
// removes done claims past the window. It returns the number of events
// stored and the first error; the other claims are still handled.
func (c *Correlator) settle(ctx context.Context, cls []*claim, wait time.Duration) (stored int, firstErr error) {
	now := c.now()
	note := func(n int, err error) {
		stored += n
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for _, cl := range cls {
		switch {
		case cl.pendingWork():
			note(c.finish(ctx, cl))
		case cl.held() && !cl.At.After(now.Add(-wait)):
			ev := *cl.Event
			ev.Missing = append(append([]string(nil), ev.Missing...), "ExecutionId", "ExecutionDateUtc", "DocumentIds")
			if ev.Filter == rswebhooks.FilterAlerts {
				ev.Missing = append(ev.Missing, "AlertTriggered")
			}
			ev.Note = fmt.Sprintf("no execution record of this run appeared within %s of the call", wait)
			n, err := c.decide(ctx, cl, claim{Res: cl.Res, At: cl.At, Flushed: true, Event: &ev})
			note(n, err)
		case cl.Flushed && cl.Done && cl.At.Before(now.Add(-c.window-c.tol)):
			if _, err := c.store.DeleteMetaIf(ctx, cl.key(), cl.raw); err != nil {
				note(0, fmt.Errorf("watch: remove expired execute call %s: %w", cl.id, err))
			} else {
				cl.gone()
			}
		}
	}
	return stored, firstErr
}

// run is one execution record as the correlator sees it.
type run struct {
	key  string    // execution key
	date time.Time // server clock
	id   string    // its event id (EventID)
	// enrich attaches the record (and its documents) to an event.
	enrich func(*rswebhooks.Event)
}

// match lets the open claims of resource res take runs from its history
// (runs), as the reader of one history or a poll finds them. The earliest
// run not seen and not taken goes to the earliest open claim whose window
// covers it, each claim taking one run; the claim's event is enriched and
// appended under the run's event id, so the run cannot be notified twice
// whoever gets there first. handled holds the runs a claim took or holds
// (the poll must not notify those itself). A held claim that takes none
// while a run the watcher notified on its own is dated within the skew
// tolerance of it is dropped (the watcher was first).
func (c *Correlator) match(ctx context.Context, res string, runs []run, seen map[string]bool, cls []*claim) (handled map[string]bool, stored int, firstErr error) {
	note := func(n int, err error) {
		stored += n
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	var open []*claim
	taken := map[string]bool{}
	for _, cl := range cls {
		switch {
		case cl.Res != res:
		case cl.Exec != "":
			taken[cl.Exec] = true
		case cl.open():
			open = append(open, cl)
		}
	}
	handled = map[string]bool{}
	for _, r := range runs {
		if taken[r.key] {
			handled[r.key] = true
		}
	}
	if len(open) == 0 {
		return handled, 0, nil
	}
	runs = slices.Clone(runs)
	slices.SortStableFunc(runs, func(a, b run) int { return cmp.Or(a.date.Compare(b.date), strings.Compare(a.key, b.key)) })
	off := c.offset()
	used := make([]bool, len(open))
	for _, r := range runs {
		if seen[r.key] || taken[r.key] {
			continue
		}
		for i, cl := range open {
			if used[i] || !c.covers(cl, r.date, off) {
				continue
			}
			used[i] = true
			handled[r.key] = true
			next := claim{Res: cl.Res, At: cl.At, Exec: r.key, Flushed: cl.Flushed, Done: cl.Done}
			if cl.held() {
				ev := *cl.Event
				ev.ID = r.id
				r.enrich(&ev)
				next.Event = &ev
			}
			n, err := c.decide(ctx, cl, next)
			note(n, err)
			break
		}
	}
	// The watcher was first: it notified the run of a held call on its own
	// before the call was held (or before this node read the claims).
	for i, cl := range open {
		if used[i] || !cl.held() {
			continue
		}
		srv := cl.At.Add(off)
		for _, r := range runs {
			if seen[r.key] && absDur(r.date.Sub(srv)) <= c.tol {
				if ok, err := c.dropForEmission(ctx, cl, r.key); ok || err != nil {
					note(0, err)
					break
				}
			}
		}
	}
	return handled, stored, firstErr
}

// covers reports whether claim cl may take a run dated date (server clock):
// from SkewTolerance before the call to Window after it.
func (c *Correlator) covers(cl *claim, date time.Time, off time.Duration) bool {
	srv := cl.At.Add(off)
	return !date.Before(srv.Add(-c.tol)) && !date.After(srv.Add(c.window))
}

// dropForEmission drops held claim cl when the watcher notified run key on
// its own: the call's event would be a second notification of that run.
func (c *Correlator) dropForEmission(ctx context.Context, cl *claim, key string) (bool, error) {
	raw, err := c.store.GetMeta(ctx, emittedPrefix+key)
	if errors.Is(err, rswebhooks.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("watch: read the watcher's run %s: %w", key, err)
	}
	ok, err := c.store.DeleteMetaIf(ctx, cl.key(), cl.raw)
	if err != nil || !ok {
		return false, err
	}
	cl.gone()
	if _, err := c.store.DeleteMetaIf(ctx, emittedPrefix+key, raw); err != nil {
		c.log.Warn().Err(err).Str("execution", key).Msg("the watcher's run could not be marked as used")
	}
	c.log.Debug().Str("execution", key).Str("event_id", cl.id).
		Msg("execute call already notified by the watcher; proxy event dropped")
	return true, nil
}

// setOffset records the current estimate of server clock minus local clock.
func (c *Correlator) setOffset(d time.Duration) {
	c.mu.Lock()
	c.off = d
	c.mu.Unlock()
}

func (c *Correlator) offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.off
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// Unwatched passes events to Store and, when no watcher runs (no service
// account, or --watch-interval 0), marks each execute call's event as
// lacking its run: Missing names the run's fields and Note is Reason.
type Unwatched struct {
	Store interface {
		AppendEvent(ctx context.Context, e *rswebhooks.Event) error
	}
	Reason string
}

// AppendEvent implements the detector's event store.
func (u Unwatched) AppendEvent(ctx context.Context, e *rswebhooks.Event) error {
	if e != nil && isExecution(e) && e.ExecutionID == "" {
		c := *e
		c.Missing = append(append([]string(nil), e.Missing...), "ExecutionId", "ExecutionDateUtc", "DocumentIds")
		if c.Filter == rswebhooks.FilterAlerts {
			c.Missing = append(c.Missing, "AlertTriggered")
		}
		c.Note = u.Reason
		e = &c
	}
	return u.Store.AppendEvent(ctx, e)
}
