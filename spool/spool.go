// Package spool keeps the events the proxy acknowledged while the shared
// database is unreachable. Each event goes to the database directly while
// it answers; when it does not (within DirectTimeout), the event is written
// to a small local Badger (in --data-dir) instead, and so is every event
// after it until the spool is empty again, so nothing overtakes what waits.
// A forwarder sends the spooled events to the database in the order they
// were acknowledged, removing each once the database has it. Event ids are
// fixed before the first try, so an event the database took just before an
// answer was lost comes back as ErrConflict on forwarding and is counted a
// duplicate, not stored twice: exactly once.
package spool

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// Appender is where events go: the database path (the detector's chain in
// front of the shared store).
type Appender interface {
	AppendEvent(ctx context.Context, e *rswebhooks.Event) error
}

// Defaults for Options.
const (
	DefaultDirectTimeout = 2 * time.Second
	DefaultRetryInterval = time.Second
	DefaultMaxRetry      = 10 * time.Second
)

// Options configure Open. Dir and Next are required.
type Options struct {
	// Dir is the spool's Badger directory (created if missing).
	Dir string
	// Next receives every event, directly or when forwarded.
	Next Appender
	// DirectTimeout bounds a direct append; past it the event is spooled.
	// Default DefaultDirectTimeout.
	DirectTimeout time.Duration
	// RetryInterval is the first pause between forwarding attempts while
	// the database is down, doubled up to MaxRetry. Defaults
	// DefaultRetryInterval and DefaultMaxRetry.
	RetryInterval, MaxRetry time.Duration
	// Refused reports errors retrying cannot fix (the database refused the
	// event itself, not the connection). Such an event is not spooled (the
	// caller gets the error) and, when forwarding meets one, is dropped
	// with an error log and counted. Nil: every error is an outage.
	Refused func(error) bool
	// SyncWrites fsyncs each spool write (power-loss durability); process
	// crashes are survived either way.
	SyncWrites bool
	// OnForward is called after a forwarding pass stored events (to wake
	// the delivery side). It must not block.
	OnForward func()
	Logger    zerolog.Logger
	// Metrics, when set, is updated; nil: NewMetrics(nil).
	Metrics *Metrics
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Spool is an Appender that never loses an event it accepted. It is safe
// for concurrent use.
type Spool struct {
	o    Options
	db   *badger.DB
	log  zerolog.Logger
	m    *Metrics
	wake chan struct{}

	mu       sync.Mutex // guards everything below; held across spool writes
	spooling bool       // events go to the spool (outage, or it is not empty)
	since    time.Time  // start of the outage
	lastErr  error      // the database's last error
	next     uint64     // sequence of the next spooled event
	depth    int        // events in the spool
	oldest   time.Time  // when the oldest spooled event was acknowledged
	low      uint64     // no event is spooled below this sequence (seek start)
}

// record is a spooled event.
type record struct {
	SpooledAt time.Time         `json:"SpooledAt"`
	Event     *rswebhooks.Event `json:"Event"`
}

// Open opens (or creates) the spool. Events left by a previous run are
// forwarded first, before any new one.
func Open(o Options) (*Spool, error) {
	if o.Dir == "" {
		return nil, errors.New("spool: Options.Dir is required")
	}
	if o.Next == nil {
		return nil, errors.New("spool: Options.Next is required")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"DirectTimeout", o.DirectTimeout}, {"RetryInterval", o.RetryInterval}, {"MaxRetry", o.MaxRetry}} {
		if d.v < 0 {
			return nil, fmt.Errorf("spool: Options.%s must not be negative, got %s", d.name, d.v)
		}
	}
	if o.DirectTimeout == 0 {
		o.DirectTimeout = DefaultDirectTimeout
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.MaxRetry == 0 {
		o.MaxRetry = DefaultMaxRetry
	}
	o.MaxRetry = max(o.MaxRetry, o.RetryInterval)
	if o.Refused == nil {
		o.Refused = func(error) bool { return false }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", o.Dir, err)
	}
	log := o.Logger.With().Str("component", "spool").Logger()
	// A small Badger: the spool holds minutes of events at most.
	bo := badger.DefaultOptions(o.Dir).
		WithLogger(badgerLogger{log}).
		WithSyncWrites(o.SyncWrites).
		WithMemTableSize(4 << 20).
		WithValueLogFileSize(16 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithNumCompactors(2).
		WithValueThreshold(1 << 10)
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", o.Dir, err)
	}
	s := &Spool{o: o, db: db, log: log, m: o.Metrics, wake: make(chan struct{}, 1)}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	s.m.attach(s)
	if s.depth > 0 {
		s.spooling, s.since = true, o.Now()
		s.m.Outage.Set(1)
		s.log.Warn().Int("events", s.depth).Str("dir", o.Dir).
			Msg("events spooled during a database outage are still waiting; forwarding them before any new one")
		s.signal()
	}
	return s, nil
}

// load counts the spooled events and finds the next sequence number.
func (s *Spool) load() error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		first := true
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 8 {
				continue
			}
			if first {
				s.low = binary.BigEndian.Uint64(k)
				var r record
				if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err == nil {
					s.oldest = r.SpooledAt
				}
				first = false
			}
			s.depth++
			s.next = binary.BigEndian.Uint64(k) + 1
		}
		return nil
	})
}

// AppendEvent implements Appender. It returns nil once the event is in
// the database or in the spool; ErrConflict (from Next) when the database
// already has the id; and an error when the database refused the event or
// neither could take it.
func (s *Spool) AppendEvent(ctx context.Context, e *rswebhooks.Event) error {
	if e == nil || e.ID == "" {
		return errors.New("spool: event without an id")
	}
	s.mu.Lock()
	if s.spooling {
		defer s.mu.Unlock()
		return s.put(e)
	}
	s.mu.Unlock()

	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.DirectTimeout)
	err := s.o.Next.AppendEvent(dctx, e)
	cancel()
	if err == nil || errors.Is(err, rswebhooks.ErrConflict) || s.o.Refused(err) {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	if !s.spooling {
		s.spooling, s.since = true, s.o.Now()
		s.m.Outage.Set(1)
		s.log.Error().Err(err).Str("dir", s.o.Dir).
			Msg("THE DATABASE DOES NOT ANSWER: acknowledged events go to the local spool and are forwarded when it is back")
	}
	if perr := s.put(e); perr != nil {
		return errors.Join(fmt.Errorf("database: %w", err), perr)
	}
	return nil
}

// put writes e at the spool's tail; s.mu is held.
func (s *Spool) put(e *rswebhooks.Event) error {
	now := s.o.Now()
	raw, err := json.Marshal(record{SpooledAt: now, Event: e})
	if err != nil {
		return fmt.Errorf("spool: encode event %s: %w", e.ID, err)
	}
	key := binary.BigEndian.AppendUint64(nil, s.next)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key, raw) }); err != nil {
		return fmt.Errorf("spool: write event %s: %w", e.ID, err)
	}
	s.next++
	if s.depth == 0 {
		s.oldest = now
	}
	s.depth++
	s.signal()
	return nil
}

func (s *Spool) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run forwards spooled events until ctx is done (then it returns nil).
func (s *Spool) Run(ctx context.Context) error {
	delay := s.o.RetryInterval
	var retry <-chan time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-retry:
		}
		retry = nil
		if timer != nil {
			timer.Stop()
		}
		n, err := s.forward(ctx)
		if n > 0 && s.o.OnForward != nil {
			s.o.OnForward()
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			delay = s.o.RetryInterval
			continue
		}
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		s.log.Debug().Err(err).Dur("retry_in", delay).Msg("forwarding spooled events failed; the database is still down")
		timer = time.NewTimer(delay)
		retry = timer.C
		delay = min(2*delay, s.o.MaxRetry)
	}
}

// forward sends spooled events in order until the spool is empty (then
// events go to the database directly again) or the database fails.
func (s *Spool) forward(ctx context.Context) (stored int, err error) {
	for {
		batch, err := s.head(100)
		if err != nil {
			return stored, err
		}
		if len(batch) == 0 {
			s.mu.Lock()
			if s.depth == 0 && s.spooling {
				s.spooling = false
				s.m.Outage.Set(0)
				s.log.Info().Dur("outage", s.o.Now().Sub(s.since).Round(time.Millisecond)).
					Msg("the database is back and the spool is empty: events go to it directly again")
			}
			more := s.depth > 0
			s.mu.Unlock()
			if !more {
				return stored, nil
			}
			continue
		}
		for i, it := range batch {
			actx, cancel := context.WithTimeout(ctx, max(s.o.DirectTimeout, 5*time.Second))
			err := s.o.Next.AppendEvent(actx, it.rec.Event)
			cancel()
			result := ResultOK
			switch {
			case err == nil:
				stored++
			case errors.Is(err, rswebhooks.ErrConflict):
				result = ResultDuplicate
			case s.o.Refused(err):
				result = ResultRefused
				s.log.Error().Err(err).Str("event_id", it.rec.Event.ID).Str("filter", it.rec.Event.Filter).
					Str("event", it.rec.Event.Type).Msg("event lost: the database refused a spooled event")
			default:
				return stored, err
			}
			var next *record
			if i+1 < len(batch) {
				next = &batch[i+1].rec
			}
			if err := s.remove(it.key, next); err != nil {
				return stored, err
			}
			s.m.Forwarded.WithLabelValues(result).Inc()
		}
	}
}

type spooled struct {
	key []byte
	rec record
}

// head reads up to n events from the front of the spool. A record that
// cannot be decoded (a torn write) is removed with an error log.
func (s *Spool) head(n int) ([]spooled, error) {
	var out []spooled
	var bad [][]byte
	s.mu.Lock()
	low := binary.BigEndian.AppendUint64(nil, s.low)
	s.mu.Unlock()
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: n})
		defer it.Close()
		// Seek past the forwarded events' tombstones.
		for it.Seek(low); it.Valid() && len(out) < n; it.Next() {
			k := it.Item().KeyCopy(nil)
			var r record
			err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) })
			if err != nil || r.Event == nil || len(k) != 8 {
				s.log.Error().Err(err).Hex("key", k).Msg("event lost: a spooled record cannot be read")
				bad = append(bad, k)
				continue
			}
			out = append(out, spooled{k, r})
		}
		return nil
	})
	for _, k := range bad {
		if err := s.remove(k, nil); err != nil {
			return nil, err
		}
		s.m.Forwarded.WithLabelValues(ResultRefused).Inc()
	}
	if len(out) > 0 {
		s.mu.Lock()
		s.oldest = out[0].rec.SpooledAt
		s.mu.Unlock()
	}
	return out, err
}

// remove deletes a forwarded event; the next one (nil: none known) becomes
// the oldest.
func (s *Spool) remove(key []byte, next *record) error {
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(key) }); err != nil {
		return fmt.Errorf("spool: remove a forwarded event: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.depth--
	s.low = binary.BigEndian.Uint64(key) + 1
	switch {
	case s.depth == 0:
		s.oldest = time.Time{}
	case next != nil:
		s.oldest = next.SpooledAt
	}
	return nil
}

// Stats returns the spooled events and when the oldest was acknowledged
// (zero when none).
func (s *Spool) Stats() (n int, oldest time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.depth, s.oldest
}

// Check reports an outage for /readyz: nil while events go to the database
// directly, else what is waiting and since when.
func (s *Spool) Check(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.spooling {
		return nil
	}
	age := time.Duration(0)
	if !s.oldest.IsZero() {
		age = s.o.Now().Sub(s.oldest).Round(time.Second)
	}
	msg := fmt.Sprintf("database outage since %s: %d acknowledged events spooled locally (oldest %s), forwarded when it is back",
		s.since.UTC().Format(time.RFC3339), s.depth, age)
	if s.lastErr != nil {
		msg += "; last error: " + s.lastErr.Error()
	}
	return errors.New(msg)
}

// Close closes the spool's Badger (call it after Run returned). Spooled
// events stay for the next start.
func (s *Spool) Close() error {
	if n, oldest := s.Stats(); n > 0 {
		s.log.Warn().Int("events", n).Time("oldest", oldest).Str("dir", s.o.Dir).
			Msg("stopping with events in the spool: they are forwarded at the next start with this --data-dir; do not delete it")
	}
	s.m.attach(nil)
	return s.db.Close()
}

// badgerLogger sends Badger's messages to zerolog (errors and warnings
// only; the rest is debug).
type badgerLogger struct{ l zerolog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error().Msgf(f, a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn().Msgf(f, a...) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug().Msgf(f, a...) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.l.Debug().Msgf(f, a...) }
