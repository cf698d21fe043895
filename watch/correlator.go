package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// metaCorrelator is the store meta key holding the correlator's state.
const metaCorrelator = "watch/correlator"

// Defaults for CorrelatorOptions.
const (
	DefaultWindow        = 10 * time.Minute
	DefaultSkewTolerance = 5 * time.Second
)

// CorrelatorStore is the part of the store a Correlator uses: it passes
// events through to AppendEvent and keeps its state in a meta key.
type CorrelatorStore interface {
	AppendEvent(ctx context.Context, e *rswebhooks.Event) error
	GetMeta(ctx context.Context, key string) ([]byte, error)
	PutMeta(ctx context.Context, key string, v []byte) error
}

// CorrelatorOptions configure NewCorrelator. Store is required.
type CorrelatorOptions struct {
	// Store receives every event passed to AppendEvent and keeps the
	// correlator's state (meta key "watch/correlator"). Required.
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
//     call) is held as a claim, on disk in store meta, instead of being
//     appended: the watcher reads that task's or alert's history at once,
//     attaches the run's record to the held event and appends it (one
//     event, with the caller and the run); if no record appears within the
//     watcher's RecordWait, the event is appended without, naming the
//     fields it lacks in Missing;
//   - in the rare race where the watcher already emitted the record of that
//     very call (dated within SkewTolerance of it), the proxy's event is
//     dropped instead.
//
// Claims and the watcher's recent emissions are kept in store meta, so a
// restart keeps them. It is safe for concurrent use.
type Correlator struct {
	store  CorrelatorStore
	window time.Duration
	tol    time.Duration
	log    zerolog.Logger
	now    func() time.Time
	wake   chan struct{}

	mu sync.Mutex // guards st
	st corrState

	persistMu sync.Mutex // serialises PutMeta so the last snapshot wins
}

type corrState struct {
	// Offset estimates server clock minus local clock.
	Offset  time.Duration `json:"OffsetNs"`
	Claims  []claim       `json:"Claims"`
	Emitted []emission    `json:"Emitted"`
}

// claim is an execute call seen by the proxy. Its event is held here (on
// disk, in the correlator's meta key) until the watcher finds the run's
// record or the wait bound passes; then it is appended once and Sent.
type claim struct {
	Res  string    `json:"R"`           // resource key
	At   time.Time `json:"T"`           // local time of the call (event time)
	Exec string    `json:"X,omitempty"` // execution key that consumed it
	// Sent: the call's event is in the store. Claims persisted before
	// events were held have no Event and count as sent.
	Sent bool `json:"S,omitempty"`
	// Event is the call's event, enriched with the record once matched;
	// dropped once sent.
	Event *rswebhooks.Event `json:"E,omitempty"`
}

// held reports whether the claim still holds an event to append.
func (cl *claim) held() bool { return !cl.Sent && cl.Event != nil }

// emission is an execution the watcher decided to notify.
type emission struct {
	Res  string    `json:"R"`
	Exec string    `json:"X"`
	Date time.Time `json:"D"` // execution date, server clock
	At   time.Time `json:"T"` // local time of the decision
	Used bool      `json:"U,omitempty"`
}

// NewCorrelator validates opts and loads the persisted state.
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
	raw, err := c.store.GetMeta(ctx, metaCorrelator)
	switch {
	case errors.Is(err, rswebhooks.ErrNotFound):
	case errors.Is(err, rswebhooks.ErrStoreUnavailable):
		// Degraded store: start empty; nothing can be stored meanwhile.
		c.log.Warn().Err(err).Msg("correlator state not loaded: the store is unavailable")
	case err != nil:
		return nil, fmt.Errorf("watch: load correlator state: %w", err)
	default:
		if err := json.Unmarshal(raw, &c.st); err != nil {
			return nil, fmt.Errorf("watch: decode correlator state: %w", err)
		}
		for i := range c.st.Claims {
			if c.st.Claims[i].Event == nil {
				c.st.Claims[i].Sent = true // stored before events were held
			}
		}
	}
	return c, nil
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

// AppendEvent passes e to the store. Executed events of tasks and alerts
// become claims once stored (or are dropped when the watcher already
// notified that very execution; see Correlator).
func (c *Correlator) AppendEvent(ctx context.Context, e *rswebhooks.Event) error {
	if e == nil || !isExecution(e) {
		return c.store.AppendEvent(ctx, e)
	}
	res := resKey(e.Filter, e.ResourceID)
	at := e.Time
	if at.IsZero() {
		at = c.now()
	}
	c.mu.Lock()
	srv := at.Add(c.st.Offset)
	for i := range c.st.Emitted {
		em := &c.st.Emitted[i]
		if em.Res == res && !em.Used && absDur(em.Date.Sub(srv)) <= c.tol {
			em.Used = true
			c.mu.Unlock()
			c.log.Debug().Str("resource", res).Str("execution", em.Exec).Str("event_id", e.ID).
				Msg("execute call already notified by the watcher; proxy event dropped")
			return c.persist(ctx)
		}
	}
	held := *e
	held.Time = at
	c.st.Claims = append(c.st.Claims, claim{Res: res, At: at.UTC(), Event: &held})
	c.mu.Unlock()
	// The held event is on disk once persist returns: that is the append
	// the caller waits for before the client sees its 2xx.
	if err := c.persist(ctx); err != nil {
		c.drop(e.ID)
		return err
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// drop forgets the claim holding event id (its persist failed).
func (c *Correlator) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.st.Claims {
		if ev := c.st.Claims[i].Event; ev != nil && ev.ID == id {
			c.st.Claims = append(c.st.Claims[:i], c.st.Claims[i+1:]...)
			return
		}
	}
}

// Woken is signalled (without blocking) after each execute call is held,
// so the watcher can read that history at once.
func (c *Correlator) Woken() <-chan struct{} { return c.wake }

// heldResource is a task or alert with a held execute event.
type heldResource struct{ filter, id string }

// heldResources lists the tasks and alerts whose execute events wait for
// their record (matched claims not yet sent excluded), once each.
func (c *Correlator) heldResources() []heldResource {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []heldResource
	seen := map[string]bool{}
	for _, cl := range c.st.Claims {
		if !cl.held() || cl.Exec != "" || seen[cl.Res] {
			continue
		}
		seen[cl.Res] = true
		out = append(out, heldResource{cl.Event.Filter, cl.Event.ResourceID})
	}
	return out
}

// overdue returns copies of the held events whose claims are older than
// wait (local clock), for appending as they are: unmatched ones name the
// run's fields in Missing.
func (c *Correlator) overdue(wait time.Duration) []*rswebhooks.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	limit := c.now().Add(-wait)
	var out []*rswebhooks.Event
	for _, cl := range c.st.Claims {
		if !cl.held() || cl.At.After(limit) {
			continue
		}
		ev := *cl.Event
		if cl.Exec == "" {
			ev.Missing = append(append([]string(nil), ev.Missing...), "ExecutionId", "ExecutionDateUtc", "DocumentIds")
			if ev.Filter == rswebhooks.FilterAlerts {
				ev.Missing = append(ev.Missing, "AlertTriggered")
			}
			ev.Note = fmt.Sprintf("no execution record of this run appeared within %s of the call", wait)
		}
		out = append(out, &ev)
	}
	return out
}

// sent marks the claim holding event id as appended and drops its event.
func (c *Correlator) sent(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.st.Claims {
		cl := &c.st.Claims[i]
		if cl.Event != nil && cl.Event.ID == id {
			cl.Sent, cl.Event = true, nil
			return
		}
	}
}

// setOffset records the current estimate of server clock minus local clock.
func (c *Correlator) setOffset(d time.Duration) {
	c.mu.Lock()
	c.st.Offset = d
	c.mu.Unlock()
}

// decide says what to do with execution key (of resource res, dated date
// on the server clock), found new by the watcher. It is atomic with
// AppendEvent, so a call and a record can never both be notified.
//
//   - held non-nil: the record is the run of an execute call whose event
//     was held; enrich has been applied to it, and the caller appends it
//     (its id is the call's, so appending twice is ErrConflict) and then
//     calls sent.
//   - notify true: the watcher notifies the record with an event of its
//     own (record false, for history at first start, never notifies).
//   - neither: the record belongs to a call already notified; mark it seen.
func (c *Correlator) decide(res, key string, date time.Time, record bool, enrich func(*rswebhooks.Event)) (held *rswebhooks.Event, notify bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.st.Claims {
		cl := &c.st.Claims[i]
		if cl.Exec != key {
			continue
		}
		if cl.held() {
			ev := *cl.Event // matched before; the append did not finish
			return &ev, false
		}
		return nil, false // claimed before (a crash came before the seen mark)
	}
	for _, em := range c.st.Emitted {
		if em.Exec == key {
			return nil, record // ours already: notify again (idempotent event id)
		}
	}
	best := -1
	for i, cl := range c.st.Claims {
		if cl.Res != res || cl.Exec != "" {
			continue
		}
		srv := cl.At.Add(c.st.Offset)
		if date.Before(srv.Add(-c.tol)) || date.After(srv.Add(c.window)) {
			continue
		}
		if best < 0 || cl.At.Before(c.st.Claims[best].At) {
			best = i
		}
	}
	if best >= 0 {
		cl := &c.st.Claims[best]
		cl.Exec = key
		if !cl.held() {
			return nil, false // sent without its record (waited too long)
		}
		enrich(cl.Event)
		ev := *cl.Event
		return &ev, false
	}
	if record {
		c.st.Emitted = append(c.st.Emitted, emission{Res: res, Exec: key, Date: date, At: c.now().UTC()})
	}
	return nil, record
}

// persist prunes entries older than the window and writes the state.
func (c *Correlator) persist(ctx context.Context) error {
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	c.mu.Lock()
	limit := c.now().Add(-c.window - c.tol)
	claims := c.st.Claims[:0]
	for _, cl := range c.st.Claims {
		if cl.held() || cl.At.After(limit) { // a held event is never pruned
			claims = append(claims, cl)
		}
	}
	c.st.Claims = claims
	ems := c.st.Emitted[:0]
	for _, em := range c.st.Emitted {
		if em.At.After(limit) {
			ems = append(ems, em)
		}
	}
	c.st.Emitted = ems
	raw, err := json.Marshal(&c.st)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("watch: encode correlator state: %w", err)
	}
	if err := c.store.PutMeta(ctx, metaCorrelator, raw); err != nil {
		return fmt.Errorf("watch: persist correlator state: %w", err)
	}
	return nil
}

// mayTake reports whether a held execute event of resource res could take
// execution key (so the record is worth describing).
func (c *Correlator) mayTake(res, key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.st.Claims {
		cl := &c.st.Claims[i]
		if cl.held() && cl.Res == res && (cl.Exec == "" || cl.Exec == key) {
			return true
		}
	}
	return false
}

// holding reports whether any execute event is still held.
func (c *Correlator) holding() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.st.Claims {
		if c.st.Claims[i].held() {
			return true
		}
	}
	return false
}

// pending returns the number of claims no record consumed (for tests).
func (c *Correlator) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, cl := range c.st.Claims {
		if cl.Exec == "" {
			n++
		}
	}
	return n
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
