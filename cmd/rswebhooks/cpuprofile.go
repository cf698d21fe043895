//go:build pprof

package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// Built with -tags pprof (benchmarks only: bench/e2e -cpuprofile), the
// binary writes a CPU profile of its whole run to the file named by
// RSWEBHOOKS_CPUPROFILE, and the allocations profile at its end to that
// name with ".allocs" appended.
func init() {
	path := os.Getenv("RSWEBHOOKS_CPUPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rswebhooks: cpu profile:", err)
		os.Exit(1)
	}
	atExit = func() {
		pprof.StopCPUProfile()
		_ = f.Close()
		if a, err := os.Create(path + ".allocs"); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(a, 0)
			_ = a.Close()
		}
	}
}
