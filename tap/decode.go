package tap

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
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

// Decode returns body decoded per contentEncoding ("" or identity, gzip,
// x-gzip, deflate; case and surrounding space ignored) with the decoded size
// capped at limit: a longer result is ErrTooLarge, never a silently cut
// body. Any other encoding, or a body that does not decode, is an error.
// It is the one decoder of tapped bodies; use it with Encoding.
func Decode(body []byte, contentEncoding string, limit int64) ([]byte, error) {
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
		if int64(len(body)) > limit {
			return nil, ErrTooLarge
		}
		return body, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		r = zr
	case "deflate":
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		r = zr
	default:
		return nil, errors.New("unsupported Content-Encoding " + contentEncoding)
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
