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
//     call) is remembered as a claim; the watcher later marks the matching
//     execution record seen without a second event;
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

// claim is an execute call seen by the proxy.
type claim struct {
	Res  string    `json:"R"`           // resource key
	At   time.Time `json:"T"`           // local time of the call (event time)
	Exec string    `json:"X,omitempty"` // execution key that consumed it
}

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
	c.mu.Unlock()
	// Append first, claim second: a crash in between gives a duplicate
	// (at least once), never a lost execution.
	if err := c.store.AppendEvent(ctx, e); err != nil {
		return err
	}
	c.mu.Lock()
	c.st.Claims = append(c.st.Claims, claim{Res: res, At: at.UTC()})
	c.mu.Unlock()
	if err := c.persist(ctx); err != nil {
		// The event is stored; only the claim may not survive a restart.
		c.log.Warn().Err(err).Str("event_id", e.ID).Msg("execute claim not persisted")
	}
	return nil
}

// setOffset records the current estimate of server clock minus local clock.
func (c *Correlator) setOffset(d time.Duration) {
	c.mu.Lock()
	c.st.Offset = d
	c.mu.Unlock()
}

// decide says whether the watcher should notify execution key (of resource
// res, dated date on the server clock). It is atomic with AppendEvent, so a
// proxy event and a watcher event can never both win for one execution.
// record false (first start, history) only consumes a matching claim.
func (c *Correlator) decide(res, key string, date time.Time, record bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.st.Claims {
		if cl.Exec == key {
			return false // claimed before (a crash came before the seen mark)
		}
	}
	for _, em := range c.st.Emitted {
		if em.Exec == key {
			return record // ours already: notify again (idempotent event id)
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
		c.st.Claims[best].Exec = key
		return false
	}
	if record {
		c.st.Emitted = append(c.st.Emitted, emission{Res: res, Exec: key, Date: date, At: c.now().UTC()})
	}
	return record
}

// persist prunes entries older than the window and writes the state.
func (c *Correlator) persist(ctx context.Context) error {
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	c.mu.Lock()
	limit := c.now().Add(-c.window - c.tol)
	claims := c.st.Claims[:0]
	for _, cl := range c.st.Claims {
		if cl.At.After(limit) {
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

// pending returns the number of unconsumed claims (for tests and logs).
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
