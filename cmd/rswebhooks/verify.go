package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/rswebhooks/rswebhooks/deliver"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a received notification body against its ms-signature header",
		ArgsUsage: "[FILE] (the raw body; standard input when absent)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "secret", Required: true, Usage: "the webhook's secret", EnvVars: env("verify-secret")},
			&cli.StringFlag{Name: "signature", Required: true, Usage: "the ms-signature header value, e.g. 'sha256=6A…'"},
		},
		Action: func(c *cli.Context) error {
			var in io.Reader = os.Stdin
			if c.NArg() > 1 {
				return cli.Exit("verify: give at most one FILE", 2)
			}
			if f := c.Args().First(); f != "" && f != "-" {
				fh, err := os.Open(f)
				if err != nil {
					return cli.Exit(err, 2)
				}
				defer fh.Close()
				in = fh
			}
			body, err := io.ReadAll(io.LimitReader(in, 64<<20))
			if err != nil {
				return cli.Exit(fmt.Errorf("reading the body: %w", err), 2)
			}
			if err := deliver.Verify(c.String("secret"), c.String("signature"), body); err != nil {
				if errors.Is(err, deliver.ErrMalformedSignature) {
					return cli.Exit(fmt.Sprintf("invalid: %v", err), 2)
				}
				return cli.Exit(fmt.Sprintf("invalid: %v", err), 1)
			}
			fmt.Fprintln(c.App.Writer, "valid")
			return nil
		},
	}
}
