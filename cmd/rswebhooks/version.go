package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/rswebhooks/rswebhooks/buildinfo"
)

// Stamped at build time by `make build`/`make dist`:
//
//	-ldflags "-X main.version=v1.2.0 -X main.commit=<hash> -X main.date=<RFC 3339>"
//
// Unstamped builds fall back to what the Go toolchain recorded.
var (
	version = "dev"
	commit  string
	date    string
)

// build describes this binary.
func build() buildinfo.Info { return buildinfo.Read(version, commit, date) }

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, commit, build date and Go version",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "text or json"},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			switch o := c.String("output"); o {
			case "text":
				return printVersion(c.App.Writer)
			case "json":
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(build())
			default:
				return cli.Exit(fmt.Sprintf("--output: must be text or json, got %q", o), 2)
			}
		},
	}
}

func printVersion(w io.Writer) error {
	_, err := io.WriteString(w, build().String())
	return err
}
