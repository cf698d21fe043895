package pgstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks/internal/pgtest"
)

// The store's connections plan each statement once, by index (see Open),
// unless the connection string chose the plan cache mode itself.
func TestSessionSettingsForGenericPlans(t *testing.T) {
	url := pgtest.NewDatabase(t)
	sep := paramSep(url)
	for _, tc := range []struct {
		url  string
		want map[string]string
	}{
		{url, map[string]string{"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off", "jit": "off"}},
		{url + sep + "options=-c%20plan_cache_mode%3Dauto", map[string]string{"plan_cache_mode": "auto", "enable_seqscan": "on"}},
	} {
		db, err := Open(context.Background(), Options{URL: tc.url})
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range tc.want {
			var got string
			if err := db.pool.QueryRow(context.Background(), "SELECT current_setting($1)", name).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s: %s = %s, want %s", RedactURL(tc.url), name, got, want)
			}
		}
		db.Close()
	}
}

// The fan-out's first statement inserts without ON CONFLICT; only the one
// sent again after a unique violation tolerates rows there.
func TestFanOutStatements(t *testing.T) {
	if n := strings.Count(fanOutSQL[true], "ON CONFLICT"); n != 2 {
		t.Fatalf("the tolerant fan-out has %d ON CONFLICT clauses, want 2 (deliveries, snapshots)", n)
	}
	if strings.Contains(fanOutSQL[false], "ON CONFLICT") {
		t.Fatalf("the plain fan-out has an ON CONFLICT clause:\n%s", fanOutSQL[false])
	}
	if len(fanOutSQL[false]) >= len(fanOutSQL[true]) {
		t.Fatal("the plain fan-out is the tolerant one")
	}
}

// Open returns with the connections the delivery path uses at once
// already open (server processes started), and the pool keeps them; a
// connection string's pool_min_conns has the last word.
func TestOpenWarmsThePool(t *testing.T) {
	url := pgtest.NewDatabase(t)
	sep := paramSep(url)
	for _, tc := range []struct {
		url    string
		want   int32
		jitter time.Duration
	}{
		{url, warmConns, 15 * time.Minute},
		{url + sep + "pool_min_conns=2&pool_max_conn_lifetime_jitter=1s", 2, time.Second},
	} {
		db, err := Open(context.Background(), Options{URL: tc.url})
		if err != nil {
			t.Fatal(err)
		}
		st := db.pool.Stat()
		if st.TotalConns() < tc.want || db.pool.Config().MinConns != tc.want {
			t.Errorf("%s: %d connections open after Open, pool's minimum %d; want %d", RedactURL(tc.url), st.TotalConns(),
				db.pool.Config().MinConns, tc.want)
		}
		if got := db.pool.Config().MaxConnLifetimeJitter; got != tc.jitter {
			t.Errorf("%s: connection lifetime jitter %v, want %v (connections opened together must not all be replaced together)",
				RedactURL(tc.url), got, tc.jitter)
		}
		db.Close()
	}
}

// paramSep is what separates a parameter added to url from what is there.
func paramSep(url string) string {
	if strings.Contains(url, "?") {
		return "&"
	}
	return "?"
}
