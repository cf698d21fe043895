package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rswebhooks/rswebhooks"
)

// SeenExecutions reports which of the execution ids were marked seen.
func (db *DB) SeenExecutions(ctx context.Context, ids []string) (map[string]bool, error) {
	seen := map[string]bool{}
	if len(ids) == 0 {
		return seen, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT id FROM executions WHERE id = ANY($1) AND expires_at > $2`, ids, db.now())
	if err != nil {
		return nil, fmt.Errorf("pgstore: seen executions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("pgstore: seen executions: %w", err)
		}
		seen[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: seen executions: %w", err)
	}
	return seen, nil
}

// MarkExecutionsSeen records execution ids as seen until the retention ends.
func (db *DB) MarkExecutionsSeen(ctx context.Context, ids []string) error {
	for i, id := range ids {
		if err := rswebhooks.CheckStoreID(fmt.Sprintf("execution id [%d]", i), id); err != nil {
			return fmt.Errorf("pgstore: mark executions seen: %w", err)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO executions (id, expires_at) SELECT DISTINCT unnest($1::text[]), $2::timestamptz
		ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at`, ids, db.expiry())
	if err != nil {
		return fmt.Errorf("pgstore: mark executions seen: %w", err)
	}
	return nil
}

// Reserved meta keys.
const (
	metaSchema = "schema"
	metaPing   = "ping"
)

func checkMetaKey(key string) error {
	if key == "" || key == metaSchema || key == metaPing {
		return fmt.Errorf("pgstore: put meta: key must be non-empty and not %q or %q, got %q", metaSchema, metaPing, key)
	}
	return nil
}

// GetMeta returns the value stored under key, or ErrNotFound.
func (db *DB) GetMeta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := db.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)`,
		key, db.now()).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: meta %s: %w", key, rswebhooks.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: get meta %s: %w", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// PutMeta stores a small value under key for good.
func (db *DB) PutMeta(ctx context.Context, key string, v []byte) error {
	if err := checkMetaKey(key); err != nil {
		return err
	}
	return db.putMeta(ctx, key, v, nil)
}

// PutMetaUntil stores a value that disappears at expires; an expiry in the
// past removes it.
func (db *DB) PutMetaUntil(ctx context.Context, key string, v []byte, expires time.Time) error {
	if err := checkMetaKey(key); err != nil {
		return err
	}
	if !expires.After(db.now()) {
		if _, err := db.pool.Exec(ctx, "DELETE FROM meta WHERE key = $1", key); err != nil {
			return fmt.Errorf("pgstore: delete meta %s: %w", key, err)
		}
		return nil
	}
	return db.putMeta(ctx, key, v, &expires)
}

func (db *DB) putMeta(ctx context.Context, key string, v []byte, expires *time.Time) error {
	if v == nil {
		v = []byte{}
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO meta (key, value, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`, key, v, expires)
	if err != nil {
		return fmt.Errorf("pgstore: put meta %s: %w", key, err)
	}
	return nil
}

// PutMetaIfAbsent stores v under key for good unless a value that has not
// expired is stored there, and returns the value now stored (v when it
// created it). One statement decides: the insert, or on a conflict the
// replacement of an expired row (Run deletes those only now and then), so
// of several nodes racing exactly one creates. When a live row is there
// the statement returns nothing and the row is read; should it vanish in
// between (deleted, or expired just then), the whole is tried again.
func (db *DB) PutMetaIfAbsent(ctx context.Context, key string, v []byte) (stored []byte, created bool, err error) {
	if err := checkMetaKey(key); err != nil {
		return nil, false, err
	}
	if v == nil {
		v = []byte{}
	}
	for range 8 {
		now := db.now()
		var got []byte
		err := db.pool.QueryRow(ctx, `INSERT INTO meta (key, value, expires_at) VALUES ($1, $2, NULL)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = NULL
				WHERE meta.expires_at IS NOT NULL AND meta.expires_at <= $3
			RETURNING value`, key, v, now).Scan(&got)
		switch {
		case err == nil:
			return v, true, nil
		case !errors.Is(err, pgx.ErrNoRows):
			return nil, false, fmt.Errorf("pgstore: put meta if absent %s: %w", key, err)
		}
		cur, err := db.GetMeta(ctx, key)
		switch {
		case err == nil:
			return cur, false, nil
		case !errors.Is(err, rswebhooks.ErrNotFound):
			return nil, false, err
		}
	}
	return nil, false, fmt.Errorf("pgstore: put meta if absent %s: the key kept changing; try again", key)
}

// ListMeta returns the unexpired values whose keys start with prefix, in
// byte order of the keys (as Badger's).
func (db *DB) ListMeta(ctx context.Context, prefix string) ([]rswebhooks.MetaEntry, error) {
	if prefix == "" {
		return nil, errors.New("pgstore: list meta: prefix must not be empty")
	}
	rows, err := db.pool.Query(ctx, `SELECT key, value FROM meta
		WHERE starts_with(key, $1) AND (expires_at IS NULL OR expires_at > $2) ORDER BY key COLLATE "C"`, prefix, db.now())
	if err != nil {
		return nil, fmt.Errorf("pgstore: list meta %s: %w", prefix, err)
	}
	defer rows.Close()
	var out []rswebhooks.MetaEntry
	for rows.Next() {
		var e rswebhooks.MetaEntry
		if err := rows.Scan(&e.Key, &e.Value); err != nil {
			return nil, fmt.Errorf("pgstore: list meta %s: %w", prefix, err)
		}
		if e.Value == nil {
			e.Value = []byte{}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: list meta %s: %w", prefix, err)
	}
	return out, nil
}

// SwapMeta replaces the value under key with v if it is old, keeping its
// expiry. The UPDATE re-checks its condition on the row it locked, so of
// two swaps from one old value the second finds the new value and does
// nothing.
func (db *DB) SwapMeta(ctx context.Context, key string, old, v []byte) (bool, error) {
	if err := checkMetaKey(key); err != nil {
		return false, err
	}
	if v == nil {
		v = []byte{}
	}
	if old == nil {
		old = []byte{}
	}
	tag, err := db.pool.Exec(ctx, `UPDATE meta SET value = $3
		WHERE key = $1 AND value = $2 AND (expires_at IS NULL OR expires_at > $4)`, key, old, v, db.now())
	if err != nil {
		return false, fmt.Errorf("pgstore: swap meta %s: %w", key, err)
	}
	return tag.RowsAffected() == 1, nil
}

// DeleteMetaIf removes key if its value is old.
func (db *DB) DeleteMetaIf(ctx context.Context, key string, old []byte) (bool, error) {
	if err := checkMetaKey(key); err != nil {
		return false, err
	}
	if old == nil {
		old = []byte{}
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM meta
		WHERE key = $1 AND value = $2 AND (expires_at IS NULL OR expires_at > $3)`, key, old, db.now())
	if err != nil {
		return false, fmt.Errorf("pgstore: delete meta %s: %w", key, err)
	}
	return tag.RowsAffected() == 1, nil
}
