package deliver

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/rswebhooks/rswebhooks"
)

// Store is what the engine needs from the durable store (package store's
// *DB implements it). GetWebhook and GetDelivery must return an error
// wrapping rswebhooks.ErrNotFound for an unknown id. WebhooksVersion must change
// after every webhook write that has returned (the engine caches webhooks
// until it does).
type Store interface {
	UnfannedEvents(ctx context.Context, limit int) ([]*rswebhooks.Event, error)
	FanOut(ctx context.Context, eventID string, ds []*rswebhooks.Delivery) error
	ListWebhooks(ctx context.Context, ownerID string) ([]*rswebhooks.Webhook, error)
	GetWebhook(ctx context.Context, id string) (*rswebhooks.Webhook, error)
	WebhooksVersion() uint64
	SetPaused(ctx context.Context, id string, paused bool) error
	CountWebhooks(ctx context.Context) (rswebhooks.WebhookCounts, error)
	SetOwnerMissing(ctx context.Context, ownerID string, missing bool) ([]string, error)
	DiscardDelivery(ctx context.Context, id string) error
	UnfannedStats(ctx context.Context) (n int, oldest time.Time, err error)
	ScanDue(ctx context.Context, now time.Time, max int, fn func(rswebhooks.DueRef) bool) error
	ScanDueAfter(ctx context.Context, now time.Time, after rswebhooks.DueRef, max int, fn func(rswebhooks.DueRef) bool) error
	GetDelivery(ctx context.Context, id string) (*rswebhooks.Delivery, error)
	NextDue(ctx context.Context) (time.Time, bool, error)
	Complete(ctx context.Context, d *rswebhooks.Delivery, a *rswebhooks.Attempt) error
	PutDelivery(ctx context.Context, d *rswebhooks.Delivery) error
	Redeliver(ctx context.Context, id string, now time.Time) (*rswebhooks.Delivery, error)
	QueueStats(ctx context.Context) (depth int, oldestDue time.Time, err error)
	OrderHead(ctx context.Context, webhookID string) (rswebhooks.DueRef, bool, error)
	HoldDelivery(ctx context.Context, id string, until time.Time, reason string) (bool, error)
	ReleaseDelivery(ctx context.Context, id string, now time.Time, reason string) (bool, error)
	Lease(ctx context.Context, id string, now time.Time, req rswebhooks.LeaseRequest) (*rswebhooks.Delivery, error)
	Release(ctx context.Context, id, holder string) error
	DueSignal() <-chan struct{}
}

// Reasons recorded on finished deliveries.
const (
	ReasonAccessUnknown  = "access_unknown"
	ReasonOwnerMissing   = "owner_missing"
	ReasonAccessError    = "access_error"
	ReasonWebhookDeleted = "webhook deleted"
	// ReasonWebhookUnreadable: the stored webhook cannot be decoded (see
	// rswebhooks.UnreadableError); an administrator can delete it by id.
	ReasonWebhookUnreadable = "webhook record unreadable"
	ReasonWebhookPaused     = "webhook paused"
	ReasonGone              = "receiver answered 410 Gone; webhook paused"
)

// Options configures New. Store and Access are required; every other field
// has a default.
type Options struct {
	// Store is the durable queue. Required.
	Store Store
	// Links, when set, gives each document of a run a download link per
	// webhook (package doclink). Nil: documents are listed without Url and
	// Note says why (LinksOffNote).
	Links Links
	// LinksOffNote is the Note of a notification that lists documents
	// while Links is nil. Default: "document links are off".
	LinksOffNote string
	// Access decides whether a webhook's owner may see an event. Required:
	// pass AllowAll{} only where every owner may see everything.
	Access Access
	// Client sends notifications. Nil means NewHTTPClient with the default
	// address policy (loopback refused) and AttemptTimeout.
	Client *http.Client
	// Policy is the retry schedule. The zero Policy means DefaultPolicy();
	// a zero MaxRetryAfter means 1 hour.
	Policy Policy
	// MaxConcurrency bounds attempts in flight (default DefaultMaxConcurrency, 16).
	MaxConcurrency int
	// PerWebhookConcurrency bounds attempts in flight to one webhook
	// (default DefaultPerWebhookConcurrency), so one slow receiver cannot
	// take every worker. A webhook with Ordered gets one at a time.
	PerWebhookConcurrency int
	// PerOwnerConcurrency bounds attempts in flight to the webhooks of one
	// owner (default three quarters of MaxConcurrency, at least 1), so one
	// owner with many slow receivers cannot take every worker. Webhooks
	// whose attempts take a second or more (slow) hold at most half of
	// MaxConcurrency together, whoever owns them.
	PerOwnerConcurrency int
	// AttemptTimeout bounds one attempt, body read included (default
	// DefaultAttemptTimeout, 15 s).
	AttemptTimeout time.Duration
	// BatchSize is how many due deliveries are listed beyond those in flight
	// (default 64). Memory holds at most MaxConcurrency deliveries and
	// MaxConcurrency+BatchSize queue references.
	BatchSize int
	// PollInterval is the longest the engine sleeps without a Wake or a due
	// delivery (default 2 s).
	PollInterval time.Duration
	// StatsInterval is how often the queue and webhook gauges are refreshed
	// (default 10 s).
	StatsInterval time.Duration
	// Logger receives the engine's logs; never secrets, URLs redacted.
	Logger zerolog.Logger
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Rand returns uniform numbers in [0, 1) for jitter (default math/rand/v2).
	Rand func() float64
	// Version goes into the User-Agent "rswebhooks/<Version>" (default "dev").
	Version string
	// LeaseHolder names this engine in the leases it takes (see
	// rswebhooks.LeaseRequest); it must differ between the nodes sharing a
	// store. Default: the host name, process id and a random suffix.
	LeaseHolder string
	// LeaseFor is how long a delivery stays leased to an attempt: a node
	// that dies mid-attempt leaves it for this long before another node
	// sends it. It must cover an access check and an attempt (default
	// 2 × AttemptTimeout + 10 s).
	LeaseFor time.Duration
	// Tracer, when set, records a span per event fan-out and per attempt
	// (see package tracing). Nil: no spans; attempts still send a
	// traceparent continuing the event's trace.
	Tracer trace.Tracer
}

// defaultLeaseHolder is unique per process: host name, pid and 32 random bits.
func defaultLeaseHolder() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = crand.Read(b[:])
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
}

// Defaults for Options, also the defaults of the daemon's flags.
const (
	// DefaultMaxConcurrency bounds attempts in flight.
	DefaultMaxConcurrency = 16
	// DefaultPerWebhookConcurrency bounds attempts in flight to one webhook.
	DefaultPerWebhookConcurrency = 4
	// DefaultAttemptTimeout bounds one attempt, body read included.
	DefaultAttemptTimeout = 15 * time.Second
)

// DefaultPerOwner is the default PerOwnerConcurrency for a pool of
// maxConcurrency workers: all but a quarter (at least one kept free for
// other owners when there are two workers or more).
func DefaultPerOwner(maxConcurrency int) int {
	if maxConcurrency <= 1 {
		return 1
	}
	return maxConcurrency - max(1, maxConcurrency/4)
}

// Engine fans events out to webhooks and delivers them. Create it with New
// and start it with Run; Wake, Redeliver and Ping may be called from any
// goroutine.
type Engine struct {
	opts        Options
	policy      Policy
	m           *Metrics
	log         zerolog.Logger
	wake        chan struct{}
	fanWake     chan struct{}
	slowAfter   time.Duration
	slowShare   int           // attempts in flight to slow webhooks at most
	scanGap     time.Duration // least time between wake-up reads of the queue (rswebhooks.DueScanPacer)
	hookBuffer  int           // deliveries of one webhook buffered or in flight at most (see bufferable)
	ownerBuffer int           // deliveries of one owner's webhooks buffered or in flight at most
	headScan    int           // queue keys a refill reads from the head (see dispatch.go)
	sweepScan   int           // queue keys a refill reads past the head, resuming its sweep
	userAgent   string
	links       Links
	linksOff    string
	notes       notificationCache // the event's part of notification bodies (body.go)

	// chainer, when the store has it, lets a slot that delivered go on
	// with its webhook's next due delivery (see work); contended
	// says whether deliveries the limits would let start wait for a worker
	// (then slots go back to the dispatcher).
	chainer rswebhooks.LeaseChainer
	// byWebhook, when the store has it, reads the head of the due queue
	// bounded per webhook (see refill).
	byWebhook rswebhooks.DueByWebhookScanner
	// nodeUnfanned, when the store has it, gives the fan-out this node's
	// events (and those left by a node that died) rather than every node's.
	nodeUnfanned rswebhooks.NodeUnfanned
	// nodeWaker, when the store has it, fans out without waking the other
	// nodes, which the dispatcher wakes only for work it cannot take
	// (nodes.go).
	nodeWaker rswebhooks.NodeWaker
	// fanned: what woke the dispatcher since its last read (nodes.go).
	fanned    fannedHooks
	chainFor  time.Duration
	contended atomic.Bool

	warned sync.Map // one-time warnings: key → struct{}
	hooks  *webhookCache
	pace   *pacer

	// onComplete, when set (tests), sees a copy of each delivery after its
	// new state was stored.
	onComplete func(rswebhooks.Delivery)
}

// New validates opts, fills defaults and registers the metrics.
func New(opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, errors.New("deliver: Options.Store is required")
	}
	if opts.Access == nil {
		return nil, errors.New("deliver: Options.Access is required (use AllowAll{} to send every event to every owner)")
	}
	if opts.MaxConcurrency < 0 || opts.PerWebhookConcurrency < 0 || opts.PerOwnerConcurrency < 0 || opts.BatchSize < 0 {
		return nil, errors.New("deliver: Options.MaxConcurrency, PerWebhookConcurrency, PerOwnerConcurrency and BatchSize must not be negative")
	}
	if opts.AttemptTimeout < 0 || opts.PollInterval < 0 || opts.StatsInterval < 0 {
		return nil, errors.New("deliver: Options.AttemptTimeout, PollInterval and StatsInterval must not be negative")
	}
	if opts.MaxConcurrency == 0 {
		opts.MaxConcurrency = DefaultMaxConcurrency
	}
	if opts.PerWebhookConcurrency == 0 {
		opts.PerWebhookConcurrency = DefaultPerWebhookConcurrency
	}
	if opts.PerOwnerConcurrency == 0 {
		opts.PerOwnerConcurrency = DefaultPerOwner(opts.MaxConcurrency)
	}
	if opts.AttemptTimeout == 0 {
		opts.AttemptTimeout = DefaultAttemptTimeout
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = 64
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.StatsInterval == 0 {
		opts.StatsInterval = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.LeaseFor < 0 {
		return nil, errors.New("deliver: Options.LeaseFor must not be negative")
	}
	if opts.LeaseFor == 0 {
		opts.LeaseFor = 2*opts.AttemptTimeout + 10*time.Second
	}
	if opts.LeaseHolder == "" {
		opts.LeaseHolder = defaultLeaseHolder()
	}
	if opts.Client == nil {
		opts.Client = NewHTTPClient(ClientOptions{Timeout: opts.AttemptTimeout})
	}
	p := opts.Policy
	if p.Delays == nil && p.Jitter == 0 && p.MaxRetryAfter == 0 {
		p = DefaultPolicy()
	}
	if p.MaxRetryAfter == 0 {
		p.MaxRetryAfter = time.Hour
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("deliver: Options.%w", err)
	}
	e := &Engine{
		opts:        opts,
		policy:      p,
		m:           NewMetrics(opts.Registerer),
		log:         opts.Logger.With().Str("component", "deliver").Logger(),
		wake:        make(chan struct{}, 1),
		fanWake:     make(chan struct{}, 1),
		slowAfter:   min(time.Second, opts.AttemptTimeout/2),
		slowShare:   max(1, opts.MaxConcurrency/2),
		headScan:    defaultHeadScan,
		hookBuffer:  bufferAllowance(opts.PerWebhookConcurrency, (opts.MaxConcurrency+opts.BatchSize)/4),
		ownerBuffer: bufferAllowance(opts.PerOwnerConcurrency, (opts.MaxConcurrency+opts.BatchSize)/2),
		sweepScan:   defaultSweepScan,
		userAgent:   "rswebhooks/" + opts.Version,
		links:       opts.Links,
		linksOff:    opts.LinksOffNote,
		hooks:       newWebhookCache(opts.Store, opts.Now),
		pace:        newPacer(opts.Now),
	}
	if c, ok := opts.Store.(rswebhooks.LeaseChainer); ok {
		e.chainer = c
		e.chainFor = e.slowAfter / 4
	}
	if u, ok := opts.Store.(rswebhooks.NodeUnfanned); ok {
		e.nodeUnfanned = u
	}
	if w, ok := opts.Store.(rswebhooks.NodeWaker); ok {
		e.nodeWaker = w
	}
	if b, ok := opts.Store.(rswebhooks.DueByWebhookScanner); ok {
		e.byWebhook = b
	}
	if p, ok := opts.Store.(rswebhooks.DueScanPacer); ok {
		e.scanGap = max(0, p.DueScanInterval())
	}
	return e, nil
}

// bufferAllowance is how many deliveries of one webhook or owner whose
// concurrency limit is limit a refill buffers, counting those in flight:
// twice the limit, or up to four times while that stays within share.
func bufferAllowance(limit, share int) int {
	return max(2*limit, min(4*limit, share))
}

// Policy returns the retry policy in force (defaults filled in).
func (e *Engine) Policy() Policy { return e.policy }

// Wake tells the engine that new events or deliveries are waiting (call it
// after store.AppendEvent). It never blocks. The fan-out wakes the
// dispatcher once it has written deliveries (or found no event to fan out:
// then the caller may have written deliveries itself), so the dispatcher
// does not read the queue for an event before its deliveries exist.
func (e *Engine) Wake() {
	select {
	case e.fanWake <- struct{}{}:
	default:
	}
}

// wakeDispatcher wakes the dispatcher to read the queue.
func (e *Engine) wakeDispatcher() {
	e.fanned.anything()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Redeliver queues a finished delivery again, due now, keeping its attempt
// history, and wakes the engine. Errors wrap rswebhooks.ErrNotFound for an
// unknown id.
func (e *Engine) Redeliver(ctx context.Context, id string) (*rswebhooks.Delivery, error) {
	d, err := e.opts.Store.Redeliver(ctx, id, e.opts.Now())
	if err != nil {
		return nil, fmt.Errorf("redeliver %s: %w", id, err)
	}
	e.wakeDispatcher()
	return d, nil
}

// Ping queues a test notification (Action "ping", EventType "Ping", made by
// actor) for the webhook and wakes the engine. It is sent even when the
// webhook is paused. Errors wrap rswebhooks.ErrNotFound for an unknown webhook.
func (e *Engine) Ping(ctx context.Context, webhookID string, actor rswebhooks.User) (*rswebhooks.Delivery, error) {
	w, err := e.opts.Store.GetWebhook(ctx, webhookID)
	if err != nil {
		return nil, fmt.Errorf("ping webhook %s: %w", webhookID, err)
	}
	now := e.opts.Now().UTC()
	ev := rswebhooks.Event{
		ID:       rswebhooks.NewID(now),
		Filter:   PingAction,
		Type:     PingEventType,
		UserID:   actor.ID,
		UserName: actor.Name,
		Time:     now,
	}
	d := &rswebhooks.Delivery{
		ID: rswebhooks.NewID(now), WebhookID: w.ID, EventID: ev.ID, Event: ev, Ping: true,
		State: rswebhooks.DeliveryPending, NextUTC: now, CreatedUTC: now, UpdatedUTC: now,
	}
	if err := e.opts.Store.PutDelivery(ctx, d); err != nil {
		return nil, fmt.Errorf("ping webhook %s: %w", webhookID, err)
	}
	e.wakeDispatcher()
	return d, nil
}

// warnOnce logs msg once per key.
func (e *Engine) warnOnce(key string, ev func() *zerolog.Event, msg string) {
	if _, loaded := e.warned.LoadOrStore(key, struct{}{}); !loaded {
		ev().Msg(msg)
	}
}

// Run fans out events and delivers due notifications until ctx is done. On
// shutdown it cancels attempts in flight and waits for their workers; an
// interrupted attempt is not recorded and its delivery stays pending, so it
// is sent again after a restart (at-least-once). It returns nil after ctx
// is done.
func (e *Engine) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.fanOutLoop(ctx)
	}()
	e.dispatchLoop(ctx)
	cancel()
	wg.Wait()
	return nil
}

// updateStats refreshes the queue and webhook gauges.
func (e *Engine) updateStats(ctx context.Context) {
	depth, oldest, err := e.opts.Store.QueueStats(ctx)
	if err != nil {
		e.storeLog(err).Msg("read queue stats")
	} else {
		e.m.QueueDepth.Set(float64(depth))
		age := 0.0
		if depth > 0 {
			age = max(0, e.opts.Now().Sub(oldest).Seconds())
		}
		e.m.OldestPending.Set(age)
	}
	n, oldestEv, err := e.opts.Store.UnfannedStats(ctx)
	if err != nil {
		e.log.Error().Err(err).Msg("read unfanned events")
	} else {
		e.m.Unfanned.Set(float64(n))
		age := 0.0
		if n > 0 && !oldestEv.IsZero() {
			age = max(0, e.opts.Now().Sub(oldestEv).Seconds())
		}
		e.m.UnfannedAge.Set(age)
	}
	c, err := e.opts.Store.CountWebhooks(ctx)
	if err != nil {
		e.storeLog(err).Msg("count webhooks")
		return
	}
	e.m.Throttling.Set(float64(e.pace.slowed(e.opts.Now())))
	e.m.Webhooks.WithLabelValues("active").Set(float64(c.Active))
	e.m.Webhooks.WithLabelValues("paused").Set(float64(c.Paused))
	e.m.Webhooks.WithLabelValues("owner_missing").Set(float64(c.OwnerMissing))
}

// storeLog is the log event for a failed store call: debug while the store
// is in degraded mode (it logs its own transitions and reminders, and the
// engine retries on its next poll), error otherwise.
func (e *Engine) storeLog(err error) *zerolog.Event {
	if errors.Is(err, rswebhooks.ErrStoreUnavailable) {
		return e.log.Debug().Err(err)
	}
	return e.log.Error().Err(err)
}

// unfanned reads up to limit events waiting for fan-out: in a shared store
// that has rswebhooks.NodeUnfanned, those this node is to fan out.
func (e *Engine) unfanned(ctx context.Context, limit int) ([]*rswebhooks.Event, error) {
	if e.nodeUnfanned != nil {
		return e.nodeUnfanned.NodeUnfannedEvents(ctx, limit)
	}
	return e.opts.Store.UnfannedEvents(ctx, limit)
}
