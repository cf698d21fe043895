package reportserver

import "testing"

func TestParseBool(t *testing.T) {
	for in, want := range map[string][2]bool{
		`true`: {true, true}, `false`: {false, true}, `"true"`: {true, true}, `"False"`: {false, true},
		`[true]`: {true, true}, `["true"]`: {true, true}, `["false"]`: {false, true},
		`["sample string 1","sample string 2"]`: {false, false}, `{}`: {false, false}, `1`: {false, false}, `x`: {false, false},
	} {
		v, ok := parseBool([]byte(in))
		if v != want[0] || ok != want[1] {
			t.Errorf("parseBool(%s) = %v,%v want %v", in, v, ok, want)
		}
	}
}
