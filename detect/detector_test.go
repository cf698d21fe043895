package detect

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/store"
	"github.com/rswebhooks/rswebhooks/tap"
)

func openStore(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// storedEvents returns the events not yet fanned out, oldest first.
func storedEvents(t testing.TB, db *store.DB) []*rswebhooks.Event {
	t.Helper()
	es, err := db.UnfannedEvents(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// actorsFn adapts a function to Actors.
type actorsFn func(string) (*rswebhooks.Identity, bool)

func (f actorsFn) Actor(_ context.Context, tok string) (*rswebhooks.Identity, bool) { return f(tok) }

type fixture struct {
	d      *Detector
	db     *store.DB
	reg    *prometheus.Registry
	logs   *bytes.Buffer
	wakes  int
	now    time.Time
	tokens []string
}

func newFixture(t testing.TB, mod func(*Options)) *fixture {
	t.Helper()
	f := &fixture{db: openStore(t), reg: prometheus.NewRegistry(), logs: &bytes.Buffer{},
		now: time.Now().In(time.FixedZone("CET", 3600)).Truncate(time.Second)}
	opts := Options{
		Store:      f.db,
		Registerer: f.reg,
		Logger:     zerolog.New(f.logs),
		Now:        func() time.Time { return f.now },
		OnEvent:    func() { f.wakes++ },
		Actors: actorsFn(func(tok string) (*rswebhooks.Identity, bool) {
			f.tokens = append(f.tokens, tok)
			if tok == "alice-token" {
				return &rswebhooks.Identity{User: rswebhooks.User{ID: "u-alice", Name: "alice"}}, true
			}
			return nil, false
		}),
	}
	if mod != nil {
		mod(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.d = d
	return f
}

func TestObserveStoresEvent(t *testing.T) {
	f := newFixture(t, nil)
	ex := &tap.Exchange{
		Method:         "POST",
		Path:           "/api/reportserver/v2/categories/",
		Query:          "x=1",
		RequestHeader:  hdr("Authorization", "Bearer alice-token"),
		RequestBody:    []byte(`{"Name":"Finance"}`),
		Status:         http.StatusCreated,
		ResponseHeader: hdr("Content-Encoding", "gzip"),
		ResponseBody:   gz(t, `{"Id":"c1","Name":"Finance"}`),
		RequestID:      "req-1",
	}
	if !f.d.Wants(ex.Method, ex.Path) {
		t.Fatal("Wants = false for a create route")
	}
	f.d.Observe(context.Background(), ex)
	es := storedEvents(t, f.db)
	if len(es) != 1 {
		t.Fatalf("stored %d events, want 1", len(es))
	}
	e := es[0]
	want := rswebhooks.Event{ID: e.ID, Filter: "categories", Type: "Created", ResourceID: "c1", ResourceName: "Finance",
		UserID: "u-alice", UserName: "alice", Time: f.now.UTC(), APIVersion: "v2", Method: "POST",
		Path: "/api/reportserver/v2/categories/", RequestID: "req-1", Source: rswebhooks.SourceProxy}
	if !e.Time.Equal(want.Time) || e.Time.Location() != time.UTC {
		t.Errorf("Time = %v, want %v in UTC", e.Time, want.Time)
	}
	e.Time = want.Time
	if len(e.ID) != 26 || !strings.HasPrefix(e.ID, rswebhooks.NewID(f.now)[:10]) {
		t.Errorf("ID %q is not a ULID of the event time", e.ID)
	}
	if !reflect.DeepEqual(*e, want) {
		t.Errorf("event\n got %+v\nwant %+v", *e, want)
	}
	if f.wakes != 1 {
		t.Errorf("OnEvent called %d times, want 1", f.wakes)
	}
	if got := testutil.ToFloat64(f.d.metrics.Events.WithLabelValues("categories", "Created")); got != 1 {
		t.Errorf("events_total{categories,Created} = %v, want 1", got)
	}
	if strings.Contains(f.logs.String(), "alice-token") {
		t.Error("the bearer token reached the log")
	}
}

func TestObserveNoEvent(t *testing.T) {
	f := newFixture(t, nil)
	cases := []tap.Exchange{
		{Method: "POST", Path: "/api/reportserver/v2/categories", Status: 400, ResponseBody: []byte(`{"Id":"c1"}`)},
		{Method: "DELETE", Path: "/api/reportserver/v2/categories/c1", Status: 404},
		{Method: "DELETE", Path: "/api/reportserver/v2/categories/c1", Status: 500},
		{Method: "DELETE", Path: "/api/reportserver/v2/categories/c1", Status: 302},
		{Method: "PUT", Path: "/api/reportserver/v2/reports/r1/lock", Status: 204},
		{Method: "PUT", Path: "/api/reportserver/reports/r1/favorite", Status: 204},
		{Method: "PUT", Path: "/api/reportserver/v1/reports/r1/shelve", Status: 204},
		{Method: "POST", Path: "/api/reports/clients", Status: 200, ResponseBody: []byte(`{"clientId":"x"}`)},
		{Method: "POST", Path: "/Token", Status: 200},
		{Method: "POST", Path: "/api/reportserver/v2/documents", Status: 201},
		{Method: "POST", Path: "/api/webhooks/registrations", Status: 201},
		{Method: "GET", Path: "/api/reportserver/v2/nothing/here", Status: 200},
	}
	for _, ex := range cases {
		ex.RequestHeader, ex.ResponseHeader = http.Header{}, http.Header{}
		f.d.Observe(context.Background(), &ex)
	}
	f.d.Observe(context.Background(), nil)
	if es := storedEvents(t, f.db); len(es) != 0 {
		t.Fatalf("stored %d events, want none: first %+v", len(es), es[0])
	}
	for _, m := range unmatchedMethods {
		if got := testutil.ToFloat64(f.d.metrics.Unmatched.WithLabelValues(m)); got != 0 {
			t.Errorf("unmatched{%s} = %v, want 0", m, got)
		}
	}
	if f.wakes != 0 {
		t.Errorf("OnEvent called %d times", f.wakes)
	}
	// Ignored and unmatched routes do not ask for bodies.
	for _, p := range []string{"/Token", "/api/reports/clients", "/api/reportserver/v2/reports/r1/lock", "/nope"} {
		if f.d.Wants("POST", p) || f.d.Wants("PUT", p) {
			t.Errorf("Wants(%s) = true", p)
		}
	}
}

func TestObserveUnmatched(t *testing.T) {
	f := newFixture(t, nil)
	for _, ex := range []tap.Exchange{
		{Method: "POST", Path: "/Manager/Report/Save", Status: 200},
		{Method: "post", Path: "/api/reportserver/v2/reports/r1/copy", Status: 201},
		{Method: "PATCH", Path: "/api/reportserver/v2/reports/r1", Status: 204},
		{Method: "PROPFIND", Path: "/x", Status: 207},
		{Method: "POST", Path: "/Manager/Report/Save", Status: 500}, // not 2xx: not counted
	} {
		f.d.Observe(context.Background(), &ex)
	}
	want := map[string]float64{"POST": 2, "PATCH": 1, "OTHER": 1, "PUT": 0, "DELETE": 0}
	for m, n := range want {
		if got := testutil.ToFloat64(f.d.metrics.Unmatched.WithLabelValues(m)); got != n {
			t.Errorf("unmatched{%s} = %v, want %v", m, got, n)
		}
	}
	if !strings.Contains(f.logs.String(), `"path":"/Manager/Report/Save"`) {
		t.Errorf("unmatched call not logged: %s", f.logs)
	}
	if es := storedEvents(t, f.db); len(es) != 0 {
		t.Fatalf("stored %d events, want none", len(es))
	}
}

type appendFn func(ctx context.Context, e *rswebhooks.Event) error

func (f appendFn) AppendEvent(ctx context.Context, e *rswebhooks.Event) error { return f(ctx, e) }

// In the store's degraded mode each lost event is counted under the
// condition, and not logged one by one (the store logs the transition).
func TestObserveStoreDegraded(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Store = appendFn(func(context.Context, *rswebhooks.Event) error {
			return fmt.Errorf("store: append event: %w",
				&rswebhooks.StoreUnavailableError{Condition: rswebhooks.StoreDiskFull, Detail: "1 MiB free"})
		})
	})
	ex := &tap.Exchange{Method: "DELETE", Path: "/api/reportserver/v3/data-alerts/a1", Status: 204}
	f.d.Observe(context.Background(), ex)
	f.d.Observe(context.Background(), ex)
	for reason, want := range map[string]float64{"disk_full": 2, "unwritable": 0, "unopened": 0, "error": 0} {
		if got := testutil.ToFloat64(f.d.metrics.Lost.WithLabelValues(reason)); got != want {
			t.Errorf("events_lost_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if n, err := testutil.GatherAndCount(f.reg, "rswebhooks_events_lost_total"); err != nil || n != 4 {
		t.Errorf("events_lost_total series = %d (%v), want 4 pre-created", n, err)
	}
	if strings.Contains(f.logs.String(), `"level":"error"`) {
		t.Errorf("a lost event in degraded mode was logged at error: %s", f.logs)
	}
}

func TestObserveStoreFailure(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	ex := &tap.Exchange{Method: "DELETE", Path: "/api/reportserver/v3/data-alerts/a1", Status: 204,
		RequestHeader: hdr("Authorization", "Bearer alice-token")}
	f.d.Observe(context.Background(), ex)
	if got := testutil.ToFloat64(f.d.metrics.Lost.WithLabelValues("error")); got != 1 {
		t.Errorf("events_lost_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(f.d.metrics.Events.WithLabelValues("alerts", "Deleted")); got != 0 {
		t.Errorf("events_total{alerts,Deleted} = %v, want 0", got)
	}
	if f.wakes != 0 {
		t.Errorf("OnEvent called %d times after a failed append", f.wakes)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"level":"error"`) || !strings.Contains(logs, "event lost") {
		t.Errorf("lost event not logged at error: %s", logs)
	}
	if strings.Contains(logs, "alice-token") {
		t.Error("the bearer token reached the log")
	}
}

func TestObserveCancelledClientStillStores(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.d.Observe(ctx, &tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/executions/scheduledtasks/t1", Status: 204})
	es := storedEvents(t, f.db)
	if len(es) != 1 || es[0].Type != "Executed" || es[0].Filter != "tasks" || es[0].ResourceID != "t1" {
		t.Fatalf("events = %+v, want one tasks Executed t1", es)
	}
}

func TestObserveWithoutID(t *testing.T) {
	f := newFixture(t, nil)
	f.d.Observe(context.Background(), &tap.Exchange{Method: "POST", Path: "/api/reportserver/v2/reports", Status: 200,
		ResponseBody: []byte(`{"Id":"r1"`), ResponseTruncated: true, ResponseHeader: http.Header{}})
	es := storedEvents(t, f.db)
	if len(es) != 1 || es[0].ResourceID != "" || es[0].Type != "Created" {
		t.Fatalf("events = %+v, want one Created without id", es)
	}
	if got := testutil.ToFloat64(f.d.metrics.WithoutID.WithLabelValues("reports")); got != 1 {
		t.Errorf("events_without_id_total{reports} = %v, want 1", got)
	}
	if !strings.Contains(f.logs.String(), `"level":"warn"`) {
		t.Errorf("missing id not logged at warn: %s", f.logs)
	}
}

func TestObserveActors(t *testing.T) {
	tests := []struct {
		auth      string
		wantToken string
		wantUser  string
	}{
		{"Bearer alice-token", "alice-token", "alice"},
		{"bearer   alice-token ", "alice-token", "alice"},
		{"Bearer other", "other", ""},
		{"Basic YWxpY2U6YWxpY2U=", "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		f := newFixture(t, nil)
		f.d.Observe(context.Background(), &tap.Exchange{Method: "DELETE", Path: "/api/reportserver/categories/c1",
			Status: 204, RequestHeader: hdr("Authorization", tt.auth)})
		es := storedEvents(t, f.db)
		if len(es) != 1 || es[0].UserName != tt.wantUser {
			t.Errorf("auth %q: events %+v, want user %q", tt.auth, es, tt.wantUser)
		}
		if (len(f.tokens) == 1 && f.tokens[0] != tt.wantToken) || (len(f.tokens) == 0) != (tt.wantToken == "") {
			t.Errorf("auth %q: Peek got %q, want %q", tt.auth, f.tokens, tt.wantToken)
		}
	}
	// No resolver at all.
	f := newFixture(t, func(o *Options) { o.Actors = nil })
	f.d.Observe(context.Background(), &tap.Exchange{Method: "DELETE", Path: "/api/reportserver/categories/c1",
		Status: 204, RequestHeader: hdr("Authorization", "Bearer alice-token")})
	if es := storedEvents(t, f.db); len(es) != 1 || es[0].UserID != "" {
		t.Fatalf("events = %+v, want one without user", es)
	}
}

func TestMetricsPrecreated(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	n, err := testutil.GatherAndCount(reg, "rswebhooks_events_total", "rswebhooks_unmatched_mutations_total",
		"rswebhooks_events_lost_total", "rswebhooks_events_without_id_total")
	if err != nil {
		t.Fatal(err)
	}
	if want := 5*4 + 5 + 4 + 5; n != want {
		t.Errorf("%d series, want %d", n, want)
	}
}

func TestNewValidates(t *testing.T) {
	db := openStore(t)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no store", Options{}, "Options.Store is required"},
		{"negative limit", Options{Store: db, BodyLimit: -1}, "Options.BodyLimit"},
		{"negative timeout", Options{Store: db, AppendTimeout: -1}, "Options.AppendTimeout"},
		{"bad prefix", Options{Store: db, Prefix: "/a?b"}, "Options.Prefix"},
		{"bad rule", Options{Store: db, Rules: []Rule{{Method: "GET", Path: "x", Event: EventIgnore}}}, "Options.Rules[0] (GET x): method"},
		{"conflict", Options{Store: db, Rules: []Rule{{Method: "POST", Path: "x", Event: EventIgnore}, {Method: "POST", Path: "X", Event: EventIgnore}}}, "Options.Rules[1] (POST X): conflicts with rule POST x"},
	}
	for _, tt := range tests {
		_, err := New(tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := New(Options{Store: db}); err != nil {
		t.Errorf("minimal options: %v", err)
	}
}

type namesFn func(filter, id string) (string, bool)

func (f namesFn) Name(filter, id string) (string, bool) { return f(filter, id) }

// A resource the call does not name (a Deleted by path) is named from
// Options.Names, and a report's category id gets its name.
func TestNamesFillWhatTheCallDoesNotSay(t *testing.T) {
	for _, tc := range []struct {
		method, path, body    string
		wantName, wantCatName string
	}{
		{"DELETE", "/api/reportserver/v2/reports/R1", "", "Ledger", ""},
		{"PUT", "/api/reportserver/v2/reports", `{"Id":"R1","Name":"Ledger 2","CategoryId":"C1"}`, "Ledger 2", "Finance"},
		{"DELETE", "/api/reportserver/v2/categories/C9", "", "", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			db := openStore(t)
			d, err := New(Options{Store: db, Names: namesFn(func(filter, id string) (string, bool) {
				switch filter + "/" + id {
				case "reports/R1":
					return "Ledger", true
				case "categories/C1":
					return "Finance", true
				}
				return "", false
			})})
			if err != nil {
				t.Fatal(err)
			}
			ex := &tap.Exchange{Method: tc.method, Path: tc.path, Status: 200, RequestBody: []byte(tc.body),
				RequestHeader: http.Header{}, ResponseHeader: http.Header{}}
			d.Observe(context.Background(), ex)
			es := storedEvents(t, db)
			if len(es) != 1 || es[0].ResourceName != tc.wantName || es[0].CategoryName != tc.wantCatName {
				t.Fatalf("events %+v, want name %q category %q", es, tc.wantName, tc.wantCatName)
			}
		})
	}
}
