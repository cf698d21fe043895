package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rswebhooks/rswebhooks/store"
)

// storeCommand is `rswebhooks store check|repair`: offline tools for the
// data directory.
func storeCommand() *cli.Command {
	dir := &cli.StringFlag{Name: "data-dir", Usage: "Badger data directory", Value: "./data", EnvVars: env("data-dir")}
	return &cli.Command{
		Name:  "store",
		Usage: "check or repair the data directory (offline: stop the daemon or let it run degraded)",
		Subcommands: []*cli.Command{
			{Name: "check", Usage: "open the store, verify its checksums and say what it holds; exit 1 if it cannot be opened",
				Flags: []cli.Flag{dir}, OnUsageError: usageError, Action: storeCheck},
			{Name: "repair", Usage: "when the store cannot be opened: export the registrations it still holds, move the directory aside and start a new store with them",
				Flags: []cli.Flag{dir}, OnUsageError: usageError, Action: storeRepair},
		},
	}
}

func storeCheck(c *cli.Context) error {
	d := c.String("data-dir")
	r, err := store.Check(store.Options{Dir: d})
	if err != nil {
		hint := `run "rswebhooks store repair --data-dir ` + d + `"`
		if errors.Is(err, store.ErrLocked) {
			hint = "a running rswebhooks holds it; that is fine"
		}
		return cli.Exit(fmt.Sprintf("store %s: NOT OK: %v\n%s", d, err, hint), 1)
	}
	fmt.Fprintf(c.App.Writer, "store %s: ok\nwebhooks: %d active, %d paused\npending deliveries: %d\nsize: %d bytes (lsm), %d bytes (value log)\n",
		d, r.ActiveWebhooks, r.PausedWebhooks, r.PendingDeliveries, r.LSMBytes, r.VlogBytes)
	return nil
}

func storeRepair(c *cli.Context) error {
	d := c.String("data-dir")
	r, err := store.Repair(store.Options{Dir: d}, time.Now())
	if errors.Is(err, store.ErrLocked) {
		return cli.Exit(fmt.Sprintf("store %s is in use by a running rswebhooks (it opened, so it needs no repair): %v", d, err), 1)
	}
	if r != nil && !r.Healthy {
		w := c.App.Writer
		fmt.Fprintf(w, "store %s could not be opened; the damaged directory is now %s\n", d, r.Aside)
		fmt.Fprintf(w, "registrations exported to %s\n", r.Export)
		fmt.Fprintf(w, "restored %d registrations in a new store in %s: %s\n", len(r.Restored), d, strings.Join(r.Restored, ", "))
		fmt.Fprintln(w, "not carried over: events and deliveries (pending ones are not sent)")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "could not restore: %s\n", p)
		}
	}
	if err != nil {
		return cli.Exit(fmt.Sprintf("store repair: %v", err), 1)
	}
	if r.Healthy {
		fmt.Fprintf(c.App.Writer, "store %s opens: nothing to repair (see rswebhooks store check)\n", d)
		return nil
	}
	if len(r.Problems) > 0 {
		return cli.Exit(fmt.Sprintf("store repair: %d problems (listed above)", len(r.Problems)), 1)
	}
	return nil
}
