package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rswebhooks/rswebhooks/signature"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check a received notification's signatures (ms-signature and Standard Webhooks webhook-signature)",
		Description: `Checks a notification body against its signature, for receiver authors.

ms-signature:       rswebhooks verify --secret S --signature 'sha256=6A…' body.json
webhook-signature:  rswebhooks verify --secret S --signature 'v1,K5o…' --id ID --timestamp UNIX body.json
a saved request:    rswebhooks verify --secret S request.http
                    (the request line, its headers, a blank line, then the body exactly
                    as received; every signature header present is checked)

The secret may also be given as whsec_<base64>, as Standard Webhooks libraries take it.
Exit status: 0 valid, 1 a signature does not match (or the timestamp is too old),
2 bad input (no signature, a malformed header, an unreadable file).`,
		ArgsUsage: "[FILE] (the raw body, or a saved HTTP request; standard input when absent)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "secret", Required: true, Usage: "the webhook's secret (or whsec_<base64 of it>)", EnvVars: env("verify-secret")},
			&cli.StringFlag{Name: "signature", Usage: "an ms-signature value ('sha256=<hex>') or a webhook-signature value ('v1,<base64>'); read from the saved request's headers when absent"},
			&cli.StringFlag{Name: "id", Usage: "the webhook-id header (for a webhook-signature)"},
			&cli.StringFlag{Name: "timestamp", Usage: "the webhook-timestamp header, unix seconds (for a webhook-signature)"},
			&cli.DurationFlag{Name: "tolerance", Value: 5 * time.Minute, Usage: "how far webhook-timestamp may be from now (raise it to check an old saved request)"},
		},
		Action: verifyAction,
	}
}

// requestLine recognises a saved HTTP request ("POST /hook HTTP/1.1").
var requestLine = regexp.MustCompile(`^[A-Z]+ \S+ HTTP/\d\.\d\r?\n`)

func verifyAction(c *cli.Context) error {
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
	data, err := io.ReadAll(io.LimitReader(in, 64<<20))
	if err != nil {
		return cli.Exit(fmt.Errorf("reading the body: %w", err), 2)
	}
	body, hdr := data, http.Header{}
	if requestLine.Match(data) {
		if body, hdr, err = splitRequest(data); err != nil {
			return cli.Exit(fmt.Sprintf("verify: reading the saved request: %v", err), 2)
		}
	}
	secret := c.String("secret")
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return cli.Exit("--secret: whsec_ must be followed by base64", 2)
		}
		secret = string(raw)
	}

	// Flags win over the saved request's headers.
	if s := c.String("signature"); s != "" {
		switch {
		case strings.HasPrefix(strings.ToLower(s), "sha256="):
			hdr.Set(signature.HeaderSignature, s)
		case strings.Contains(s, "v1,"):
			hdr.Set(signature.HeaderWebhookSignature, s)
		default:
			return cli.Exit(fmt.Sprintf("invalid: %v: --signature must be an ms-signature ('sha256=<hex>') or a webhook-signature ('v1,<base64>')", signature.ErrMalformedSignature), 2)
		}
	}
	if c.IsSet("id") {
		hdr.Set(signature.HeaderWebhookID, c.String("id"))
	}
	if c.IsSet("timestamp") {
		hdr.Set(signature.HeaderWebhookTimestamp, c.String("timestamp"))
	}

	type check struct {
		name string
		run  func() error
	}
	var checks []check
	if v := hdr.Get(signature.HeaderSignature); v != "" {
		checks = append(checks, check{signature.HeaderSignature, func() error { return signature.Verify(secret, v, body) }})
	}
	if hdr.Get(signature.HeaderWebhookSignature) != "" {
		if hdr.Get(signature.HeaderWebhookID) == "" || hdr.Get(signature.HeaderWebhookTimestamp) == "" {
			return cli.Exit("verify: a webhook-signature needs --id and --timestamp (the webhook-id and webhook-timestamp headers)", 2)
		}
		if _, err := strconv.ParseInt(hdr.Get(signature.HeaderWebhookTimestamp), 10, 64); err != nil {
			return cli.Exit(fmt.Sprintf("--timestamp: %q is not unix seconds", hdr.Get(signature.HeaderWebhookTimestamp)), 2)
		}
		tolerance := c.Duration("tolerance")
		if tolerance <= 0 {
			return cli.Exit("--tolerance: must be above 0", 2)
		}
		checks = append(checks, check{signature.HeaderWebhookSignature, func() error {
			return signature.VerifyStandard(secret, hdr, body, time.Now(), tolerance)
		}})
	}
	if len(checks) == 0 {
		return cli.Exit("verify: no signature: give --signature, or a saved request with its ms-signature or webhook-signature header", 2)
	}
	code := 0
	var problems []string
	for _, ch := range checks {
		err := ch.run()
		switch {
		case err == nil:
			fmt.Fprintf(c.App.Writer, "%s: valid\n", ch.name)
			continue
		case errors.Is(err, signature.ErrMalformedSignature):
			code = 2
		case code == 0:
			code = 1
		}
		problems = append(problems, fmt.Sprintf("%s: %v", ch.name, err))
	}
	if code != 0 {
		return cli.Exit("invalid: "+strings.Join(problems, "; "), code)
	}
	fmt.Fprintln(c.App.Writer, "valid")
	return nil
}

// splitRequest reads a saved HTTP request: its headers, and the body as the
// bytes after the blank line (cut at Content-Length when that is shorter, so
// an editor's trailing newline does not break the signature).
func splitRequest(data []byte) ([]byte, http.Header, error) {
	end, sep := bytes.Index(data, []byte("\r\n\r\n")), 4
	if i := bytes.Index(data, []byte("\n\n")); i >= 0 && (end < 0 || i < end) {
		end, sep = i, 2
	}
	if end < 0 {
		return nil, nil, errors.New("no blank line between the headers and the body")
	}
	head := data[:end+sep]
	body := data[end+sep:]
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
	if _, err := tp.ReadLine(); err != nil { // the request line
		return nil, nil, err
	}
	mh, err := tp.ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("headers: %w", err)
	}
	hdr := http.Header(mh)
	if cl := hdr.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 {
			return nil, nil, fmt.Errorf("Content-Length %q is not a length", cl)
		}
		if n > len(body) {
			return nil, nil, fmt.Errorf("Content-Length is %d but the body has %d bytes", n, len(body))
		}
		body = body[:n]
	}
	return body, hdr, nil
}
