package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/rswebhooks/rswebhooks/tap"
)

// Bounds of a field scan: what one scanner may hold, whatever the body.
const (
	scanMaxKey   = 64      // longer keys are never wanted
	scanMaxValue = 4 << 10 // a longer value is dropped (ids, names, a one-row grid are short)
	// scanReserve is what a scanner takes from the capture budget: its key
	// and value buffers and its output (a few wanted fields), with room to spare.
	scanReserve = 24 << 10
)

type scanState uint8

const (
	scanStart    scanState = iota // before the first byte of the value
	scanKeyOrEnd                  // in the top-level object, before a key
	scanKey                       // in a key string
	scanColon                     // after a key
	scanValue                     // before a value
	scanString                    // in a top-level string value
	scanScalar                    // in a number, true, false or null
	scanNested                    // in an object or array below the top level
	scanBare                      // in a bare top-level JSON string
	scanDone                      // everything wanted was found, or the body is over
)

// fieldScanner extracts named top-level fields of a JSON body as it streams,
// holding only their values: a 5 MB report upload costs a few kilobytes. It
// stops as soon as every wanted field was seen (or the top-level object
// closed), so the rest of the body is not even looked at. Keys match ASCII
// case-insensitively (the report server's JSON is case-insensitive); a wanted
// value (string, scalar, object or array) is kept as sent unless longer than
// scanMaxValue; everything else is skipped without being held.
//
// result is a small JSON object of the fields found, with their values as
// sent ({"Name":"Sales","Id":"r1"}), or, for a body that is a bare JSON
// string (v1 create answers), that string. A body that is not JSON yields
// nothing.
type fieldScanner struct {
	fields

	state    scanState
	esc      bool // the previous byte in a string was a backslash
	depth    int  // nesting in scanNested
	nestStr  bool // in a string inside scanNested
	bom      int  // UTF-8 BOM bytes skipped so far
	key      []byte
	keyLong  bool
	capture  int // index of the wanted field whose value is being read, or -1
	bare     bool
	complete bool // the top-level value ended or everything wanted was found
}

func newFieldScanner(want []string) *fieldScanner {
	return &fieldScanner{fields: newFields(want), capture: -1, key: make([]byte, 0, scanMaxKey)}
}

// fields is what the field and form scanners share: the wanted fields, the
// value being captured, and the found fields as a JSON object.
type fields struct {
	want    []string
	found   []bool
	left    int    // wanted fields not found yet
	val     []byte // the value being captured
	valLong bool   // it grew past scanMaxValue and is dropped
	out     []byte // the found fields, `{"Name":"Sales"` (result closes it)
}

func newFields(want []string) fields {
	return fields{want: want, found: make([]bool, len(want)), left: len(want)}
}

// appendVal appends c to the value being captured, dropping a value that
// grows past scanMaxValue.
func (f *fields) appendVal(c byte) {
	if f.valLong {
		return
	}
	if len(f.val) >= scanMaxValue {
		f.valLong, f.val = true, f.val[:0]
		return
	}
	f.val = append(f.val, c)
}

// record marks wanted field i found and opens its member in out: the
// caller appends the JSON key, ':' and the value.
func (f *fields) record(i int) {
	f.found[i] = true
	f.left--
	if len(f.out) == 0 {
		f.out = append(f.out, '{')
	} else {
		f.out = append(f.out, ',')
	}
}

// done reports whether the scanner needs no more bytes.
func (s *fieldScanner) done() bool { return s.state == scanDone }

// write feeds the next bytes of the body.
func (s *fieldScanner) write(p []byte) {
	for i := 0; i < len(p) && s.state != scanDone; i++ {
		// Fast path: skip over the bulk of a value nobody wants (a base64
		// report file) to the next byte that can change the state.
		if !s.esc {
			switch {
			case s.capture >= 0:
			case s.state == scanString, s.state == scanNested && s.nestStr:
				j := stringStop(p[i:])
				if j < 0 {
					return
				}
				i += j
			case s.state == scanNested:
				j := bytes.IndexAny(p[i:], "\"{}[]")
				if j < 0 {
					return
				}
				i += j
			}
		}
		s.step(p[i])
	}
}

// stringStop returns the index of the first quote or backslash in p, or -1.
// Two IndexByte calls beat one IndexAny: they are vectorised.
func stringStop(p []byte) int {
	q := bytes.IndexByte(p, '"')
	if q < 0 {
		q = len(p)
	}
	if k := bytes.IndexByte(p[:q], '\\'); k >= 0 {
		return k
	}
	if q == len(p) {
		return -1
	}
	return q
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func (s *fieldScanner) step(c byte) {
	switch s.state {
	case scanStart:
		switch {
		case s.bom < 3 && c == "\xef\xbb\xbf"[s.bom]:
			s.bom++
		case isSpace(c):
		case c == '{':
			if s.left == 0 {
				s.finish()
				return
			}
			s.state = scanKeyOrEnd
		case c == '"':
			s.bare, s.state = true, scanBare
			s.val = append(s.val[:0], c)
		default:
			s.state = scanDone // not JSON: nothing to find
		}
	case scanKeyOrEnd:
		switch c {
		case '"':
			s.key, s.keyLong, s.esc, s.state = s.key[:0], false, false, scanKey
		case '}':
			s.finish()
		}
	case scanKey:
		switch {
		case s.esc:
			s.esc = false
		case c == '\\':
			s.esc = true
		case c == '"':
			s.state = scanColon
			return
		}
		if len(s.key) < scanMaxKey {
			s.key = append(s.key, c)
		} else {
			s.keyLong = true
		}
	case scanColon:
		if c == ':' {
			s.state = scanValue
		}
	case scanValue:
		if isSpace(c) {
			return
		}
		s.capture = s.wanted()
		s.val, s.valLong, s.esc = s.val[:0], false, false
		switch c {
		case '"':
			s.state = scanString
			s.keep(c)
		case '{', '[':
			s.state, s.depth, s.nestStr = scanNested, 1, false
			s.keep(c)
		default:
			s.state = scanScalar
			s.keep(c)
		}
	case scanString, scanBare:
		s.keep(c)
		switch {
		case s.esc:
			s.esc = false
		case c == '\\':
			s.esc = true
		case c == '"':
			if s.state == scanBare {
				s.finish()
				return
			}
			s.endValue()
		}
	case scanScalar:
		switch {
		case c == ',' || isSpace(c):
			s.endValue()
		case c == '}':
			s.endValue()
			s.finish()
		default:
			s.keep(c)
		}
	case scanNested:
		s.keep(c)
		switch {
		case s.nestStr && s.esc:
			s.esc = false
		case s.nestStr && c == '\\':
			s.esc = true
		case c == '"':
			s.nestStr = !s.nestStr
		case s.nestStr:
		case c == '{' || c == '[':
			s.depth++
		case c == '}' || c == ']':
			s.depth--
			if s.depth == 0 {
				s.endValue()
			}
		}
	}
}

// wanted returns the index of the not yet found field the current key
// names, or -1.
func (s *fieldScanner) wanted() int {
	if s.keyLong {
		return -1
	}
	for i, w := range s.want {
		if !s.found[i] && len(w) == len(s.key) && bytes.EqualFold([]byte(w), s.key) {
			return i
		}
	}
	return -1
}

// keep appends c to the value being captured, dropping a value that grows
// past scanMaxValue.
func (s *fieldScanner) keep(c byte) {
	if s.capture >= 0 || s.bare {
		s.appendVal(c)
	}
}

// endValue closes a top-level value and records it when wanted.
func (s *fieldScanner) endValue() {
	s.state = scanKeyOrEnd
	i := s.capture
	s.capture = -1
	if i < 0 || s.valLong {
		return
	}
	s.record(i)
	s.out = append(s.out, '"')
	s.out = append(s.out, s.key...)
	s.out = append(s.out, '"', ':')
	s.out = append(s.out, s.val...)
	if s.left == 0 {
		s.finish()
	}
}

func (s *fieldScanner) finish() {
	s.state, s.complete = scanDone, true
}

// result returns what the scan found (see fieldScanner) and whether the scan
// saw the whole of what it needed: false when the body ended, or the reading
// stopped, inside the top-level value before every wanted field was seen.
func (s *fieldScanner) result() ([]byte, bool) {
	switch {
	case s.bare && s.complete && !s.valLong:
		return s.val, true
	case s.bare:
		return nil, s.complete
	case len(s.out) == 0:
		if s.complete {
			return []byte("{}"), true
		}
		return nil, s.state == scanDone || s.state == scanStart
	}
	return append(s.out, '}'), s.complete
}

// bodyScanner reads what a FieldTap wants from a body as it streams.
type bodyScanner interface {
	write(p []byte)
	done() bool
	result() ([]byte, bool)
}

var (
	_ bodyScanner = (*fieldScanner)(nil)
	_ bodyScanner = (*formScanner)(nil)
)

// newScanner returns the scanner for a request body: multipart/form-data
// bodies are read as forms, everything else as JSON.
func newScanner(h http.Header, want []string) bodyScanner {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err == nil && mt == "multipart/form-data" && params["boundary"] != "" && len(params["boundary"]) <= 70 {
		return newFormScanner(params["boundary"], want)
	}
	return newFieldScanner(want)
}

const scanMaxHeaderLine = 1 << 10

type formState uint8

const (
	formContent   formState = iota // in a part's content (or the preamble)
	formDelimLine                  // after a delimiter, up to its CRLF
	formHeaders                    // in a part's header lines
	formDone
)

// formScanner reads the plain fields (parts without a filename) of a
// multipart/form-data body as it streams, keeping only the wanted ones, and
// skips file parts byte by byte without holding them. Its result is a JSON
// object of the fields found ({"Name":"Sales"}).
type formScanner struct {
	delim []byte // CRLF "--" boundary
	m     int    // bytes of delim matched so far
	fields

	state    formState
	line     []byte
	lineLong bool
	capture  int  // wanted field of the current part, or -1
	ended    bool // the closing delimiter was seen
}

func newFormScanner(boundary string, want []string) *formScanner {
	// The body starts with the first delimiter, without the CRLF in front.
	return &formScanner{delim: []byte("\r\n--" + boundary), m: 2, fields: newFields(want), capture: -1}
}

func (s *formScanner) done() bool { return s.state == formDone }

func (s *formScanner) write(p []byte) {
	for i := 0; i < len(p) && s.state != formDone; i++ {
		if s.state == formContent && s.m == 0 && s.capture < 0 {
			// Fast path: a delimiter starts with CR; skip to the next one.
			j := bytes.IndexByte(p[i:], '\r')
			if j < 0 {
				return
			}
			i += j
		}
		s.step(p[i])
	}
}

func (s *formScanner) step(c byte) {
	switch s.state {
	case formContent:
		if c == s.delim[s.m] {
			s.m++
			if s.m == len(s.delim) {
				s.m = 0
				s.endPart()
				s.state, s.line = formDelimLine, s.line[:0]
			}
			return
		}
		if s.m > 0 {
			// A partial delimiter was content after all. A boundary holds no
			// CR, so the match can only restart at this byte.
			for _, d := range s.delim[:s.m] {
				s.keep(d)
			}
			s.m = 0
			s.step(c)
			return
		}
		s.keep(c)
	case formDelimLine, formHeaders:
		if c != '\n' {
			if len(s.line) < scanMaxHeaderLine {
				s.line = append(s.line, c)
			} else {
				s.lineLong = true
			}
			return
		}
		line := bytes.TrimSuffix(s.line, []byte("\r"))
		long := s.lineLong
		s.line, s.lineLong = s.line[:0], false
		if s.state == formDelimLine {
			if bytes.HasPrefix(line, []byte("--")) {
				s.ended = true
				s.state = formDone
				return
			}
			s.state, s.capture = formHeaders, -1
			return
		}
		if len(line) == 0 {
			s.state, s.val, s.valLong = formContent, s.val[:0], false
			return
		}
		if !long {
			s.header(line)
		}
	}
}

// header looks at one part header line: Content-Disposition says whether
// the part is a wanted plain field.
func (s *formScanner) header(line []byte) {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok || !strings.EqualFold(strings.TrimSpace(string(name)), "Content-Disposition") {
		return
	}
	disp, params, err := mime.ParseMediaType(string(value))
	if err != nil || disp != "form-data" {
		return
	}
	if _, file := params["filename"]; file {
		return
	}
	for i, w := range s.want {
		if !s.found[i] && strings.EqualFold(params["name"], w) {
			s.capture = i
			return
		}
	}
}

func (s *formScanner) keep(c byte) {
	if s.capture >= 0 {
		s.appendVal(c)
	}
}

func (s *formScanner) endPart() {
	i := s.capture
	s.capture = -1
	if i < 0 || s.valLong {
		return
	}
	s.record(i)
	k, _ := json.Marshal(s.want[i])
	v, _ := json.Marshal(string(s.val))
	s.out = append(append(append(s.out, k...), ':'), v...)
	if s.left == 0 {
		s.state = formDone
	}
}

func (s *formScanner) result() ([]byte, bool) {
	complete := s.ended || s.left == 0
	if len(s.out) == 0 {
		if complete {
			return []byte("{}"), true
		}
		return nil, false
	}
	return append(s.out, '}'), complete
}

// errDecodedTooLarge means a compressed body decodes past the capture limit.
var errDecodedTooLarge = errors.New("decoded body exceeds the capture limit")

// decodeScan decodes a captured compressed body (gzip or deflate) through
// scanner s as it inflates, in small steps, stopping once s is done: the
// decoded body is never held, and its size is capped at limit, so a
// compression bomb stops there. It reports whether s saw what it needed.
func decodeScan(b []byte, encoding string, s bodyScanner, limit int64) (bool, error) {
	r, err := tap.NewReader(b, encoding)
	if err != nil {
		return false, err
	}
	var buf [4 << 10]byte
	var total int64
	for !s.done() {
		n, err := r.Read(buf[:])
		total += int64(n)
		if total > limit {
			return false, errDecodedTooLarge
		}
		s.write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, err
		}
	}
	_, complete := s.result()
	return complete, nil
}
