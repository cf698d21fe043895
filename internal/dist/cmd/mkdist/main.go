// Command mkdist builds the release artifacts into a directory: `make dist`
// runs it. See package dist.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/rswebhooks/rswebhooks/internal/dist"
)

func main() {
	out := flag.String("out", "dist", "directory for the artifacts (emptied first)")
	version := flag.String("version", "", "version to stamp (default: the git tag on HEAD, else a snapshot name)")
	targets := flag.String("targets", "", "comma-separated GOOS/GOARCH list (default: windows/amd64,linux/amd64,linux/arm64)")
	noPackages := flag.Bool("no-packages", false, "archives only: skip the .deb and the SBOM")
	flag.Parse()

	o := dist.Options{Root: ".", Out: *out, Version: *version, NoPackages: *noPackages, Log: os.Stderr}
	if *targets != "" {
		for _, t := range strings.Split(*targets, ",") {
			goos, goarch, ok := strings.Cut(strings.TrimSpace(t), "/")
			if !ok {
				fmt.Fprintf(os.Stderr, "mkdist: -targets: %q: want GOOS/GOARCH\n", t)
				os.Exit(2)
			}
			o.Targets = append(o.Targets, dist.Target{OS: goos, Arch: goarch})
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	res, err := dist.Build(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdist:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %d artifacts and SHA256SUMS in %s\n", res.Version, len(res.Artifacts), *out)
	for _, a := range res.Artifacts {
		fmt.Println("  " + a)
	}
}
