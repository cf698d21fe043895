package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rswebhooks/rswebhooks"
)

// Metrics are the store's metrics.
type Metrics struct {
	// UnreadableRecords counts records found undecodable, each once per
	// process (rswebhooks_store_unreadable_records_total{kind}).
	UnreadableRecords *prometheus.CounterVec
}

// NewMetrics creates the store's metrics and registers them with reg (nil:
// not registered). Every kind label starts at 0.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		UnreadableRecords: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rswebhooks_store_unreadable_records_total",
			Help: "Stored records that cannot be decoded, by kind; each is counted and logged once per process, skipped by listings and delivery, and listed at GET /api/webhooks/unreadable.",
		}, []string{"kind"}),
	}
	for _, k := range rswebhooks.RecordKinds() {
		m.UnreadableRecords.WithLabelValues(k)
	}
	return m
}

// maxUnreadableKept bounds the in-memory set of unreadable records (a
// damaged disk could hold many); beyond it they are still skipped, and
// counted and logged each time they are met.
const maxUnreadableKept = 10000

// unreadableSet remembers the unreadable records met, so each is logged and
// counted once, and the due queue can skip them without decoding.
type unreadableSet struct {
	mu sync.Mutex
	m  map[string]rswebhooks.Unreadable // kind + "/" + id
	n  atomic.Int64                     // len(m), so has on the queue's hot path skips the lock while the set is empty
}

func (s *unreadableSet) add(u rswebhooks.Unreadable) (isNew bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := u.Kind + "/" + u.ID
	if _, ok := s.m[k]; ok {
		return false
	}
	if s.m == nil {
		s.m = map[string]rswebhooks.Unreadable{}
	}
	if len(s.m) < maxUnreadableKept {
		s.m[k] = u
		s.n.Store(int64(len(s.m)))
	}
	return true
}

func (s *unreadableSet) has(kind, id string) bool {
	if s.n.Load() == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[kind+"/"+id]
	return ok
}

func (s *unreadableSet) remove(kind, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, kind+"/"+id)
	s.n.Store(int64(len(s.m)))
}

func (s *unreadableSet) list() []rswebhooks.Unreadable {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]rswebhooks.Unreadable, 0, len(s.m))
	for _, u := range s.m {
		out = append(out, u)
	}
	return out
}

// recordOf names the record stored at key: its kind and id.
func recordOf(key []byte) (kind, id string) {
	k := string(key)
	switch {
	case strings.HasPrefix(k, pWebhook):
		return rswebhooks.RecordWebhook, k[len(pWebhook):]
	case strings.HasPrefix(k, pEvent):
		return rswebhooks.RecordEvent, k[len(pEvent):]
	case strings.HasPrefix(k, pDelivery):
		return rswebhooks.RecordDelivery, k[len(pDelivery):]
	case strings.HasPrefix(k, pAttempt):
		rest := key[len(pAttempt):]
		if i := bytes.LastIndexByte(rest, '/'); i >= 0 && len(rest)-i-1 == 4 {
			n := uint32(rest[i+1])<<24 | uint32(rest[i+2])<<16 | uint32(rest[i+3])<<8 | uint32(rest[i+4])
			return rswebhooks.RecordAttempt, string(rest[:i]) + "." + strconv.FormatUint(uint64(n), 10)
		}
		return rswebhooks.RecordAttempt, string(rest)
	}
	return "record", k
}

// unreadableAt is the error for the undecodable value at key.
func unreadableAt(key []byte, err error) *rswebhooks.UnreadableError {
	kind, id := recordOf(key)
	return &rswebhooks.UnreadableError{Kind: kind, ID: id, Err: err}
}

// noteUnreadable logs and counts an unreadable record the first time this
// process meets it. It returns err unchanged.
func (db *DB) noteUnreadable(err error) error {
	var ue *rswebhooks.UnreadableError
	if !errors.As(err, &ue) {
		return err
	}
	if db.unreadable.add(rswebhooks.Unreadable{Kind: ue.Kind, ID: ue.ID, Error: ue.Err.Error()}) {
		db.m.UnreadableRecords.WithLabelValues(ue.Kind).Inc()
		db.log.Error().Str("kind", ue.Kind).Str("id", ue.ID).AnErr("decode_error", ue.Err).
			Msg("stored record cannot be decoded; it is skipped (administrators: GET /api/webhooks/unreadable, then delete it by id)")
	}
	return err
}

// skipUnreadable notes err and returns nil if it is an UnreadableError, so
// a listing goes on without the record; other errors are returned.
func (db *DB) skipUnreadable(err error) error {
	if errors.Is(err, rswebhooks.ErrUnreadable) {
		db.noteUnreadable(err)
		return nil
	}
	return err
}

// UnreadableRecords lists the unreadable records: every webhook (all are
// checked now) and the events, deliveries and attempts met since the
// process started (listings, fan-out and delivery meet them within a poll).
func (db *DB) UnreadableRecords(ctx context.Context) ([]rswebhooks.Unreadable, error) {
	err := db.view(ctx, "check webhooks", func(txn *badger.Txn) error {
		return eachValue(txn, []byte(pWebhook), func(k, v []byte) error {
			var w rswebhooks.Webhook
			return db.skipUnreadable(jsonUnmarshal(k, v, &w))
		})
	})
	if err != nil {
		return nil, err
	}
	out := db.unreadable.list()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// DeleteUnreadable removes a record by kind and id without decoding it,
// with its index keys. ErrNotFound if there is none. It deletes readable
// records too: callers decide which ones may be removed this way.
func (db *DB) DeleteUnreadable(ctx context.Context, kind, id string) error {
	if err := rswebhooks.CheckStoreID(kind+" id", id); err != nil {
		return fmt.Errorf("store: delete %s: %w", kind, err)
	}
	var err error
	switch kind {
	case rswebhooks.RecordWebhook:
		err = db.DeleteWebhook(ctx, id)
	case rswebhooks.RecordEvent:
		err = db.update(ctx, "delete event "+id, func(txn *badger.Txn) error {
			if ok, err := exists(txn, eventKey(id)); err != nil || !ok {
				if err == nil {
					err = fmt.Errorf("event %s: %w", id, rswebhooks.ErrNotFound)
				}
				return err
			}
			if err := txn.Delete(unfannedKey(id)); err != nil {
				return err
			}
			return txn.Delete(eventKey(id))
		})
	case rswebhooks.RecordDelivery:
		err = db.update(ctx, "delete delivery "+id, func(txn *badger.Txn) error {
			return db.deleteDeliveryRaw(txn, id)
		})
	case rswebhooks.RecordAttempt:
		d, n, ok := strings.Cut(id, ".")
		num, perr := strconv.ParseUint(n, 10, 32)
		if !ok || perr != nil {
			return fmt.Errorf("store: delete attempt: id must be <deliveryId>.<n>, got %q", id)
		}
		err = db.update(ctx, "delete attempt "+id, func(txn *badger.Txn) error {
			k := attemptKey(d, int(num))
			if ok, err := exists(txn, k); err != nil || !ok {
				if err == nil {
					err = fmt.Errorf("attempt %s: %w", id, rswebhooks.ErrNotFound)
				}
				return err
			}
			return txn.Delete(k)
		})
	default:
		return fmt.Errorf("store: delete record: kind must be one of %s, got %q", strings.Join(rswebhooks.RecordKinds(), ", "), kind)
	}
	if err == nil {
		db.unreadable.remove(kind, id)
	}
	return err
}

// deleteDeliveryRaw removes d/<id> with its dw/, de/, q/, dp/ and a/ keys, finding the
// index keys by scanning when the record cannot say where they are.
func (db *DB) deleteDeliveryRaw(txn *badger.Txn, id string) error {
	if ok, err := exists(txn, deliveryKey(id)); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("delivery %s: %w", id, rswebhooks.ErrNotFound)
		}
		return err
	}
	var del [][]byte
	suffix := []byte("/" + id)
	for _, prefix := range []string{pByWebhook, pByEvent, pQueue, pOrder} {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
		for it.Rewind(); it.Valid(); it.Next() {
			if k := it.Item().Key(); bytes.HasSuffix(k, suffix) {
				del = append(del, it.Item().KeyCopy(nil))
			}
		}
		it.Close()
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: attemptPrefix(id)})
	for it.Rewind(); it.Valid(); it.Next() {
		del = append(del, it.Item().KeyCopy(nil))
	}
	it.Close()
	for _, k := range del {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return txn.Delete(deliveryKey(id))
}
