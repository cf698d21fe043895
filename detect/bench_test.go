package detect

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rswebhooks/rswebhooks/tap"
)

func benchDetector(b *testing.B) *Detector {
	b.Helper()
	d, err := New(Options{Store: openStore(b), Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkObserve: a matched v2 create with a gzip response, the event
// appended to a real Badger store.
func BenchmarkObserve(b *testing.B) {
	d := benchDetector(b)
	ex := &tap.Exchange{
		Method:         "POST",
		Path:           "/api/reportserver/v2/categories",
		RequestHeader:  hdr("Authorization", "Bearer t", "Content-Type", "application/json"),
		RequestBody:    []byte(`{"Name":"Finance"}`),
		Status:         200,
		ResponseHeader: hdr("Content-Encoding", "gzip"),
		ResponseBody:   gz(b, `{"Id":"0a1b2c3d4e5","Name":"Finance"}`),
		RequestID:      "r",
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d.Observe(ctx, ex)
	}
}

// BenchmarkObserveUpload: a v1 report upload with a 700 KiB base64 report
// in the request body (the name is read from it).
func BenchmarkObserveUpload(b *testing.B) {
	d := benchDetector(b)
	file := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("<Report/>", 60_000)))
	ex := &tap.Exchange{
		Method:         "POST",
		Path:           "/api/reportserver/reports",
		RequestHeader:  http.Header{},
		RequestBody:    []byte(`{"Name":"Big","CategoryId":"c1","ReportFile":{"FileName":"a.trdp","Buffer":"` + file + `"}}`),
		Status:         200,
		ResponseHeader: http.Header{},
		ResponseBody:   []byte(`"0a1b2c3d4e5"`),
	}
	ctx := context.Background()
	b.SetBytes(int64(len(ex.RequestBody)))
	b.ReportAllocs()
	for b.Loop() {
		d.Observe(ctx, ex)
	}
}

// BenchmarkMatch: lookups over the built-in table, matched and unmatched.
func BenchmarkMatch(b *testing.B) {
	m := mustMatcher(b, "/reporting", BuiltinRules())
	paths := []struct{ method, path string }{
		{"POST", "/reporting/api/reportserver/v2/reports"},
		{"DELETE", "/Reporting/API/ReportServer/v2/reports/0a1b2c3d4e5/rev1/"},
		{"POST", "/reporting/api/reportserver/v3/data-alerts/0a1b2c3d4e5/execute"},
		{"POST", "/reporting/api/reports/clients/abc/instances/def/documents"},
		{"POST", "/reporting/Manager/Report/Save"},
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := paths[i%len(paths)]
		m.lookup(p.method, p.path)
		i++
	}
}
