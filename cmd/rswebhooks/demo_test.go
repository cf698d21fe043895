package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestDemoEnvNames: every demo setting reads RSWEBHOOKS_DEMO_<FLAG>; the
// simulator listener keeps its earlier name too.
func TestDemoEnvNames(t *testing.T) {
	for _, f := range demoCommand().Flags {
		sf, ok := f.(*cli.StringFlag)
		if !ok {
			continue
		}
		want := "RSWEBHOOKS_DEMO_" + strings.ToUpper(strings.ReplaceAll(sf.Name, "-", "_"))
		if len(sf.EnvVars) == 0 || sf.EnvVars[0] != want {
			t.Errorf("--%s reads %v, want %s first", sf.Name, sf.EnvVars, want)
		}
		if sf.Name == "simulator-listen" && !slices.Contains(sf.EnvVars, "RSWEBHOOKS_SIMULATOR_LISTEN") {
			t.Errorf("--simulator-listen no longer reads RSWEBHOOKS_SIMULATOR_LISTEN: %v", sf.EnvVars)
		}
	}
}
