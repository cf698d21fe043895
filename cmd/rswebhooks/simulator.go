package main

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/urfave/cli/v2"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

func simulatorCommand() *cli.Command {
	return &cli.Command{
		Name:  "simulator",
		Usage: "run the built-in Telerik Report Server simulator alone (for trying rswebhooks without a report server)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8083", Usage: "listener address", EnvVars: env("simulator-listen")},
			&cli.StringFlag{Name: "prefix", Usage: "virtual directory to mount under, e.g. /reporting", EnvVars: env("simulator-prefix")},
			&cli.BoolFlag{Name: "samples", Value: true, Usage: "seed a sample category, report, connection, task and alert", EnvVars: env("simulator-samples")},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "trace, debug, info, warn or error", EnvVars: env("log-level")},
			&cli.StringFlag{Name: "log-format", Value: "console", Usage: "json or console", EnvVars: env("log-format")},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			logger, err := newLogger(c.String("log-level"), c.String("log-format"), c.App.ErrWriter)
			if err != nil {
				return cli.Exit(err, 2)
			}
			sim := simulator.New(simulator.Options{Logger: logger, Prefix: c.String("prefix"), SeedSamples: c.Bool("samples")})
			ln, err := net.Listen("tcp", c.String("listen"))
			if err != nil {
				return cli.Exit(fmt.Errorf("--listen: %w", err), 1)
			}
			fmt.Fprintf(c.App.Writer, "report-server simulator on http://%s%s (users:", ln.Addr(), sim.Prefix())
			for _, u := range sim.Users() {
				fmt.Fprintf(c.App.Writer, " %s/%s", u.Username, u.Password)
			}
			fmt.Fprintln(c.App.Writer, ")")
			return ignoreCanceled(sim.Serve(c.Context, ln))
		},
	}
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
