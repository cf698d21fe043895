package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/rswebhooks/rswebhooks/internal/testutil"
	"github.com/rswebhooks/rswebhooks/tap"
)

// feed writes body to a scanner in chunks of n bytes (every split point is
// exercised by the n = 1 runs).
func feed(s bodyScanner, body string, n int) {
	for len(body) > 0 && !s.done() {
		k := min(n, len(body))
		s.write([]byte(body[:k]))
		body = body[k:]
	}
}

func TestFieldScanner(t *testing.T) {
	big := strings.Repeat("QUJD", 1<<18) // 1 MiB of base64
	cases := []struct {
		name, body string
		want       string
		complete   bool
	}{
		{"both fields", `{"Name":"Sales","Id":"r1"}`, `{"Name":"Sales","Id":"r1"}`, true},
		{"any case, spaces, BOM", "\xef\xbb\xbf \n{ \"name\" : \"Sales\" , \"ID\":\"r1\" }", `{"name":"Sales","ID":"r1"}`, true},
		{"nested Name is not the top-level one", `{"ReportFile":{"Name":"inner","Buffer":"` + big + `"},"Name":"outer"}`, `{"Name":"outer"}`, true},
		{"stops at the last wanted field", `{"Id":"r1","Name":"n","Rest":` + big, `{"Id":"r1","Name":"n"}`, true},
		{"escaped quotes and braces in strings", `{"Description":"a \"}\" {[","Tags":["x\"]"],"Name":"q\"uote"}`, `{"Name":"q\"uote"}`, true},
		{"non-string values kept as sent", `{"Id":42,"Name":null}`, `{"Id":42,"Name":null}`, true},
		{"wanted object and array kept", `{"Id":{"x":"}"},"Data":[{"Id":"d1"}],"Name":"n"}`, `{"Id":{"x":"}"},"Data":[{"Id":"d1"}],"Name":"n"}`, true},
		{"unwanted nested skipped", `{"Rows":[{"Id":"no"},"]"],"Name":"n"}`, `{"Name":"n"}`, true},
		{"value too long dropped", `{"Name":"` + strings.Repeat("n", scanMaxValue) + `","Id":"r1"}`, `{"Id":"r1"}`, true},
		{"no wanted field", `{"Other":"x"}`, `{}`, true},
		{"bare string (v1 answer)", ` "r-1" `, `"r-1"`, true},
		{"body ends early", `{"Name":"a","Other":"b`, `{"Name":"a"}`, false},
		{"not JSON", `<html>"r1"</html>`, ``, true},
		{"empty", ``, ``, true},
	}
	for _, tc := range cases {
		for _, n := range []int{1, 7, 1 << 20} {
			want := []string{"Id", "Name"}
			if strings.Contains(tc.name, "array") {
				want = append(want, "Data")
			}
			s := newFieldScanner(want)
			feed(s, tc.body, n)
			got, complete := s.result()
			if string(got) != tc.want || complete != tc.complete {
				t.Errorf("%s (chunks of %d): got %q complete %v, want %q %v", tc.name, n, got, complete, tc.want, tc.complete)
			}
		}
	}
}

func TestFormScanner(t *testing.T) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("Description", "has --"+mw.Boundary()[:10]+" inside")
	fw, _ := mw.CreateFormFile("ReportFile", "Name.trdp")
	_, _ = fw.Write(bytes.Repeat([]byte("\r\n--x"), 1<<18))
	_ = mw.WriteField("name", "Sales \"Q1\"")
	_ = mw.WriteField("CategoryId", "c1")
	_ = mw.Close()
	h := http.Header{"Content-Type": {mw.FormDataContentType()}}
	for _, n := range []int{1, 5, 1 << 20} {
		s := newScanner(h, []string{"Id", "Name"})
		if _, ok := s.(*formScanner); !ok {
			t.Fatalf("scanner for %s is %T", mw.FormDataContentType(), s)
		}
		feed(s, b.String(), n)
		got, complete := s.result()
		if string(got) != `{"Name":"Sales \"Q1\""}` || !complete {
			t.Errorf("chunks of %d: got %q complete %v", n, got, complete)
		}
	}
	s := newScanner(h, []string{"Id", "Name"})
	feed(s, b.String()[:100], 100)
	if got, complete := s.result(); got != nil || complete {
		t.Errorf("cut short: got %q complete %v", got, complete)
	}
}

// fieldTap is a recordingTap that asks for fields.
type fieldTap struct {
	*recordingTap
	fields []string
}

func (f fieldTap) Fields(string, string) []string { return f.fields }

// TestFieldTapScansUploads: a FieldTap's bodies are scanned, not copied: a
// 5 MiB upload (JSON or multipart) holds a scanner's few kilobytes of the
// budget, not the body, whatever the capture limit; the upstream and the
// client still get every byte.
func TestFieldTapScansUploads(t *testing.T) {
	file := strings.Repeat("QUJD", 5<<18) // 5 MiB
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"Id":"r1","Name":"Big","Size":`+strings.Repeat(" ", 100)+`"`+strings.Repeat("x", len(in)/1000)+`"}`)
	}))
	var peak float64
	var px *testProxy
	rec := &recordingTap{}
	rt := fieldTap{recordingTap: rec, fields: []string{"Id", "Name"}}
	obs := tap.TapFunc{WantsFn: rt.Wants, ObserveFn: func(ctx context.Context, ex *tap.Exchange) {
		peak = max(peak, metric(t, px.reg, "rswebhooks_capture_bytes", nil))
		rt.Observe(ctx, ex)
	}}
	px = newTestProxy(t, up.url(t), func(o *Options) {
		o.Tap = struct {
			tap.TapFunc
			fieldTap
		}{obs, rt}
		o.CaptureBudget = 64 << 10
	})

	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("Name", "Big")
	fw, _ := mw.CreateFormFile("ReportFile", "big.trdp")
	_, _ = io.WriteString(fw, file)
	_ = mw.Close()

	for _, tc := range []struct{ name, ct, body string }{
		{"json", "application/json", `{"Name":"Big","ReportFile":{"FileName":"a.trdp","Buffer":"` + file + `"}}`},
		{"multipart", mw.FormDataContentType(), mp.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := newReq(t, http.MethodPost, px.URL+"/api/reportserver/v3/reports", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ct)
			resp, b := testutil.Do(t, client(), req)
			if resp.StatusCode != 200 || !strings.HasPrefix(string(b), `{"Id":"r1","Name":"Big"`) || len(b) < len(tc.body)/1000 {
				t.Fatalf("client got %d, %d bytes", resp.StatusCode, len(b))
			}
			exs := rec.exchanges()
			ex := exs[len(exs)-1]
			if string(ex.RequestBody) != `{"Name":"Big"}` || ex.RequestTruncated || ex.RequestSkipped != "" ||
				string(ex.ResponseBody) != `{"Id":"r1","Name":"Big"}` || ex.ResponseTruncated || ex.ResponseSkipped != "" {
				t.Fatalf("exchange: request %q %v %q, response %q %v %q", ex.RequestBody, ex.RequestTruncated, ex.RequestSkipped,
					ex.ResponseBody, ex.ResponseTruncated, ex.ResponseSkipped)
			}
			if peak > 3*scanReserve+captureChunk*2 {
				t.Fatalf("capture held %v bytes for a %d-byte upload", peak, len(tc.body))
			}
		})
	}
}

// BenchmarkScanUpload is the scanner's cost per byte of a report upload.
func BenchmarkScanUpload(b *testing.B) {
	body := []byte(`{"Name":"Big","ReportFile":{"FileName":"a.trdp","Buffer":"` + strings.Repeat("QUJD", 1<<18) + `"},"Id":"r1"}`)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		s := newFieldScanner([]string{"Id", "Name"})
		for p := body; len(p) > 0; p = p[min(len(p), 32<<10):] {
			s.write(p[:min(len(p), 32<<10)])
		}
		if got, _ := s.result(); string(got) != `{"Name":"Big","Id":"r1"}` {
			b.Fatal(string(got))
		}
	}
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = io.WriteString(zw, s)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestFieldTapInflatesCompressedBodies: compressed bodies are inflated
// through the scan (never held decoded), a bomb stops at the capture limit,
// and an unknown encoding is offered as sent.
func TestFieldTapInflatesCompressedBodies(t *testing.T) {
	bomb := gzipped(t, `{"Name":"`+strings.Repeat("0", 8<<20)+`"}`)
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/bomb":
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(bomb)
		case "/br":
			w.Header().Set("Content-Encoding", "br")
			_, _ = io.WriteString(w, "not really brotli")
		default:
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(gzipped(t, `{"Other":[1,{"Id":"no"}],"Id":"r9","Name":"Zipped"}`))
		}
	}))
	rec := &recordingTap{}
	px := newTestProxy(t, up.url(t), func(o *Options) {
		o.Tap = fieldTap{recordingTap: rec, fields: []string{"Id", "Name"}}
		o.CaptureLimit = 1 << 20
	})
	c := client()

	req := newReq(t, http.MethodPost, px.URL+"/ok", bytes.NewReader(gzipped(t, `{"Name":"Req"}`)))
	req.Header.Set("Content-Encoding", "gzip")
	testutil.Do(t, c, req)
	ex := rec.exchanges()[0]
	if string(ex.RequestBody) != `{"Name":"Req"}` || !ex.RequestDecoded || ex.RequestTruncated ||
		string(ex.ResponseBody) != `{"Id":"r9","Name":"Zipped"}` || !ex.ResponseDecoded || ex.ResponseTruncated {
		t.Fatalf("exchange: request %q decoded %v, response %q decoded %v truncated %v",
			ex.RequestBody, ex.RequestDecoded, ex.ResponseBody, ex.ResponseDecoded, ex.ResponseTruncated)
	}

	resp, b := testutil.Do(t, c, newReq(t, http.MethodPost, px.URL+"/bomb", strings.NewReader("x")))
	ex = rec.exchanges()[1]
	if !bytes.Equal(b, bomb) || resp.StatusCode != 200 || ex.ResponseBody != nil || !ex.ResponseTruncated {
		t.Fatalf("bomb: client got %d bytes (want %d), exchange body %q truncated %v", len(b), len(bomb), ex.ResponseBody, ex.ResponseTruncated)
	}

	testutil.Do(t, c, newReq(t, http.MethodPost, px.URL+"/br", strings.NewReader("x")))
	ex = rec.exchanges()[2]
	if string(ex.ResponseBody) != "not really brotli" || ex.ResponseDecoded {
		t.Fatalf("br: exchange body %q decoded %v", ex.ResponseBody, ex.ResponseDecoded)
	}
	if got := metric(t, px.reg, "rswebhooks_capture_bytes", nil); got != 0 {
		t.Fatalf("capture_bytes = %v after the requests, want 0", got)
	}
}
