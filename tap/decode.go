package tap

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// DefaultBodyLimit is the decoded size a tap reads of a body unless it is
// configured otherwise (1 MiB): larger bodies are not parsed.
const DefaultBodyLimit = 1 << 20

// ErrTooLarge means a (decoded) body exceeds the limit given to Decode.
var ErrTooLarge = errors.New("body exceeds the body limit")

// Encoding is the Content-Encoding body still has: h's, or "" when the
// proxy already decoded it (Exchange.RequestDecoded, ResponseDecoded).
func Encoding(h http.Header, decoded bool) string {
	if decoded {
		return ""
	}
	return h.Get("Content-Encoding")
}

// ErrUnsupportedEncoding means a Content-Encoding Decode and NewReader do
// not decode.
var ErrUnsupportedEncoding = errors.New("unsupported Content-Encoding")

// NewReader returns body decoded per contentEncoding ("" or identity, gzip,
// x-gzip, deflate; case and surrounding space ignored) as a reader, for a
// caller that consumes the body as it inflates instead of holding it; the
// caller caps what it reads (a compression bomb is only as large as it is
// read). Any other encoding is ErrUnsupportedEncoding.
func NewReader(body []byte, contentEncoding string) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
		return bytes.NewReader(body), nil
	case "gzip", "x-gzip":
		return gzip.NewReader(bytes.NewReader(body))
	case "deflate":
		return zlib.NewReader(bytes.NewReader(body))
	default:
		return nil, fmt.Errorf("%w %q", ErrUnsupportedEncoding, contentEncoding)
	}
}

// Decode returns body decoded per contentEncoding (as NewReader) with the
// decoded size capped at limit: a longer result is ErrTooLarge, never a
// silently cut body. Any other encoding, or a body that does not decode, is
// an error. It is the one decoder of tapped bodies; use it with Encoding.
func Decode(body []byte, contentEncoding string, limit int64) ([]byte, error) {
	if e := strings.ToLower(strings.TrimSpace(contentEncoding)); e == "" || e == "identity" {
		if int64(len(body)) > limit {
			return nil, ErrTooLarge
		}
		return body, nil
	}
	r, err := NewReader(body, contentEncoding)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, ErrTooLarge
	}
	return b, nil
}
