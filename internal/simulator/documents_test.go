package simulator_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// A task set to a document size produces documents generated as they are
// served; both download routes deliver exactly DocumentContent's bytes.
func TestGeneratedDocumentsDownload(t *testing.T) {
	e := newEnv(t, simulator.Options{})
	admin := e.token("admin")
	_, rep := e.fixture()
	task, err := e.sim.CreateTask(rep, "big", "")
	if err != nil {
		t.Fatal(err)
	}
	const size = 3<<20 + 7
	if err := e.sim.SetDocumentSize(task, size); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetDocumentSize("nope", 1); err == nil {
		t.Error("SetDocumentSize of an unknown task succeeded")
	}
	x, err := e.sim.RunTask(task)
	if err != nil || len(x.DocumentIds) != 1 {
		t.Fatalf("RunTask = %+v, %v", x, err)
	}
	doc := x.DocumentIds[0]
	r, n, name, mime, err := e.sim.DocumentContent(doc)
	if err != nil || n != size || name == "" || mime != "application/pdf" {
		t.Fatalf("DocumentContent = %d %q %q %v", n, name, mime, err)
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, r); err != nil {
		t.Fatal(err)
	}

	// Raw bytes, streamed with Content-Length.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/api/reportserver/v2/documents/"+doc+"?content-disposition=attachment", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	m, err := io.Copy(got, res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || m != size || res.Header.Get("Content-Length") != strconv.Itoa(size) ||
		res.Header.Get("Content-Type") != mime || res.Header.Get("Content-Disposition") != `attachment; filename="`+name+`"` {
		t.Fatalf("GET documents: %d, %d bytes, %v, headers %v", res.StatusCode, m, err, res.Header)
	}
	if !bytes.Equal(got.Sum(nil), sum.Sum(nil)) {
		t.Fatal("GET documents: bytes differ")
	}

	// The v3 execution document: base64 inside JSON.
	r3 := e.do(admin, "GET", "/api/reportserver/v3/scheduled-tasks/"+task+"/executions/"+x.Id+"/documents/"+doc, nil)
	if r3.status != 200 {
		t.Fatalf("v3 execution document: %d %s", r3.status, r3.body)
	}
	var d simulator.ExecutionDocument
	if err := json.Unmarshal(r3.body, &d); err != nil {
		t.Fatal(err)
	}
	if s3 := sha256.Sum256(d.Data); !bytes.Equal(s3[:], sum.Sum(nil)) || d.DocumentName != name || d.MimeType != mime || d.TaskId != task {
		t.Fatalf("v3 execution document: %d bytes, %q %q %q", len(d.Data), d.DocumentName, d.MimeType, d.TaskId)
	}
	// Not found stays the Web API error.
	want(t, e.do(admin, "GET", "/api/reportserver/v2/documents/nope", nil), 404)
	want(t, e.do("", "GET", "/api/reportserver/v2/documents/"+doc, nil), 401)
}
