package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rswebhooks/rswebhooks/internal/demo"
)

// receiverCommand is `rswebhooks receiver`: the demo's receiver alone, to
// try a real daemon on loopback (see the README's local recipe).
func receiverCommand() *cli.Command {
	return &cli.Command{
		Name:  "receiver",
		Usage: "a webhook receiver for trying rswebhooks: answers the echo check, verifies both signatures, prints each notification",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:9000", Usage: "listener address (any path is accepted)", EnvVars: env("receiver-listen")},
			&cli.StringFlag{Name: "secret", Required: true, Usage: "the webhook's secret (32–128 characters), as registered", EnvVars: env("receiver-secret")},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			secret := c.String("secret")
			if n := len([]rune(secret)); n < 32 || n > 128 {
				return cli.Exit(fmt.Sprintf("--secret: must be between 32 and 128 characters, got %d", n), 2)
			}
			ln, err := net.Listen("tcp", c.String("listen"))
			if err != nil {
				return cli.Exit(fmt.Errorf("--listen: %w", err), 1)
			}
			srv := &http.Server{Handler: demo.NewReceiver(secret, c.App.Writer), ReadHeaderTimeout: 5 * time.Second}
			fmt.Fprintf(c.App.Writer, "receiver on http://%s/ (any path); Ctrl-C to stop\n", ln.Addr())
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case err := <-errc:
				return err
			case <-c.Context.Done():
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
}
