package deliver

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/doclink"
)

const (
	examplesBegin = "<!-- BEGIN GENERATED NOTIFICATION EXAMPLES (go test ./deliver -run TestEventsDocExamples -update) -->"
	examplesEnd   = "<!-- END GENERATED NOTIFICATION EXAMPLES -->"
)

// docExamples renders one notification body per event type (and the
// variants receivers must handle) exactly as the engine would send them.
func docExamples(t *testing.T) string {
	t.Helper()
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	base, _ := url.Parse("https://reports.example.com")
	links, err := doclink.New(doclink.Options{Key: bytes.Repeat([]byte{42}, doclink.KeySize), BaseURL: base,
		Webhooks: noWebhooks{}, Access: AllowAll{}, Documents: noDocuments{}})
	if err != nil {
		t.Fatal(err)
	}
	w := &rswebhooks.Webhook{ID: "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e", Properties: map[string]json.RawMessage{"env": json.RawMessage(`"prod"`)}}
	run := t0.Add(-3 * time.Second)
	yes, no := true, false
	cases := []struct {
		title string
		ev    rswebhooks.Event
	}{
		{"`Created` — a report uploaded through the proxy (API v2)", rswebhooks.Event{
			ID: "01KB4Q3N2G8H7VXK6J5RZ1A2B3", Filter: "reports", Type: "Created", ResourceID: "8d2a1f0c3b4",
			ResourceName: "Sales by region", CategoryID: "5e3f0c2a1b9", UserID: "2b6f0cc904d137be2e1730235f5664094b831186", UserName: "alice",
			Time: t0, APIVersion: "v2", Method: "POST", Path: "/api/reportserver/v2/reports", Source: "proxy"}},
		{"`Updated` — a report renamed through API v3 (the category comes from the call)", rswebhooks.Event{
			ID: "01KB4Q3N2G8H7VXK6J5RZ1A2B4", Filter: "reports", Type: "Updated", ResourceID: "8d2a1f0c3b4",
			ResourceName: "Sales by region 2026", CategoryID: "5e3f0c2a1b9", UserID: "2b6f0cc904d137be2e1730235f5664094b831186", UserName: "alice",
			Time: t0, APIVersion: "v3", Method: "PUT", Path: "/api/reportserver/v3/reports/8d2a1f0c3b4", Source: "proxy"}},
		{"`Deleted` — a data connection deleted (the path names only the id)", rswebhooks.Event{
			ID: "01KB4Q3N2G8H7VXK6J5RZ1A2B5", Filter: "connections", Type: "Deleted", ResourceID: "c0ffee12345",
			UserID: "2b6f0cc904d137be2e1730235f5664094b831186", UserName: "alice",
			Time: t0, APIVersion: "v2", Method: "DELETE", Path: "/api/reportserver/v2/dataconnections/c0ffee12345", Source: "proxy"}},
		{"`Executed` — a task run by hand through the proxy, with its run and document links", rswebhooks.Event{
			ID: "01KB4Q3N2G8H7VXK6J5RZ1A2B6", Filter: "tasks", Type: "Executed", ResourceID: "22ad8ead857",
			ResourceName: "Nightly sales", UserID: "2b6f0cc904d137be2e1730235f5664094b831186", UserName: "alice",
			Time: t0, APIVersion: "v3", Method: "POST", Path: "/api/reportserver/v3/scheduled-tasks/22ad8ead857/execute", Source: "proxy",
			ExecutionID: "cd67290aed0", ExecutionDateUTC: &run, DocumentIDs: []string{"27b55e24f91"},
			Documents: []rswebhooks.Document{{ID: "27b55e24f91", Name: "Sales by region.pdf", Format: "PDF", MimeType: "application/pdf"}}}},
		{"`Executed` — a data alert run on its schedule (found by the watcher), not triggered", rswebhooks.Event{
			ID: "01KB4Q3N2G8H7VXK6J5RZ1A2B7", Filter: "alerts", Type: "Executed", ResourceID: "7a4dc93c392",
			ResourceName: "Low stock", Time: t0, APIVersion: "v3", Source: "watch",
			ExecutionID: "e953db96804", ExecutionDateUTC: &run, AlertTriggered: &no}},
		{"`Executed` — a data alert run by hand whose run did not appear in time", rswebhooks.Event{
			ID: "01KB4Q3N2G8H7VXK6J5RZ1A2B8", Filter: "alerts", Type: "Executed", ResourceID: "7a4dc93c392",
			UserID: "2b6f0cc904d137be2e1730235f5664094b831186", UserName: "alice",
			Time: t0, APIVersion: "v2", Method: "POST", Path: "/api/reportserver/v2/executions/dataalerts/7a4dc93c392", Source: "proxy",
			Missing: []string{"ExecutionId", "ExecutionDateUtc", "DocumentIds", "AlertTriggered"},
			Note:    "no execution record of this run appeared within 1m0s of the call"}},
		{"`Executed` — a triggered alert run while document links are off (no service account for downloads)", rswebhooks.Event{
			ID: "01KB4Q3N2G8H7VXK6J5RZ1A2B9", Filter: "alerts", Type: "Executed", ResourceID: "7a4dc93c392",
			ResourceName: "Low stock", Time: t0, APIVersion: "v3", Source: "watch",
			ExecutionID: "f00dfeed123", ExecutionDateUTC: &run, AlertTriggered: &yes, DocumentIDs: []string{"9b1e2c3d4f5"},
			Documents: []rswebhooks.Document{{ID: "9b1e2c3d4f5", Name: "Low stock.csv", Format: "CSV", MimeType: "text/csv"}}}},
	}
	var out strings.Builder
	for i, c := range cases {
		d := &rswebhooks.Delivery{ID: rswebhooks.IDFrom(t0, [10]byte{byte(i + 1)}), Event: c.ev}
		var l Links = links
		off := ""
		if strings.Contains(c.title, "links are off") {
			l, off = nil, "document links are off: their signing key could not be read from the store"
		}
		b, err := MarshalBodyLinks(d, w, 1, l, off, t0)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString("#### " + c.title + "\n\n```json\n" + string(b) + "\n```\n\n")
	}
	return out.String()
}

// TestEventsDocExamples holds docs/events.md's notification examples to
// what the code sends.
func TestEventsDocExamples(t *testing.T) {
	const path = "../docs/events.md"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, examplesBegin), strings.Index(doc, examplesEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q … %q block", path, examplesBegin, examplesEnd)
	}
	want := "\n\n" + docExamples(t)
	if got := doc[i+len(examplesBegin) : j]; got != want {
		if *update {
			if err := os.WriteFile(path, []byte(doc[:i+len(examplesBegin)]+want+doc[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("%s: the notification examples differ from what the code sends (go test ./deliver -run TestEventsDocExamples -update)", path)
	}
}
