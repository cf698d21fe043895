package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/rswebhooks/rswebhooks/winsvc"
)

// serviceCommand is `rswebhooks service install|uninstall|start|stop`: the
// Windows service registration. Elsewhere every subcommand fails with a
// pointer to deploy/systemd.
func serviceCommand() *cli.Command {
	name := func() cli.Flag {
		return &cli.StringFlag{Name: "name", Usage: "service name (also the event log source)", Value: winsvc.DefaultName}
	}
	return &cli.Command{
		Name:  "service",
		Usage: "install, uninstall, start or stop rswebhooks as a Windows service",
		Subcommands: []*cli.Command{
			{
				Name:      "install",
				Usage:     "register the service; the arguments after -- are the serve flags it runs with",
				ArgsUsage: "-- [serve] --upstream http://127.0.0.1:83 --listen :80 --data-dir C:\\ProgramData\\rswebhooks ...",
				Flags: []cli.Flag{
					name(),
					&cli.StringFlag{Name: "display-name", Usage: "name shown in services.msc (default: the service name)"},
					&cli.BoolFlag{Name: "manual", Usage: "start on demand instead of automatically at boot"},
				},
				Action: func(c *cli.Context) error {
					exe, err := os.Executable()
					if err != nil {
						return cli.Exit(fmt.Sprintf("service install: locating this executable: %v", err), 1)
					}
					if p, err := filepath.EvalSymlinks(exe); err == nil {
						exe = p
					}
					cfg := winsvc.ServiceConfig{
						Name:        c.String("name"),
						DisplayName: c.String("display-name"),
						Exe:         exe,
						Args:        serviceArgs(c.Args().Slice()),
						Manual:      c.Bool("manual"),
					}
					if err := winsvc.Install(cfg); err != nil {
						return serviceExit("install", err)
					}
					fmt.Fprintf(c.App.Writer, "installed service %s: %s %s\nstart it with: rswebhooks service start --name %s\n",
						cfg.Name, exe, strings.Join(cfg.Args, " "), cfg.Name)
					return nil
				},
			},
			{
				Name:  "uninstall",
				Usage: "stop and remove the service and its event log source",
				Flags: []cli.Flag{name()},
				Action: func(c *cli.Context) error {
					if err := winsvc.Uninstall(c.String("name")); err != nil {
						return serviceExit("uninstall", err)
					}
					fmt.Fprintf(c.App.Writer, "removed service %s\n", c.String("name"))
					return nil
				},
			},
			{
				Name:  "start",
				Usage: "start the installed service",
				Flags: []cli.Flag{name()},
				Action: func(c *cli.Context) error {
					if err := winsvc.Start(c.String("name")); err != nil {
						return serviceExit("start", err)
					}
					fmt.Fprintf(c.App.Writer, "started service %s\n", c.String("name"))
					return nil
				},
			},
			{
				Name:  "stop",
				Usage: "stop the service and wait until it has drained",
				Flags: []cli.Flag{name(), &cli.DurationFlag{Name: "timeout", Usage: "how long to wait", Value: time.Minute}},
				Action: func(c *cli.Context) error {
					ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
					defer cancel()
					if err := winsvc.Stop(ctx, c.String("name")); err != nil {
						return serviceExit("stop", err)
					}
					fmt.Fprintf(c.App.Writer, "stopped service %s\n", c.String("name"))
					return nil
				},
			},
		},
	}
}

// serviceArgs makes the installed command line a serve command: the
// arguments after "--", with "serve" put first when it is missing.
func serviceArgs(args []string) []string {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 || args[0] != "serve" {
		args = append([]string{"serve"}, args...)
	}
	return args
}

func serviceExit(sub string, err error) error {
	if errors.Is(err, winsvc.ErrNotWindows) {
		return cli.Exit(fmt.Sprintf("service %s: only on Windows; use deploy/systemd/rswebhooks.service on Linux (or deploy/docker, deploy/kubernetes)", sub), 1)
	}
	return cli.Exit(fmt.Sprintf("service %s: %v", sub, err), 1)
}

// runAsServiceIfNeeded runs run under the Windows service control manager
// when the process was started by it, and reports whether it did. run gets
// the writers to use for stdout and stderr: under the SCM both write to the
// Windows event log (source: the service name) as zerolog.LevelWriters, so
// a logger built on them hands each entry's level to the event log; plain
// writes are information (stdout) or errors (stderr). The context is
// cancelled when the SCM asks the service to stop. Outside a Windows
// service it returns false at once and does nothing.
func runAsServiceIfNeeded(run func(ctx context.Context, stdout, stderr io.Writer) error) (bool, error) {
	is, err := winsvc.IsService()
	if err != nil {
		return false, fmt.Errorf("detecting whether this is a Windows service: %w", err)
	}
	if !is {
		return false, nil
	}
	res, err := winsvc.Run(winsvc.Config{}, func(ctx context.Context, name string) error {
		return runWithEventLog(ctx, name, winsvc.OpenEventLog, run)
	})
	if err != nil {
		return true, err
	}
	return true, res.Err
}

// runWithEventLog runs run with stdout and stderr writing to the event log
// open opens under source, and logs run's error there too (main's own
// message goes to a stderr nobody reads under the SCM). Without the event
// log it still runs: the daemon works and /metrics still tells.
func runWithEventLog(ctx context.Context, source string, open func(string) (winsvc.EventLog, func() error, error),
	run func(ctx context.Context, stdout, stderr io.Writer) error) error {
	l, closeLog, err := open(source)
	if err != nil {
		return run(ctx, io.Discard, io.Discard)
	}
	defer closeLog()
	stderr := winsvc.NewLevelWriter(l, zerolog.ErrorLevel)
	err = run(ctx, winsvc.NewLevelWriter(l, zerolog.InfoLevel), stderr)
	if err != nil {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, "rswebhooks:", msg)
		}
	}
	return err
}

// healthcheckCommand is `rswebhooks healthcheck`: a probe for images without
// curl (the distroless Docker image's HEALTHCHECK). Exit 0 when the URL
// answers 2xx, 1 otherwise.
func healthcheckCommand() *cli.Command {
	return &cli.Command{
		Name:  "healthcheck",
		Usage: "probe the admin listener's /healthz (for Docker HEALTHCHECK); exit 0 if healthy",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Usage: "URL to probe (default: /healthz on $RSWEBHOOKS_ADMIN_LISTEN if set, on loopback)", Value: "http://127.0.0.1:8081/healthz", EnvVars: env("healthcheck-url")},
			&cli.DurationFlag{Name: "timeout", Usage: "probe timeout", Value: 3 * time.Second},
		},
		Action: func(c *cli.Context) error {
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			u := c.String("url")
			if !c.IsSet("url") {
				if l := os.Getenv("RSWEBHOOKS_ADMIN_LISTEN"); l != "" {
					u = healthzURL(l)
				}
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return cli.Exit(fmt.Sprintf("healthcheck: --url: %v", err), 2)
			}
			req.Header.Set("User-Agent", "rswebhooks-healthcheck/"+build().Version)
			resp, err := (&http.Client{}).Do(req)
			if err != nil {
				return cli.Exit(fmt.Sprintf("healthcheck: %v", err), 1)
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				return cli.Exit(fmt.Sprintf("healthcheck: %s answered %s", u, resp.Status), 1)
			}
			fmt.Fprintf(c.App.Writer, "healthy: %s answered %s\n", u, resp.Status)
			return nil
		},
	}
}

// healthzURL is the /healthz URL of an admin listen address, reached on
// loopback when the address is a wildcard (":8081", "0.0.0.0:8081", "[::]:8081").
func healthzURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen + "/healthz"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz"
}
