package main

import (
	"github.com/urfave/cli/v2"

	"github.com/rswebhooks/rswebhooks/internal/demo"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run the simulator, the proxy and a receiver; register a webhook, make calls, print each verified delivery; keep serving until Ctrl-C",
		Flags: []cli.Flag{
			// Every demo setting reads RSWEBHOOKS_DEMO_<FLAG>; the simulator's
			// listener also still reads RSWEBHOOKS_SIMULATOR_LISTEN, its
			// earlier name.
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "proxy listener", EnvVars: env("demo-listen")},
			&cli.StringFlag{Name: "admin-listen", Value: "127.0.0.1:8081", Usage: "admin listener (API, the Webhooks page, /metrics)", EnvVars: env("demo-admin-listen")},
			&cli.StringFlag{Name: "simulator-listen", Value: "127.0.0.1:8083", Usage: "simulator listener", EnvVars: append(env("demo-simulator-listen"), env("simulator-listen")...)},
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "daemon log level", EnvVars: env("demo-log-level")},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			logger, err := newLogger(c.String("log-level"), "console", c.App.ErrWriter)
			if err != nil {
				return cli.Exit(err, 2)
			}
			return demo.Run(c.Context, demo.Options{
				Listen:      c.String("listen"),
				AdminListen: c.String("admin-listen"),
				SimListen:   c.String("simulator-listen"),
				Out:         c.App.Writer,
				Logger:      logger,
				Version:     build().Version,
			})
		},
	}
}
