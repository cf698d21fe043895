package winsvc

import (
	"strings"
	"testing"
)

func TestServiceConfigValidate(t *testing.T) {
	ok := ServiceConfig{Exe: `C:\Program Files\rswebhooks\rswebhooks.exe`, Args: []string{"serve", "--upstream", "http://127.0.0.1:83"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if ok.Name != DefaultName || ok.DisplayName != DefaultName || ok.Description == "" {
		t.Fatalf("defaults not filled: %+v", ok)
	}
	for _, tc := range []struct {
		cfg  ServiceConfig
		want string
	}{
		{ServiceConfig{Args: []string{"serve"}}, "service executable: is required"},
		{ServiceConfig{Exe: "rswebhooks.exe", Args: []string{"serve"}}, "must be an absolute path"},
		{ServiceConfig{Exe: `C:\r.exe`}, `must start with "serve"`},
		{ServiceConfig{Exe: `C:\r.exe`, Args: []string{"demo"}}, `must start with "serve"`},
		{ServiceConfig{Name: `a\b`, Exe: `C:\r.exe`, Args: []string{"serve"}}, "service name"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
