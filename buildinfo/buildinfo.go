// Package buildinfo says which build of rswebhooks is running: its version,
// the commit it was built from, when, and with which Go. Release builds stamp
// these with -ldflags; any other build (go build, go install) falls back to
// what the Go toolchain recorded in the binary.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Info describes one build. Every field is set by Read; Unknown stands in
// for what neither the stamp nor the toolchain knows.
type Info struct {
	// Version is the release (a git tag such as v1.2.0), a snapshot name, or
	// the module version the toolchain derived ("(devel)" becomes "dev").
	Version string `json:"version"`
	// Commit is the full git commit hash, with "-dirty" when the work tree
	// had changes.
	Commit string `json:"commit"`
	// Date is the build date in RFC 3339, UTC. Release builds use the
	// commit's time so a rebuild is byte-identical.
	Date string `json:"date"`
	// GoVersion is the Go toolchain that built the binary (go1.26.8).
	GoVersion string `json:"goVersion"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
}

// Unknown is the value of a field nothing recorded.
const Unknown = "unknown"

// Read combines the values stamped at link time (empty when not stamped;
// version "dev" counts as not stamped) with the build information the Go
// toolchain embeds.
func Read(version, commit, date string) Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(version, commit, date, bi)
}

func fromBuildInfo(version, commit, date string, bi *debug.BuildInfo) Info {
	i := Info{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if i.Version == "" || i.Version == "dev" {
			if v := bi.Main.Version; v != "" && v != "(devel)" {
				i.Version = v
			}
		}
		if i.Commit == "" && settings["vcs.revision"] != "" {
			i.Commit = settings["vcs.revision"]
			if settings["vcs.modified"] == "true" {
				i.Commit += "-dirty"
			}
		}
		if i.Date == "" {
			i.Date = settings["vcs.time"]
		}
		if bi.GoVersion != "" {
			i.GoVersion = bi.GoVersion
		}
		if goos, goarch := settings["GOOS"], settings["GOARCH"]; goos != "" && goarch != "" {
			i.Platform = goos + "/" + goarch
		}
	}
	if i.Version == "" {
		i.Version = "dev"
	}
	if i.Commit == "" {
		i.Commit = Unknown
	}
	if i.Date == "" {
		i.Date = Unknown
	}
	return i
}

// String is the multi-line text `rswebhooks version` prints.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rswebhooks %s\n", i.Version)
	fmt.Fprintf(&b, "  commit:   %s\n", i.Commit)
	fmt.Fprintf(&b, "  built:    %s\n", i.Date)
	fmt.Fprintf(&b, "  go:       %s %s\n", i.GoVersion, i.Platform)
	return b.String()
}

// Register exports rswebhooks_build_info: a gauge that is always 1, whose
// labels carry the build (the Prometheus convention for build information).
func Register(reg prometheus.Registerer, i Info) {
	goos, goarch, _ := strings.Cut(i.Platform, "/")
	promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "rswebhooks_build_info",
		Help: "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{
			"version":   i.Version,
			"revision":  i.Commit,
			"builddate": i.Date,
			"goversion": i.GoVersion,
			"goos":      goos,
			"goarch":    goarch,
		},
	}).Set(1)
}
