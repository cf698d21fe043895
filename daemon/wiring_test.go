package daemon

import (
	"slices"
	"testing"

	"github.com/rswebhooks/rswebhooks/tap"
)

type fieldsTap struct {
	tap.TapFunc
	fields []string
}

func (f fieldsTap) Fields(string, string) []string { return f.fields }

// TestTapsFields: the combined tap asks for the fields of the taps that want
// the exchange, and for whole bodies as soon as one of them is a plain Tap.
func TestTapsFields(t *testing.T) {
	want := func(p string) tap.TapFunc {
		return tap.TapFunc{WantsFn: func(_, path string) bool { return path == p }}
	}
	det := fieldsTap{TapFunc: want("/r"), fields: []string{"Id", "Name"}}
	quiet := fieldsTap{TapFunc: want("/q"), fields: []string{}}
	raw := want("/Token")
	ts := taps{raw, det, quiet}
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/r", []string{"Id", "Name"}},
		{"/q", []string{}},
		{"/Token", nil},
		{"/none", []string{}},
	} {
		got := ts.Fields("POST", tc.path)
		if !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("Fields(%s) = %#v, want %#v", tc.path, got, tc.want)
		}
	}
}
