package reportserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

func TestOpenDocumentAndInfo(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	c := simClient(t, sim)
	ctx := context.Background()
	tasks, err := sim.SeedTasks(1, "")
	if err != nil {
		t.Fatal(err)
	}
	x, err := sim.RunTask(tasks[0])
	if err != nil || len(x.DocumentIds) != 1 {
		t.Fatalf("RunTask = %+v, %v", x, err)
	}
	id := x.DocumentIds[0]
	r, n, name, mime, _ := sim.DocumentContent(id)
	want, _ := io.ReadAll(r)
	for _, v := range []string{APIv2, APIv3} {
		d, err := c.OpenDocument(ctx, v, id)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		got, err := io.ReadAll(d.Body)
		d.Body.Close()
		if err != nil || !bytes.Equal(got, want) || d.Length != n || d.Name != name || d.MimeType != mime {
			t.Fatalf("%s: %q (%d) %q %q, want %q (%d) %q %q", v, got, d.Length, d.Name, d.MimeType, want, n, name, mime)
		}
		info, err := c.DocumentInfo(ctx, v, "tasks", tasks[0], x.Id, id)
		if err != nil || info.ID != id || info.Name != name || info.MimeType != mime || info.Format != "PDF" {
			t.Fatalf("%s: DocumentInfo = %+v, %v", v, info, err)
		}
	}
	if _, err := c.OpenDocument(ctx, APIv2, "nosuchdoc00"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown document: %v, want ErrNotFound", err)
	}
	if _, err := c.OpenDocument(ctx, "v9", id); err == nil {
		t.Error("API version v9 accepted")
	}
}
