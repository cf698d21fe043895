package main

import (
	"strings"
	"testing"
)

func TestApplySoftMemoryLimit(t *testing.T) {
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	cases := []struct {
		name  string
		limit int64
		env   map[string]string
		want  int64
	}{
		{"default applied without GOMEMLIMIT", defaultSoftMemoryLimit, nil, defaultSoftMemoryLimit},
		{"explicit value applied", 300 << 20, nil, 300 << 20},
		{"GOMEMLIMIT wins", defaultSoftMemoryLimit, map[string]string{"GOMEMLIMIT": "512MiB"}, 0},
		{"empty GOMEMLIMIT does not count", 100 << 20, map[string]string{"GOMEMLIMIT": ""}, 100 << 20},
		{"zero turns it off", 0, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var set int64 = -1
			got, err := applySoftMemoryLimit(c.limit, env(c.env), func(n int64) int64 { set = n; return 0 })
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("applied %d, want %d", got, c.want)
			}
			if c.want == 0 && set != -1 {
				t.Fatalf("runtime limit set to %d, want untouched", set)
			}
			if c.want != 0 && set != c.want {
				t.Fatalf("runtime limit set to %d, want %d", set, c.want)
			}
		})
	}
	if _, err := applySoftMemoryLimit(-1, env(nil), func(int64) int64 { t.Fatal("set called"); return 0 }); err == nil ||
		!strings.Contains(err.Error(), "--soft-memory-limit") {
		t.Fatalf("negative limit: err = %v, want one naming --soft-memory-limit", err)
	}
}
