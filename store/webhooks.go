package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rswebhooks/rswebhooks"
)

// WebhooksVersion changes after every committed write to a webhook
// (create, update, delete, pause). A cache that reads it before reading
// webhooks, and re-reads them when it has changed, never serves a webhook
// older than the last write that returned in this process.
func (db *DB) WebhooksVersion() uint64 { return db.webhooksVersion.Load() }

// webhookUpdate is update for webhook writes: it bumps WebhooksVersion
// after the transaction (also after a failed one; a spurious bump only
// costs a re-read).
func (db *DB) webhookUpdate(ctx context.Context, op string, fn func(txn *badger.Txn) error) error {
	defer db.webhooksVersion.Add(1)
	return db.update(ctx, op, fn)
}

// CreateWebhook stores a new webhook and its owner index entry. It returns
// ErrConflict if the id exists. Webhooks never expire.
func (db *DB) CreateWebhook(ctx context.Context, w *rswebhooks.Webhook) error {
	if err := rswebhooks.CheckStoredWebhook(w); err != nil {
		return fmt.Errorf("store: create webhook: %w", err)
	}
	return db.webhookUpdate(ctx, "create webhook "+w.ID, func(txn *badger.Txn) error {
		ok, err := exists(txn, webhookKey(w.ID))
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("webhook %s: %w", w.ID, rswebhooks.ErrConflict)
		}
		if err := putWebhook(txn, w); err != nil {
			return err
		}
		if w.Ordered { // deliveries left by a deleted webhook of the same id
			if _, err := backfillOrderTxn(txn, w.ID, 0); err != nil {
				return err
			}
		}
		return txn.Set(ownerKey(w.User.ID, w.ID), nil)
	})
}

// UpdateWebhook replaces a stored webhook (ErrNotFound if absent), moving the
// owner index entry if the owner changed. A zero CreatedUTC keeps the stored
// one. w.Rotation is ignored: a rotation in progress is kept while the
// secret stays the same and ends when it changes.
func (db *DB) UpdateWebhook(ctx context.Context, w *rswebhooks.Webhook) error {
	if err := rswebhooks.CheckStoredWebhook(w); err != nil {
		return fmt.Errorf("store: update webhook: %w", err)
	}
	if w.Ordered {
		// Becoming Ordered: order keys for the pending deliveries queued
		// before, in steps; the update adds those queued since.
		was := false
		if err := db.view(ctx, "update webhook "+w.ID, func(txn *badger.Txn) (err error) {
			was, err = webhookOrdered(txn, w.ID)
			return err
		}); err != nil {
			return err
		}
		if !was {
			if err := db.backfillOrder(ctx, w.ID); err != nil {
				return err
			}
		}
	}
	return db.webhookUpdate(ctx, "update webhook "+w.ID, func(txn *badger.Txn) error {
		var old rswebhooks.Webhook
		if err := getJSON(txn, webhookKey(w.ID), &old); err != nil {
			return err
		}
		if w.Ordered && !old.Ordered {
			if _, err := backfillOrderTxn(txn, w.ID, 0); err != nil {
				return err
			}
		}
		w.KeepStored(&old)
		if old.User.ID != w.User.ID {
			if err := txn.Delete(ownerKey(old.User.ID, w.ID)); err != nil {
				return err
			}
			if err := txn.Set(ownerKey(w.User.ID, w.ID), nil); err != nil {
				return err
			}
		}
		return putWebhook(txn, w)
	})
}

// GetWebhook returns the webhook, ErrNotFound, or an *UnreadableError
// (with Owner from the owner index) if the record cannot be decoded.
func (db *DB) GetWebhook(ctx context.Context, id string) (*rswebhooks.Webhook, error) {
	var w rswebhooks.Webhook
	err := db.view(ctx, "get webhook "+id, func(txn *badger.Txn) error {
		err := getJSON(txn, webhookKey(id), &w)
		var ue *rswebhooks.UnreadableError
		if errors.As(err, &ue) {
			ue.Owner, _ = ownerOf(txn, id)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &w, nil
}

// ListWebhooks returns the webhooks of ownerID ("" = everyone's), oldest
// first (by CreatedUTC, then id). Unreadable webhooks are skipped (see
// UnreadableError), so one damaged record cannot hide the others.
func (db *DB) ListWebhooks(ctx context.Context, ownerID string) ([]*rswebhooks.Webhook, error) {
	var out []*rswebhooks.Webhook
	err := db.view(ctx, "list webhooks", func(txn *badger.Txn) error {
		if ownerID == "" {
			return eachValue(txn, []byte(pWebhook), func(k, v []byte) error {
				w := new(rswebhooks.Webhook)
				if err := jsonUnmarshal(k, v, w); err != nil {
					return db.skipUnreadable(err)
				}
				out = append(out, w)
				return nil
			})
		}
		prefix := ownerPrefix(ownerID)
		ids, err := keySuffixes(txn, prefix, 0)
		if err != nil {
			return err
		}
		for _, id := range ids {
			var w rswebhooks.Webhook
			if err := getJSON(txn, webhookKey(id), &w); err != nil {
				if err = db.skipUnreadable(err); err == nil {
					continue
				}
				return fmt.Errorf("owner index %s%s: %w", prefix, id, err)
			}
			out = append(out, &w)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreatedUTC.Equal(out[j].CreatedUTC) {
			return out[i].CreatedUTC.Before(out[j].CreatedUTC)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// DeleteWebhook removes a webhook and its owner index entry, or returns
// ErrNotFound. It does not decode the record, so an unreadable one can be
// deleted too. Its deliveries stay until they finish and expire.
func (db *DB) DeleteWebhook(ctx context.Context, id string) error {
	err := db.webhookUpdate(ctx, "delete webhook "+id, func(txn *badger.Txn) error {
		if ok, err := exists(txn, webhookKey(id)); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("%s: %w", webhookKey(id), rswebhooks.ErrNotFound)
			}
			return err
		}
		if owner, ok := ownerOf(txn, id); ok {
			if err := txn.Delete(ownerKey(owner, id)); err != nil {
				return err
			}
		}
		return txn.Delete(webhookKey(id))
	})
	if err == nil {
		db.unreadable.remove(rswebhooks.RecordWebhook, id)
	}
	return err
}

// ownerOf finds a webhook's owner: from the record's User.Id when that much
// decodes, else by scanning the owner index keys.
func ownerOf(txn *badger.Txn, id string) (string, bool) {
	var w struct {
		User struct {
			ID string `json:"Id"`
		} `json:"User"`
	}
	if err := getJSON(txn, webhookKey(id), &w); err == nil && w.User.ID != "" {
		if ok, _ := exists(txn, ownerKey(w.User.ID, id)); ok {
			return w.User.ID, true
		}
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pOwner)})
	defer it.Close()
	suffix := "/" + id
	for it.Rewind(); it.Valid(); it.Next() {
		k := string(it.Item().Key())
		if strings.HasSuffix(k, suffix) {
			return k[len(pOwner) : len(k)-len(suffix)], true
		}
	}
	return "", false
}

// deleteChunk bounds the keys deleted per transaction (Badger limits a
// transaction to 15% of the memtable).
const deleteChunk = 1000

// DeleteWebhooksOf removes every webhook of ownerID and returns how many.
// Large sets are deleted in several transactions.
func (db *DB) DeleteWebhooksOf(ctx context.Context, ownerID string) (int, error) {
	if err := rswebhooks.CheckStoreID("ownerID", ownerID); err != nil {
		return 0, fmt.Errorf("store: delete webhooks of owner: %w", err)
	}
	total := 0
	for {
		n := 0
		err := db.webhookUpdate(ctx, "delete webhooks of "+ownerID, func(txn *badger.Txn) error {
			n = 0
			prefix := ownerPrefix(ownerID)
			ids, err := keySuffixes(txn, prefix, deleteChunk)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if err := txn.Delete(ownerKey(ownerID, id)); err != nil {
					return err
				}
				if err := txn.Delete(webhookKey(id)); err != nil {
					return err
				}
			}
			n = len(ids)
			return nil
		})
		total += n
		if err != nil || n < deleteChunk {
			return total, err
		}
	}
}

// SetPaused sets IsPaused (and UpdatedUTC to now) or returns ErrNotFound.
func (db *DB) SetPaused(ctx context.Context, id string, paused bool) error {
	return db.webhookUpdate(ctx, "set paused "+id, func(txn *badger.Txn) error {
		var w rswebhooks.Webhook
		if err := getJSON(txn, webhookKey(id), &w); err != nil {
			return err
		}
		if w.IsPaused == paused {
			return nil
		}
		w.IsPaused = paused
		w.UpdatedUTC = db.now().UTC()
		return putWebhook(txn, &w)
	})
}

// SetOwnerMissing sets OwnerMissing on every webhook of ownerID and returns
// the ids of the webhooks it changed. Large sets are written in several
// transactions.
func (db *DB) SetOwnerMissing(ctx context.Context, ownerID string, missing bool) ([]string, error) {
	const chunk = 200
	var changed []string
	for {
		var batch []string
		err := db.webhookUpdate(ctx, "set owner missing of "+ownerID, func(txn *badger.Txn) error {
			batch = batch[:0]
			ids, err := keySuffixes(txn, ownerPrefix(ownerID), 0)
			if err != nil {
				return err
			}
			for _, id := range ids {
				var w rswebhooks.Webhook
				if err := getJSON(txn, webhookKey(id), &w); err != nil {
					if err = db.skipUnreadable(err); err == nil {
						continue
					}
					return err
				}
				if w.OwnerMissing == missing {
					continue
				}
				w.OwnerMissing = missing
				if err := putWebhook(txn, &w); err != nil {
					return err
				}
				if batch = append(batch, id); len(batch) == chunk {
					return nil
				}
			}
			return nil
		})
		if err != nil {
			return changed, err
		}
		changed = append(changed, batch...)
		if len(batch) < chunk {
			return changed, nil
		}
	}
}

// CountWebhooks counts webhooks by state (for the webhooks gauge).
func (db *DB) CountWebhooks(ctx context.Context) (rswebhooks.WebhookCounts, error) {
	var c rswebhooks.WebhookCounts
	err := db.view(ctx, "count webhooks", func(txn *badger.Txn) error {
		return eachValue(txn, []byte(pWebhook), func(k, v []byte) error {
			var w rswebhooks.Webhook
			if err := jsonUnmarshal(k, v, &w); err != nil {
				return db.skipUnreadable(err)
			}
			switch {
			case w.IsPaused:
				c.Paused++
			case w.OwnerMissing:
				c.OwnerMissing++
			default:
				c.Active++
			}
			return nil
		})
	})
	return c, err
}

// eachValue calls fn with every key and value under prefix, in order.
func eachValue(txn *badger.Txn, prefix []byte, fn func(k, v []byte) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if err := item.Value(func(v []byte) error { return fn(item.Key(), v) }); err != nil {
			return err
		}
	}
	return nil
}

// keySuffixes returns the key remainders after prefix, in order, at most
// limit of them (0 = all), without reading values.
func keySuffixes(txn *badger.Txn, prefix []byte, limit int) ([]string, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	var out []string
	for it.Rewind(); it.Valid(); it.Next() {
		out = append(out, string(it.Item().Key()[len(prefix):]))
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}
