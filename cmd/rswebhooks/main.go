// Command rswebhooks is a sidecar reverse proxy that adds webhooks to an
// unmodified Telerik Report Server.
//
// This package is wiring only: it turns flags and environment variables into
// options structs and calls the packages that do the work. Signals are handled
// here and nowhere else, and only main picks the exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// atExit runs before main returns or exits (a CPU profile's end in builds
// with -tags pprof).
var atExit = func() {}

func main() {
	defer atExit()
	// Under the Windows service control manager, the SCM's stop request
	// cancels the context instead of a signal.
	ran, err := runAsServiceIfNeeded(func(ctx context.Context, stdout, stderr io.Writer) error {
		return newApp(stdout, stderr).RunContext(ctx, os.Args)
	})
	if !ran {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = newApp(os.Stdout, os.Stderr).RunContext(ctx, os.Args)
		stop()
	}
	if err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "rswebhooks:", msg)
			}
			atExit()
			os.Exit(ec.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "rswebhooks:", err)
		atExit()
		os.Exit(1)
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "rswebhooks",
		Usage:     "webhooks for an unmodified Telerik Report Server, as a sidecar reverse proxy",
		Version:   build().Version,
		Writer:    stdout,
		ErrWriter: stderr,
		// --version prints what `rswebhooks version` prints (urfave/cli's
		// own flag would print the version alone, through a package-level
		// printer).
		HideVersion: true,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version, commit, build date and Go version"},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("version") {
				return printVersion(c.App.Writer)
			}
			if c.Args().Present() {
				return cli.Exit(fmt.Sprintf("unknown command %q (rswebhooks --help lists them)", c.Args().First()), 2)
			}
			return cli.ShowAppHelp(c)
		},
		// Errors come back to main, which alone prints them and picks the
		// exit code.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			serveCommand(),
			demoCommand(),
			simulatorCommand(),
			receiverCommand(),
			verifyCommand(),
			webhooksCommand(),
			deliveriesCommand(),
			rulesCommand(),
			serviceCommand(),
			healthcheckCommand(),
			storeCommand(),
			versionCommand(),
		},
	}
}

// env returns the environment variable name for a flag: RSWEBHOOKS_<FLAG_NAME>.
func env(flag string) []string {
	b := []byte("RSWEBHOOKS_" + flag)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return []string{string(b)}
}

// usageError turns a flag that does not parse (e.g. --capture-limit 1x) into
// one line naming it and exit status 2, like every other bad setting.
func usageError(_ *cli.Context, err error, _ bool) error {
	return cli.Exit(err, 2)
}
