package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rswebhooks/rswebhooks"
)

// replayFlags are the range of `webhooks replay`.
func replayFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "since", Usage: "first event time: an RFC 3339 time or a duration before now (2h, 30m); required"},
		&cli.StringFlag{Name: "until", Usage: "end of the range (exclusive): an RFC 3339 time or a duration before now; default now"},
	}
}

// cliTime reads an RFC 3339 time or a positive duration before now.
func cliTime(flag, s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, cli.Exit(fmt.Sprintf("--%s: %q is neither an RFC 3339 time (2026-11-27T10:00:00Z) nor a positive duration before now (2h, 30m)", flag, s), 2)
}

// webhooksReplay queues the stored events of a range to a webhook again,
// calling the API until the whole range is done (each call is bounded by
// the server).
func webhooksReplay(s *session) error {
	id, err := s.arg("ID")
	if err != nil {
		return err
	}
	if s.c.String("since") == "" {
		return cli.Exit("--since: required (an RFC 3339 time or a duration before now, such as 2h)", 2)
	}
	now := time.Now()
	req := rswebhooks.ReplayRequest{}
	if req.Since, err = cliTime("since", s.c.String("since"), now); err != nil {
		return err
	}
	if u := s.c.String("until"); u != "" {
		if req.Until, err = cliTime("until", u, now); err != nil {
			return err
		}
	}
	total := rswebhooks.ReplayResult{}
	for calls := 1; ; calls++ {
		res, err := s.client.Replay(s.ctx, id, req)
		if err != nil {
			if total.Queued > 0 {
				fmt.Fprintf(s.c.App.ErrWriter, "%d deliveries were queued before this error; replay again with --since after the last one to finish\n", total.Queued)
			}
			return err
		}
		total.Queued += res.Queued
		total.Matched += res.Matched
		if res.Done || res.Next == nil {
			total.Done = true
			break
		}
		req = *res.Next
	}
	if s.json {
		return s.writeJSON(total)
	}
	fmt.Fprintf(s.out, "%d deliveries queued to %s (%d events matched its filters; events its owner may not read are left out)\n", total.Queued, id, total.Matched)
	fmt.Fprintln(s.out, "replayed deliveries have new ids: receivers that dedupe on Id see them as new (EventId is unchanged)")
	return nil
}
