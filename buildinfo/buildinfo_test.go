package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestStampedValuesWin(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20260101000000-abcdef123456"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abcdef1234567890"}, {Key: "vcs.time", Value: "2026-01-01T00:00:00Z"},
			{Key: "GOOS", Value: "windows"}, {Key: "GOARCH", Value: "amd64"}}}
	got := fromBuildInfo("v1.2.3", "0123456789abcdef", "2026-11-30T12:00:00Z", bi)
	want := Info{Version: "v1.2.3", Commit: "0123456789abcdef", Date: "2026-11-30T12:00:00Z", GoVersion: "go1.26.8", Platform: "windows/amd64"}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestFallsBackToTheToolchainsRecord(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version string
		bi      *debug.BuildInfo
		want    Info
	}{{
		name:    "go build in a modified clone",
		version: "dev",
		bi: &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "f9ef336aa"}, {Key: "vcs.time", Value: "2026-11-29T08:00:00Z"}, {Key: "vcs.modified", Value: "true"},
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"}}},
		want: Info{Version: "dev", Commit: "f9ef336aa-dirty", Date: "2026-11-29T08:00:00Z", GoVersion: "go1.26.1", Platform: "linux/arm64"},
	}, {
		name: "go install module@version",
		bi:   &debug.BuildInfo{GoVersion: "go1.26.2", Main: debug.Module{Version: "v1.4.0"}},
		want: Info{Version: "v1.4.0", Commit: Unknown, Date: Unknown, GoVersion: "go1.26.2", Platform: runtime.GOOS + "/" + runtime.GOARCH},
	}, {
		name: "no build information at all",
		want: Info{Version: "dev", Commit: Unknown, Date: Unknown, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fromBuildInfo(tc.version, "", "", tc.bi); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestReadInATestBinary(t *testing.T) {
	i := Read("", "", "")
	if i.GoVersion != runtime.Version() || i.Version == "" || i.Commit == "" || i.Date == "" {
		t.Fatalf("Read = %+v: want every field set", i)
	}
}

func TestString(t *testing.T) {
	s := Info{Version: "v1.2.3", Commit: "abc", Date: "2026-11-30T12:00:00Z", GoVersion: "go1.26.8", Platform: "linux/amd64"}.String()
	for _, want := range []string{"rswebhooks v1.2.3\n", "commit:   abc\n", "built:    2026-11-30T12:00:00Z\n", "go:       go1.26.8 linux/amd64\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q, lacks %q", s, want)
		}
	}
}

func TestRegisterExportsBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	Register(reg, Info{Version: "v1.2.3", Commit: "abc", Date: "2026-11-30T12:00:00Z", GoVersion: "go1.26.8", Platform: "linux/arm64"})
	want := `# HELP rswebhooks_build_info Always 1; the labels say which build is running.
# TYPE rswebhooks_build_info gauge
rswebhooks_build_info{builddate="2026-11-30T12:00:00Z",goarch="arm64",goos="linux",goversion="go1.26.8",revision="abc",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "rswebhooks_build_info"); err != nil {
		t.Fatal(err)
	}
}
