package deliver

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/doclink"
	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"github.com/rswebhooks/rswebhooks/signature"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const testSecret = "0123456789abcdef0123456789abcdef-secret"

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// headerDump lists the received headers, sorted, one "Name: value" a line.
// The span id of traceparent, random per attempt, reads "<span id>".
func headerDump(h http.Header) []byte {
	var lines []string
	for k, vs := range h {
		for _, v := range vs {
			if p := strings.Split(v, "-"); k == "Traceparent" && len(p) == 4 && len(p[2]) == 16 {
				p[2] = "<span id>"
				v = strings.Join(p, "-")
			}
			lines = append(lines, k+": "+v)
		}
	}
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n") + "\n")
}

// TestGoldenWire pins the exact bytes a receiver gets (body and headers) for
// an event notification and a ping, sent through the engine to a loopback
// receiver with a fixed clock and fixed ids.
func TestGoldenWire(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := testutil.NewClock(t0)
	got := make(chan received, 10)
	srv := httptest.NewServer(receiver(got, nil))
	defer srv.Close()
	base, _ := url.Parse("https://rswebhooks.example:8080")
	links, err := doclink.New(doclink.Options{Key: bytes.Repeat([]byte{7}, doclink.KeySize), BaseURL: base,
		Webhooks: noWebhooks{}, Access: AllowAll{}, Documents: noDocuments{}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(o *Options) { o.Now = clock.Now; o.Links = links })
	w := &rswebhooks.Webhook{
		ID: "01JDWEBHOOK000000000000000", URI: srv.URL + "/hook", Secret: testSecret,
		Filters: []string{"*"}, User: rswebhooks.User{ID: "u-alice", Name: "alice"},
		Headers:    map[string]string{"X-Tenant": "contoso", "ms-signature": "ignored"},
		Properties: map[string]json.RawMessage{"env": json.RawMessage(`"prod"`), "team": json.RawMessage(`{"id":7,"name":"reports"}`)},
		CreatedUTC: t0, UpdatedUTC: t0,
	}
	if err := h.db.CreateWebhook(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	triggered := true
	execDate := t0.Add(-time.Minute)
	for _, tc := range []struct {
		name string
		d    *rswebhooks.Delivery
	}{
		{"notification", &rswebhooks.Delivery{ID: "01JDDELIVERY00000000000001", Event: rswebhooks.Event{
			ID: "01JDEVENT00000000000000001", Filter: "reports", Type: "Created", ResourceID: "5e3f0c2a",
			ResourceName: "Sales by region", UserID: "u-bob", UserName: "bob", Time: t0.Add(-2 * time.Second),
			APIVersion: "v2", Method: "POST", Path: "/api/reportserver/v2/reports", RequestID: "not sent",
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		}}},
		{"execution", &rswebhooks.Delivery{ID: "01JDDELIVERY00000000000002", Event: rswebhooks.Event{
			ID: "01JDEVENT00000000000000002", Filter: "alerts", Type: "Executed", ResourceID: "a1",
			ResourceName: "Low stock", Time: t0.Add(-time.Second), ExecutionID: "x-42",
			ExecutionDateUTC: &execDate, AlertTriggered: &triggered, DocumentIDs: []string{"d1", "d2"},
			Documents: []rswebhooks.Document{{ID: "d1", Name: "Low stock.pdf", Format: "PDF", MimeType: "application/pdf"},
				{ID: "d2", Name: "Low stock.csv", Format: "CSV", MimeType: "text/csv"}},
		}}},
		{"ping", &rswebhooks.Delivery{ID: "01JDDELIVERY00000000000003", Ping: true, Event: rswebhooks.Event{
			ID: "01JDEVENT00000000000000003", Filter: PingAction, Type: PingEventType, UserID: "u-admin",
			UserName: "admin", Time: t0,
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.d
			d.WebhookID, d.EventID, d.State, d.NextUTC, d.CreatedUTC, d.UpdatedUTC = w.ID, d.Event.ID, rswebhooks.DeliveryPending, t0, t0, t0
			if err := h.db.PutDelivery(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			if h.stop == nil {
				h.start()
			}
			h.e.Wake()
			r := recv(t, got, "notification")
			if err := signature.Verify(testSecret, r.Header.Get("ms-signature"), r.Body); err != nil {
				t.Fatal(err)
			}
			if err := signature.VerifyStandard(testSecret, r.Header, r.Body, t0, 0); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+".json", r.Body)
			golden(t, tc.name+".headers", headerDump(r.Header))
			if d := h.nextFinal(); d.State != rswebhooks.DeliverySucceeded {
				t.Fatalf("delivery = %+v", d)
			}
		})
	}
}

// The golden test makes links but never follows them.
type (
	noWebhooks  struct{ doclink.Webhooks }
	noDocuments struct{ doclink.Documents }
)

func TestMarshalBodyEmptyProperties(t *testing.T) {
	d := &rswebhooks.Delivery{ID: "d", Event: rswebhooks.Event{ID: "e", Filter: "tasks", Type: "Deleted", Time: time.Unix(0, 0)}}
	b, err := MarshalBody(d, &rswebhooks.Webhook{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{
  "Id": "d",
  "Attempt": 2,
  "Properties": {},
  "Notifications": [
    {
      "Action": "tasks",
      "EventType": "Deleted",
      "EventId": "e",
      "Source": "proxy",
      "TimestampUtc": "%s"
    }
  ]
}`, "1970-01-01T00:00:00Z")
	if string(b) != want {
		t.Fatalf("body:\n%s\nwant:\n%s", b, want)
	}
}
