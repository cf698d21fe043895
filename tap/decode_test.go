package tap

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"net/http"
	"testing"
)

func TestDecode(t *testing.T) {
	plain := []byte(`{"Id":"r1","Name":"Sales"}`)
	var gz, zl bytes.Buffer
	for _, w := range []io.WriteCloser{gzip.NewWriter(&gz), zlib.NewWriter(&zl)} {
		if _, err := w.Write(plain); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, enc string
		body      []byte
		limit     int64
		want      []byte
		err       error
	}{
		{"identity", "", plain, 1 << 10, plain, nil},
		{"identity named", " Identity ", plain, 1 << 10, plain, nil},
		{"gzip", "gzip", gz.Bytes(), 1 << 10, plain, nil},
		{"x-gzip", "X-GZIP", gz.Bytes(), 1 << 10, plain, nil},
		{"deflate", "deflate", zl.Bytes(), 1 << 10, plain, nil},
		{"plain over the limit", "", plain, 4, nil, ErrTooLarge},
		{"gzip decoded over the limit", "gzip", gz.Bytes(), 4, nil, ErrTooLarge},
		{"deflate decoded over the limit", "deflate", zl.Bytes(), 4, nil, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.body, tc.enc, tc.limit)
			if !errors.Is(err, tc.err) || !bytes.Equal(got, tc.want) {
				t.Fatalf("Decode = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
	if _, err := Decode(plain, "gzip", 1<<10); err == nil {
		t.Error("a plain body labelled gzip decoded without error")
	}
	if _, err := Decode(plain, "br", 1<<10); err == nil {
		t.Error("an unsupported encoding decoded without error")
	}
}

func TestEncoding(t *testing.T) {
	h := http.Header{"Content-Encoding": {"gzip"}}
	if got := Encoding(h, false); got != "gzip" {
		t.Errorf("Encoding(gzip, not decoded) = %q", got)
	}
	if got := Encoding(h, true); got != "" {
		t.Errorf("Encoding(gzip, decoded) = %q, want empty", got)
	}
}

func TestNewReader(t *testing.T) {
	plain := []byte(`{"Id":"r1"}`)
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(plain)
	gw.Close()
	for _, enc := range []string{"", "identity", "gzip"} {
		body := plain
		if enc == "gzip" {
			body = gz.Bytes()
		}
		r, err := NewReader(body, enc)
		if err != nil {
			t.Fatalf("NewReader(%q): %v", enc, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("NewReader(%q) read %q, %v; want %q", enc, got, err, plain)
		}
	}
	if _, err := NewReader(plain, "br"); !errors.Is(err, ErrUnsupportedEncoding) {
		t.Errorf("NewReader(br) error = %v, want ErrUnsupportedEncoding", err)
	}
}
