package detect

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rswebhooks/rswebhooks/tap"
)

// maxIDLen bounds an id taken from a body or a header.
const maxIDLen = 256

// errNotCaptured means the proxy's capture budget was spent: the body
// streamed through unread.
var errNotCaptured = errors.New("not captured: the capture budget was spent")

// fields are what the detector reads from a JSON body.
type fields struct {
	id, name string
	// categoryID and categoryName: a report's category, when the body
	// names it (CategoryId; the manager's upload sends categoryName).
	categoryID, categoryName string
}

// bodyFields reads the top-level Id and Name of a JSON body, or the body
// itself when it is a bare JSON string and bare is set (which then counts as
// the id: v1 creates answer that way; request bodies never count). Keys
// match case-insensitively. Non-string values never become an id or a name.
// The body is decoded per contentEncoding (gzip, deflate, identity) with the
// decoded size capped at limit; the proxy has usually done that already, as
// it scanned the body (tap.FieldTap), and then passes "". A truncated, too large, compressed-but-broken
// or non-JSON body yields an error and no fields.
func bodyFields(body []byte, truncated bool, contentEncoding string, limit int64, bare bool) (fields, error) {
	if truncated {
		return fields{}, tap.ErrTooLarge
	}
	if len(body) == 0 {
		return fields{}, nil
	}
	b, err := tap.Decode(body, contentEncoding, limit)
	if err != nil {
		return fields{}, err
	}
	return parseFields(b, bare)
}

var errNotJSON = errors.New("body is neither a JSON object nor a JSON string")

func parseFields(b []byte, bare bool) (fields, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // UTF-8 BOM, as .NET may send
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return fields{}, nil
	}
	switch b[0] {
	case '"':
		if !bare {
			return fields{}, errors.New("a bare JSON string is not a request body the detector reads")
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fields{}, err
		}
		if !validIDValue(s) {
			return fields{}, errors.New("JSON string is not a plausible id")
		}
		return fields{id: s}, nil
	case '{':
		// encoding/json matches struct fields case-insensitively.
		var v struct {
			ID           json.RawMessage   `json:"Id"`
			Name         json.RawMessage   `json:"Name"`
			ReportName   json.RawMessage   `json:"ReportName"`
			CategoryID   json.RawMessage   `json:"CategoryId"`
			CategoryName json.RawMessage   `json:"CategoryName"`
			Data         []json.RawMessage `json:"Data"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return fields{}, err
		}
		var f fields
		if s, ok := jsonString(v.ID); ok && validIDValue(s) {
			f.id = s
		}
		if s, ok := jsonString(v.Name); ok && validName(s) {
			f.name = s
		} else if s, ok := jsonString(v.ReportName); ok && validName(s) {
			f.name = s
		}
		if s, ok := jsonString(v.CategoryID); ok && validIDValue(s) {
			f.categoryID = s
		}
		if s, ok := jsonString(v.CategoryName); ok && validName(s) {
			f.categoryName = s
		}
		// A grid answer ({Data: [{Id, Name, …}], Total}) of one row: that
		// row is the resource.
		if f.id == "" && f.name == "" && len(v.Data) == 1 && len(bytes.TrimSpace(v.Data[0])) > 0 && bytes.TrimSpace(v.Data[0])[0] == '{' {
			return parseFields(v.Data[0], false)
		}
		return f, nil
	}
	return fields{}, errNotJSON
}

func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// validIDValue accepts what can plausibly be an opaque report-server id: 1 to
// maxIDLen bytes of valid UTF-8, no surrounding space, no control characters.
func validIDValue(s string) bool {
	if s == "" || len(s) > maxIDLen || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func validName(s string) bool {
	if s == "" || len(s) > 1024 || !utf8.ValidString(s) {
		return false
	}
	return true
}

// locationID returns the last non-empty path segment of a Location header.
func locationID(h http.Header) (string, bool) {
	loc := h.Get("Location")
	if loc == "" {
		return "", false
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", false
	}
	p := strings.TrimRight(u.EscapedPath(), "/")
	i := strings.LastIndexByte(p, '/')
	seg, err := url.PathUnescape(p[i+1:])
	if err != nil || !validIDValue(seg) {
		return "", false
	}
	return seg, true
}
