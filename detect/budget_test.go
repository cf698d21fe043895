package detect

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rswebhooks/rswebhooks/proxy"
	"github.com/rswebhooks/rswebhooks/tap"
)

// TestEventsRecordedWhenCaptureSkipped runs creates and an update through a
// proxy whose capture budget can hold no body: each call still becomes an
// event, from what is known without bodies (path, Location), and the event
// names the fields it lacks.
func TestEventsRecordedWhenCaptureSkipped(t *testing.T) {
	s := newStack(t, "")
	reg := prometheus.NewRegistry()
	u, _ := url.Parse(s.up.URL)
	px, err := proxy.New(proxy.Options{Upstream: u, Tap: s.d, CaptureBudget: 1, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(px)
	t.Cleanup(front.Close)

	// v3 create: id from the Location header, name unknown.
	r := s.call(front.URL, "POST", "/api/reportserver/v3/categories", map[string]any{"Name": "Budget v3"})
	if r.status != 201 {
		t.Fatalf("v3 create: %d %s", r.status, r.body)
	}
	v3ID := responseID(t, r)
	// v2 create: the id is only in the unread response body.
	r = s.call(front.URL, "POST", "/api/reportserver/v2/categories", map[string]any{"Name": "Budget v2"})
	if r.status/100 != 2 {
		t.Fatalf("v2 create: %d %s", r.status, r.body)
	}
	// Update with the id in the path: only the name (from the body) is missing.
	r = s.call(front.URL, "PUT", "/api/reportserver/v3/categories/"+v3ID, map[string]any{"Name": "Budget v3b"})
	if r.status/100 != 2 {
		t.Fatalf("v3 update: %d %s", r.status, r.body)
	}

	evs := storedEvents(t, s.db)
	if len(evs) != 3 {
		t.Fatalf("stored %d events, want 3", len(evs))
	}
	if e := evs[0]; e.Filter != "categories" || e.Type != "Created" || e.ResourceID != v3ID || e.ResourceName != "" ||
		!slices.Equal(e.Missing, []string{"ResourceName"}) {
		t.Fatalf("v3 create event = %+v", e)
	}
	if e := evs[1]; e.Filter != "categories" || e.Type != "Created" || e.ResourceID != "" ||
		!slices.Equal(e.Missing, []string{"ResourceId", "ResourceName"}) {
		t.Fatalf("v2 create event = %+v", e)
	}
	if e := evs[2]; e.Type != "Updated" || e.ResourceID != v3ID || !slices.Equal(e.Missing, []string{"ResourceName"}) {
		t.Fatalf("update event = %+v", e)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var skipped float64
	for _, mf := range mfs {
		if mf.GetName() == "rswebhooks_capture_skipped_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == tap.SkipBudget {
					skipped = m.GetCounter().GetValue()
				}
			}
		}
	}
	if skipped != 6 { // both bodies of all three calls
		t.Fatalf("capture_skipped_total{budget} = %v, want 6", skipped)
	}
}

// TestLargeUploadsKeepTheirName: report uploads far over the capture limit
// (JSON with the file inside, and v3 multipart) still give the event its
// name, because the proxy scans bodies for Id and Name instead of copying
// them up to the limit.
func TestLargeUploadsKeepTheirName(t *testing.T) {
	s := newStack(t, "")
	cat := s.category()
	file := bytes.Repeat([]byte("<Report/>"), 300_000) // 2.7 MB, over the 1 MiB capture limit

	r := s.call(s.front.URL, "POST", "/api/reportserver/v2/reports", map[string]any{
		"ReportFile": map[string]any{"FileName": "big.trdp", "Buffer": file}, "CategoryId": cat, "Name": "Big JSON"})
	if r.status/100 != 2 {
		t.Fatalf("v2 upload: %d %s", r.status, r.body)
	}
	jsonID := responseID(t, r)

	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("CategoryId", cat)
	fw, _ := mw.CreateFormFile("ReportFile", "big.trdp")
	_, _ = fw.Write(file)
	_ = mw.WriteField("Name", "Big multipart")
	_ = mw.Close()
	req, _ := http.NewRequest("POST", s.front.URL+"/api/reportserver/v3/reports", &mp)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+s.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("v3 multipart upload: %d %s", res.StatusCode, body)
	}
	mpID := responseID(t, reply{status: res.StatusCode, body: body})

	evs := storedEvents(t, s.db)
	if len(evs) != 2 {
		t.Fatalf("stored %d events, want 2", len(evs))
	}
	if e := evs[0]; e.ResourceID != jsonID || e.ResourceName != "Big JSON" || e.Missing != nil {
		t.Fatalf("JSON upload event = %+v", e)
	}
	if e := evs[1]; e.ResourceID != mpID || e.ResourceName != "Big multipart" || e.Missing != nil {
		t.Fatalf("multipart upload event = %+v", e)
	}
}
