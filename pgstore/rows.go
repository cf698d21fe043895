package pgstore

import (
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// readRecords reads rows of (id, body) and decodes each body; a record
// that cannot be decoded is logged and skipped, so one bad row never hides
// the others. It closes rows.
func readRecords[T any](rows pgx.Rows, log zerolog.Logger, kind string, decode func(id string, body []byte) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		var id string
		var body []byte
		if err := rows.Scan(&id, &body); err != nil {
			return nil, err
		}
		v, err := decode(id, body)
		if err != nil {
			log.Error().Err(err).Str(kind+"_id", id).Msg("stored " + kind + " cannot be decoded; skipped")
			continue
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// readWebhooks reads rows of (id, body) as webhooks (see readRecords).
func readWebhooks(rows pgx.Rows, log zerolog.Logger) ([]*rswebhooks.Webhook, error) {
	return readRecords(rows, log, "webhook", decodeWebhook)
}

func decodeWebhook(id string, body []byte) (*rswebhooks.Webhook, error) {
	w := new(rswebhooks.Webhook)
	if err := json.Unmarshal(body, w); err != nil {
		return nil, fmt.Errorf("decode webhook %s: %w", id, err)
	}
	return w, nil
}
