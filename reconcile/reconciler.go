package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/poll"
	"github.com/rswebhooks/rswebhooks/reportserver"
)

// Store meta keys: the snapshot (items of each collection, written when
// they change) and the read times with the used claims (written every run).
const (
	metaSnapshot = "reconcile/snapshot"
	metaReads    = "reconcile/reads"
)

// readTimes is the value of metaReads.
type readTimes struct {
	T map[string]time.Time `json:"T"`
	U map[string]time.Time `json:"U,omitempty"`
}

// Defaults for Options.
const (
	DefaultInterval    = 60 * time.Second
	DefaultJitter      = 0.1
	DefaultPollTimeout = 5 * time.Minute
	// DefaultTolerance absorbs the time between the report server's write
	// and the proxy's append of the event for it.
	DefaultTolerance = 5 * time.Second
	// adminRecheck is how often a confirmed administrator is checked again.
	adminRecheck = time.Hour
	// massDeletionMin is the number of deletions in one collection below
	// which a run is never held back (see massDeletion).
	massDeletionMin = 10
)

// ErrDisabled is returned by New when the report-server client has no
// service account.
var ErrDisabled = errors.New("reconcile: no service account configured; reconciler disabled")

// ErrNotAdmin is returned by RunOnce while the service account is not a
// report-server administrator: its lists would miss what it may not read,
// and every missing item would look deleted.
var ErrNotAdmin = errors.New("reconcile: the service account is not a report-server administrator, so its lists would be incomplete (items it may not read would look deleted); reconciling is refused until it is one")

// ReportServer is the part of *reportserver.Client the reconciler uses.
type ReportServer interface {
	ProbeExecutionsAPI(ctx context.Context) (string, error)
	Collection(ctx context.Context, version, filter string) ([]json.RawMessage, reportserver.Stamp, error)
	ServiceIsAdmin(ctx context.Context) (bool, error)
}

// Store is the part of the store the reconciler uses.
type Store interface {
	AppendEvent(ctx context.Context, e *rswebhooks.Event) error
	ListEvents(ctx context.Context, afterID string, limit int) ([]*rswebhooks.Event, error)
	GetMeta(ctx context.Context, key string) ([]byte, error)
	PutMeta(ctx context.Context, key string, v []byte) error
}

var _ ReportServer = (*reportserver.Client)(nil)

// Options configure New. Client and Store are required.
type Options struct {
	// Client reads the collections with the service account. Required; a
	// *reportserver.Client without a service account makes New return
	// ErrDisabled.
	Client ReportServer
	// Store holds the snapshot and the events, and is searched for the
	// proxy's events (the claims). Required.
	Store Store
	// Gate, when set, is the detector's store (see Gate): it drops the
	// proxy's late copy of a change the reconciler emitted. Nil: no such
	// race protection.
	Gate *Gate
	// APIVersion is "v2" or "v3"; "" probes v3 then v2 like the execution
	// watcher (the same probe) on the first run.
	APIVersion string
	// Interval between runs. Zero means DefaultInterval (60 s); a caller
	// that wants the reconciler off (--reconcile-interval 0) does not
	// start it.
	Interval time.Duration
	// Jitter spreads each delay by ±Jitter (a fraction). Zero means
	// DefaultJitter (0.1); negative means none.
	Jitter float64
	// MaxBackoff caps the delay after failed or slow runs. Zero means
	// 10 × Interval.
	MaxBackoff time.Duration
	// PollTimeout bounds one run. Zero means 5 min.
	PollTimeout time.Duration
	// Tolerance is how much later than a list read a proxy event for a
	// change shown in that read may be stored. Zero means DefaultTolerance
	// (5 s).
	Tolerance time.Duration
	// OnEvent, when set, is called after a run stored new events. It must
	// not block.
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

// Reconciler diffs the report server's collections against its snapshot.
// Use RunOnce for one run or Run for the loop.
type Reconciler struct {
	o   Options
	log zerolog.Logger
	m   *Metrics
	rng func() float64

	names atomic.Pointer[map[string]string] // "filter:lower id" → name, from the snapshot

	mu        sync.Mutex // one run at a time; guards everything below
	loaded    bool
	snap      snapshot
	version   string
	adminAt   time.Time      // when the account was last confirmed administrator
	refusedAt time.Time      // when a refusal was last logged
	suspect   map[string]int // deletions held back per collection (massDeletion)
}

// New validates opts and returns a Reconciler, or ErrDisabled.
func New(opts Options) (*Reconciler, error) {
	if opts.Client == nil {
		return nil, errors.New("reconcile: Options.Client is required")
	}
	if c, ok := opts.Client.(interface{ Configured() bool }); ok && !c.Configured() {
		return nil, ErrDisabled
	}
	if opts.Store == nil {
		return nil, errors.New("reconcile: Options.Store is required")
	}
	var errs []error
	switch opts.APIVersion {
	case "", reportserver.APIv2, reportserver.APIv3:
	default:
		errs = append(errs, fmt.Errorf("reconcile: Options.APIVersion must be \"\", \"v2\" or \"v3\", got %q", opts.APIVersion))
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"Interval", opts.Interval}, {"MaxBackoff", opts.MaxBackoff}, {"PollTimeout", opts.PollTimeout}, {"Tolerance", opts.Tolerance}} {
		if f.d < 0 {
			errs = append(errs, fmt.Errorf("reconcile: Options.%s must not be negative, got %s", f.name, f.d))
		}
	}
	if opts.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("reconcile: Options.Jitter must be below 1, got %g", opts.Jitter))
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
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 10 * o.Interval
	}
	o.MaxBackoff = max(o.MaxBackoff, o.Interval)
	if o.PollTimeout == 0 {
		o.PollTimeout = DefaultPollTimeout
	}
	if o.Tolerance == 0 {
		o.Tolerance = DefaultTolerance
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
	return &Reconciler{o: o, log: o.Logger.With().Str("component", "reconcile").Logger(), m: m,
		rng: rand.Float64, version: o.APIVersion, suspect: map[string]int{}}, nil
}

// Run reconciles at once and then every Interval (jittered) until ctx is
// done, backing off exponentially (up to MaxBackoff) while runs fail.
// Errors are logged, not returned; Run returns nil when ctx is done.
func (r *Reconciler) Run(ctx context.Context) error {
	// In a cluster Run starts each time this node is elected, and another
	// node may have reconciled meanwhile: read the snapshot again rather
	// than diff against the one in memory (which would notify its changes
	// a second time).
	r.mu.Lock()
	r.loaded = false
	r.suspect = map[string]int{}
	r.mu.Unlock()
	return poll.Loop{
		Schedule: r.schedule(),
		Once:     r.RunOnce,
		OnError: func(err error, fails int, retryIn time.Duration) {
			if errors.Is(err, ErrNotAdmin) {
				return // logged by RunOnce, once an hour
			}
			r.log.Warn().Err(err).Int("failures", fails).Dur("retry_in", retryIn).Msg("reconcile run failed")
		},
		Now:   r.o.Now,
		Sleep: r.o.sleep,
	}.Run(ctx)
}

func (r *Reconciler) schedule() poll.Schedule {
	return poll.Schedule{Interval: r.o.Interval, MaxBackoff: r.o.MaxBackoff, Jitter: r.o.Jitter, Rand: r.rng}
}

// nextDelay is the pause before the next run (see poll.Schedule.Next).
func (r *Reconciler) nextDelay(fails int, took time.Duration) time.Duration {
	return r.schedule().Next(fails, took)
}

// read is one collection's new read.
type read struct {
	filter string
	at     time.Time
	items  map[string]item
	err    error
}

// RunOnce runs one reconcile: check the account, read the five
// collections, diff, emit what the proxy did not see, save the snapshot.
// A collection that could not be read keeps its snapshot; the others go
// ahead. It returns the first error met.
func (r *Reconciler) RunOnce(ctx context.Context) (err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := r.o.Now()
	defer func() {
		r.m.Duration.Observe(r.o.Now().Sub(start).Seconds())
		switch {
		case err == nil:
			r.m.Runs.WithLabelValues(ResultOK).Inc()
			r.m.LastSuccess.Set(float64(start.UnixNano()) / 1e9)
		case errors.Is(err, ErrNotAdmin):
			r.m.Runs.WithLabelValues(ResultRefused).Inc()
		default:
			r.m.Runs.WithLabelValues(ResultError).Inc()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, r.o.PollTimeout)
	defer cancel()

	if err := r.load(ctx); err != nil {
		return err
	}
	if err := r.checkAdmin(ctx, start); err != nil {
		return err
	}
	if r.version == "" {
		v, err := r.o.Client.ProbeExecutionsAPI(ctx)
		if err != nil {
			return fmt.Errorf("reconcile: pick API version: %w", err)
		}
		r.version = v
		r.log.Info().Str("api_version", v).Msg("reconciler uses this API version")
	}

	var firstErr error
	var reads []*read
	for _, f := range rswebhooks.Filters() {
		rd := &read{filter: f, at: r.o.Now()}
		raws, _, err := r.o.Client.Collection(ctx, r.version, f)
		if err == nil {
			rd.items = make(map[string]item, len(raws))
			for _, raw := range raws {
				it, derr := decodeItem(f, raw)
				if derr != nil {
					err = fmt.Errorf("decode an item: %w", derr)
					break
				}
				rd.items[strings.ToLower(it.ID)] = it
			}
		}
		if err != nil {
			rd.err = fmt.Errorf("reconcile: read %s: %w", f, err)
			if firstErr == nil {
				firstErr = rd.err
			}
			continue
		}
		reads = append(reads, rd)
	}

	// Diff the collections that have a baseline; baseline the others.
	var changes []change
	prev := map[string]time.Time{}
	baselined := 0
	for i := 0; i < len(reads); i++ {
		rd := reads[i]
		old := r.snap.Collections[rd.filter]
		if old == nil {
			baselined++
			continue
		}
		cs := diff(rd.filter, old.Items, rd.items)
		if r.massDeletion(rd.filter, cs, len(old.Items)) {
			reads = append(reads[:i], reads[i+1:]...) // keep its snapshot; look again next run
			i--
			continue
		}
		prev[rd.filter] = old.ReadAt
		changes = append(changes, cs...)
	}
	used := map[string]time.Time{}
	emit, err := r.decide(ctx, changes, prev, reads, used)
	if err != nil {
		return err
	}

	// Events first (deterministic ids: a re-run after a crash finds them
	// stored), then the snapshot.
	stored := 0
	failed := map[string]bool{}
	for _, c := range emit {
		e := r.event(c, prev[c.filter])
		err := r.o.Store.AppendEvent(ctx, e)
		if err != nil && !errors.Is(err, rswebhooks.ErrConflict) {
			if r.o.Gate != nil {
				r.o.Gate.withdraw(ctx, emission{res: changeKey(c), typ: c.typ, id: e.ID, read: readAt(reads, c.filter)})
			}
			failed[c.filter] = true
			if firstErr == nil {
				firstErr = fmt.Errorf("reconcile: append %s %s %s: %w", c.filter, c.typ, c.cur.ID, err)
			}
			continue
		}
		if err == nil {
			stored++
			r.m.Changes.WithLabelValues(c.filter, c.typ).Inc()
			r.log.Info().Str("event_id", e.ID).Str("filter", c.filter).Str("event", c.typ).
				Str("resource_id", e.ResourceID).Msg("change the proxy did not see")
		}
	}
	if stored > 0 && r.o.OnEvent != nil {
		r.o.OnEvent()
	}

	next := snapshot{V: snapshotVersion, Collections: map[string]*collection{}}
	for f, c := range r.snap.Collections {
		next.Collections[f] = c
	}
	for _, rd := range reads {
		if failed[rd.filter] {
			continue // diff again next time; stored events are refused as duplicates
		}
		items := make(map[string]entry, len(rd.items))
		for k, it := range rd.items {
			items[k] = it.entry
		}
		next.Collections[rd.filter] = &collection{ReadAt: rd.at.UTC(), Items: items}
	}
	// A used claim matters while it can fall in a window again: until the
	// oldest collection read minus the tolerance passes it.
	oldest := r.o.Now()
	for _, c := range next.Collections {
		oldest = minTime(oldest, c.ReadAt)
	}
	for id, at := range r.snap.Used {
		if !at.Before(oldest.Add(-2 * r.o.Tolerance)) {
			used[id] = at
		}
	}
	next.Used = used
	// The items are written only when they changed (a large value on a
	// large server); the read times and used claims every run. Items go
	// first: a crash between the two leaves items newer than the read
	// times, which the next load resolves (the later time wins).
	if baselined > 0 || len(changes) > 0 {
		raw, err := json.Marshal(&next)
		if err != nil {
			return fmt.Errorf("reconcile: encode snapshot: %w", err)
		}
		if err := r.o.Store.PutMeta(ctx, metaSnapshot, raw); err != nil {
			return fmt.Errorf("reconcile: save snapshot: %w", err)
		}
	}
	rt := readTimes{T: map[string]time.Time{}, U: used}
	for f, c := range next.Collections {
		rt.T[f] = c.ReadAt
	}
	raw, err := json.Marshal(&rt)
	if err != nil {
		return fmt.Errorf("reconcile: encode read times: %w", err)
	}
	if err := r.o.Store.PutMeta(ctx, metaReads, raw); err != nil {
		return fmt.Errorf("reconcile: save read times: %w", err)
	}
	r.snap = next
	r.publishNames()
	if baselined > 0 {
		r.log.Info().Int("collections", baselined).Msg("reconciler baseline recorded; existing resources not notified")
	}
	return firstErr
}

// massDeletion holds back a run that would delete most of a collection
// (more than half, and more than massDeletionMin items): a server answering
// an empty or partial list for a moment must not become a storm of Deleted
// notifications. The same deletions seen again on the next run go ahead.
func (r *Reconciler) massDeletion(filter string, cs []change, had int) bool {
	deleted := 0
	for _, c := range cs {
		if c.typ == rswebhooks.EventDeleted {
			deleted++
		}
	}
	if deleted <= massDeletionMin || deleted*2 <= had {
		delete(r.suspect, filter)
		return false
	}
	if n, ok := r.suspect[filter]; ok && deleted >= n {
		delete(r.suspect, filter)
		r.log.Warn().Str("filter", filter).Int("deleted", deleted).Int("of", had).
			Msg("most of a collection is gone on two runs in a row; notifying the deletions")
		return false
	}
	r.suspect[filter] = deleted
	r.log.Warn().Str("filter", filter).Int("deleted", deleted).Int("of", had).
		Msg("most of a collection is missing from the list; holding back until the next run confirms it")
	return true
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func readAt(reads []*read, filter string) time.Time {
	for _, rd := range reads {
		if rd.filter == filter {
			return rd.at
		}
	}
	return time.Time{}
}

// changeKey is the claim key a change is matched on.
func changeKey(c change) string { return resKey(c.filter, c.cur.ID) }

// decide drops the changes the proxy claimed: a proxy event of the same
// type for the resource (by id, or by name for Created) stored between the
// collection's previous read (minus the tolerance) and this read (plus the
// tolerance). The rest are recorded as emissions at the gate, then the
// store is searched once more for claims that raced in (in a cluster, also
// the proxy events other nodes' gates announced but had not stored yet).
func (r *Reconciler) decide(ctx context.Context, changes []change, prev map[string]time.Time, reads []*read, used map[string]time.Time) ([]change, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	from := time.Time{}
	for _, t := range prev {
		if from.IsZero() || t.Before(from) {
			from = t
		}
	}
	cursor := rswebhooks.IDFrom(from.Add(-r.o.Tolerance), [10]byte{})
	claims := map[string][]*rswebhooks.Event{}
	scan := func() error {
		for {
			es, err := r.o.Store.ListEvents(ctx, cursor, 1000)
			if err != nil {
				return fmt.Errorf("reconcile: read the proxy's events: %w", err)
			}
			for _, e := range es {
				if k := claimKey(e); k != "" {
					claims[k] = append(claims[k], e)
				}
			}
			if len(es) < 1000 {
				if len(es) > 0 {
					cursor = es[len(es)-1].ID
				}
				return nil
			}
			cursor = es[len(es)-1].ID
		}
	}
	keys := func(c change) []string {
		ks := []string{changeKey(c)}
		if c.typ == rswebhooks.EventCreated && c.cur.Name != "" {
			ks = append(ks, nameKey(c.filter, c.cur.Name))
		}
		return ks
	}
	// fits: a proxy event (id, time) not used yet and within c's window.
	fits := func(c change, id string, at time.Time) bool {
		if _, done := r.snap.Used[id]; done {
			return false
		}
		if _, done := used[id]; done {
			return false
		}
		lo, hi := prev[c.filter].Add(-r.o.Tolerance), readAt(reads, c.filter).Add(r.o.Tolerance)
		return !at.Before(lo) && !at.After(hi)
	}
	stored := func(c change) *rswebhooks.Event {
		for _, k := range keys(c) {
			for _, e := range claims[k] {
				if e.Type == c.typ && fits(c, e.ID, e.Time) {
					return e
				}
			}
		}
		return nil
	}
	if err := scan(); err != nil {
		return nil, err
	}
	var rest []change
	for _, c := range changes {
		if e := stored(c); e != nil {
			used[e.ID] = e.Time.UTC()
			continue
		}
		rest = append(rest, c)
	}
	if r.o.Gate == nil || len(rest) == 0 {
		return rest, nil
	}
	ems := make([]emission, 0, len(rest))
	now := r.o.Now()
	for _, c := range rest {
		ems = append(ems, emission{res: changeKey(c), typ: c.typ, id: eventID(c, prev[c.filter]), read: readAt(reads, c.filter), at: now})
	}
	if err := r.o.Gate.record(ctx, ems); err != nil {
		return nil, err
	}
	if err := scan(); err != nil {
		return nil, err
	}
	var out []change
	for i, c := range rest {
		claimID, claimAt := "", time.Time{}
		if e := stored(c); e != nil {
			claimID, claimAt = e.ID, e.Time
		} else if r.o.Gate.shared != nil {
			for _, k := range keys(c) {
				p, ok, err := r.o.Gate.inFlight(ctx, k, c.typ)
				if err != nil {
					return nil, err
				}
				if ok && fits(c, p.Event, p.Time) {
					claimID, claimAt = p.Event, p.Time
					break
				}
			}
		}
		if claimID == "" {
			out = append(out, c)
			continue
		}
		if r.o.Gate.shared != nil {
			// The proxy's copy may have seen the emission too: the store
			// settles which of the two stands, once for both.
			v, err := r.o.Gate.settle(ctx, ems[i].id, decidedProxy)
			if err != nil {
				return nil, err
			}
			if v != decidedProxy {
				out = append(out, c) // a node dropped its copy for this emission
				continue
			}
		}
		used[claimID] = claimAt.UTC()
		r.o.Gate.withdraw(ctx, ems[i])
	}
	return out, nil
}

// event builds the event of one change.
func (r *Reconciler) event(c change, prevRead time.Time) *rswebhooks.Event {
	e := &rswebhooks.Event{
		ID:           eventID(c, prevRead),
		Filter:       c.filter,
		Type:         c.typ,
		ResourceID:   c.cur.ID,
		ResourceName: c.cur.Name,
		Time:         r.o.Now().UTC(),
		APIVersion:   r.version,
		Source:       rswebhooks.SourceReconcile,
	}
	if c.typ == rswebhooks.EventCreated {
		e.UserID, e.UserName = c.cur.UserID, c.cur.UserName
	}
	return e
}

// checkAdmin refuses to reconcile with a service account that is not an
// administrator, checking again every hour once confirmed.
func (r *Reconciler) checkAdmin(ctx context.Context, now time.Time) error {
	if !r.adminAt.IsZero() && now.Sub(r.adminAt) < adminRecheck {
		return nil
	}
	ok, err := r.o.Client.ServiceIsAdmin(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: check that the service account is an administrator: %w", err)
	}
	if !ok {
		r.adminAt = time.Time{}
		if r.refusedAt.IsZero() || now.Sub(r.refusedAt) >= adminRecheck {
			r.refusedAt = now
			r.log.Error().Err(ErrNotAdmin).Msg("reconciler refused: give the service account the System Administrator role")
		}
		return ErrNotAdmin
	}
	r.adminAt, r.refusedAt = now, time.Time{}
	return nil
}

// load reads the persisted snapshot once.
func (r *Reconciler) load(ctx context.Context) error {
	if r.loaded {
		return nil
	}
	r.snap = snapshot{}
	raw, err := r.o.Store.GetMeta(ctx, metaSnapshot)
	switch {
	case errors.Is(err, rswebhooks.ErrNotFound):
	case err != nil:
		return fmt.Errorf("reconcile: load snapshot: %w", err)
	default:
		if err := json.Unmarshal(raw, &r.snap); err != nil {
			return fmt.Errorf("reconcile: decode %s: %w", metaSnapshot, err)
		}
		if r.snap.V != snapshotVersion {
			r.log.Warn().Int("version", r.snap.V).Msg("snapshot of another format; recording a new baseline")
			r.snap = snapshot{}
		}
	}
	if r.snap.Collections == nil {
		r.snap.Collections = map[string]*collection{}
	}
	raw, err = r.o.Store.GetMeta(ctx, metaReads)
	switch {
	case errors.Is(err, rswebhooks.ErrNotFound):
	case err != nil:
		return fmt.Errorf("reconcile: load read times: %w", err)
	default:
		var rt readTimes
		if err := json.Unmarshal(raw, &rt); err != nil {
			return fmt.Errorf("reconcile: decode %s: %w", metaReads, err)
		}
		for f, c := range r.snap.Collections {
			if t, ok := rt.T[f]; ok && t.After(c.ReadAt) {
				c.ReadAt = t
			}
		}
		if len(r.snap.Collections) > 0 {
			r.snap.Used = rt.U
		}
	}
	r.loaded = true
	r.publishNames()
	return nil
}

// publishNames makes the snapshot's names readable by Name without r.mu
// (a run holds it across its requests).
func (r *Reconciler) publishNames() {
	m := map[string]string{}
	for f, c := range r.snap.Collections {
		for k, e := range c.Items {
			if e.Name != "" {
				m[f+":"+k] = e.Name
			}
		}
	}
	r.names.Store(&m)
}

// Name returns the name a resource had when its collection was last read
// (detect.Names): what a Deleted call's path does not say. It never blocks.
func (r *Reconciler) Name(filter, id string) (string, bool) {
	m := r.names.Load()
	if m == nil {
		return "", false
	}
	n, ok := (*m)[filter+":"+strings.ToLower(id)]
	return n, ok
}
