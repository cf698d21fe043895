package reportserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// DocumentStream is an open document download: read Body to the end (or
// not) and close it.
type DocumentStream struct {
	Body io.ReadCloser
	// Length is the Content-Length, or -1 when the server sent none.
	Length int64
	// MimeType is the answer's Content-Type; Name the file name of its
	// Content-Disposition ("" when none).
	MimeType, Name string
}

// documentPath is GET {v}/documents/{documentId}: the document's bytes
// [C S1, S5 for rendered documents]. That an execution's DocumentIds are
// served by this route too is [I]: the report server keeps both in one
// document store and the v1/v2 references name no other download. (The v3
// execution-document route answers JSON with the bytes in base64 — usable
// but 4/3 the size and not streamable without a JSON scanner.)
func documentPath(version, id string) (string, error) {
	if id == "" {
		return "", errors.New("reportserver: document id is required")
	}
	switch version {
	case APIv2, APIv3:
		return "api/reportserver/" + version + "/documents/" + url.PathEscape(id), nil
	}
	return "", fmt.Errorf("reportserver: API version must be %q or %q, got %q", APIv2, APIv3, version)
}

// OpenDocument starts downloading document id with the service account and
// returns as soon as the headers arrived; the body streams from the report
// server as it is read. The request has no overall timeout (a large
// document takes as long as it takes): cancel ctx to stop it.
// ErrNotFound when the server does not know the document.
func (c *Client) OpenDocument(ctx context.Context, version, id string) (*DocumentStream, error) {
	if !c.Configured() {
		return nil, ErrNotConfigured
	}
	rel, err := documentPath(version, id)
	if err != nil {
		return nil, err
	}
	op := "GET " + rel
	hc := &http.Client{Transport: c.http.Transport, CheckRedirect: c.http.CheckRedirect, Jar: c.http.Jar}
	for try := 0; ; try++ {
		tok, err := c.serviceToken(ctx)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(rel), nil)
		if err != nil {
			return nil, fmt.Errorf("reportserver: %s: %w", op, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("reportserver: %s: %w", op, err)
		}
		c.log.Debug().Str("method", http.MethodGet).Str("path", rel).Int("status", resp.StatusCode).Msg("report server call")
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			d := &DocumentStream{Body: resp.Body, Length: resp.ContentLength, MimeType: resp.Header.Get("Content-Type")}
			if _, p, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
				d.Name = path.Base(strings.ReplaceAll(p["filename"], `\`, "/"))
				if d.Name == "." || d.Name == "/" {
					d.Name = ""
				}
			}
			return d, nil
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusUnauthorized && try == 0 && c.static == "":
			c.dropToken(tok)
			continue
		case resp.StatusCode == http.StatusNotFound:
			return nil, fmt.Errorf("reportserver: %s: %w", op, ErrNotFound)
		default:
			return nil, &StatusError{Op: op, StatusCode: resp.StatusCode, Body: snippet(body)}
		}
	}
}

// documentInfoTimeout bounds DocumentInfo (it waits for headers only).
const documentInfoTimeout = 30 * time.Second

// DocumentInfo describes a document of an execution (name, format, MIME
// type) from the headers of its download, which it then abandons. The
// execution's task or alert do not matter for this route.
func (c *Client) DocumentInfo(ctx context.Context, version, _, _, _, id string) (rswebhooks.Document, error) {
	ctx, cancel := context.WithTimeout(ctx, documentInfoTimeout)
	defer cancel()
	d, err := c.OpenDocument(ctx, version, id)
	if err != nil {
		return rswebhooks.Document{}, err
	}
	d.Body.Close() // headers only; closing drops the connection mid-body
	doc := rswebhooks.Document{ID: id, Name: d.Name, MimeType: d.MimeType}
	if ext := path.Ext(d.Name); len(ext) > 1 {
		doc.Format = strings.ToUpper(ext[1:])
	}
	return doc, nil
}
