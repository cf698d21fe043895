package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/detect"
)

// rulesCommand is `rswebhooks rules …`: detection rules for --rules.
func rulesCommand() *cli.Command {
	return &cli.Command{
		Name:  "rules",
		Usage: "suggest detection rules from the calls no rule matched, and check a --rules file",
		Subcommands: []*cli.Command{
			{
				Name:  "suggest",
				Usage: "print a --rules file with a suggested rule for each call no rule matched (admin API; administrators and the operator)",
				Description: clientHelp + `

The daemon keeps the last 256 unmatched routes in memory (since its start).
Every suggestion is a guess from the path: review filter, event and id, then
check the file with "rswebhooks rules check" and pass it to serve --rules.`,
				Flags:  clientFlags(),
				Action: cliAction(rulesSuggest),
			},
			{
				Name:      "check",
				Usage:     "validate a --rules file and report how it changes the built-in rule table (offline)",
				ArgsUsage: "FILE",
				Description: `Reports, besides any error in the file (with its line):
  override     a rule with the method and template of a built-in rule replaces it
  shadow       a rule takes calls a built-in rule matched before
  unreachable  a more specific rule wins for the rule's own routes
The exit status is 1 when there is an error or a conflict; with
--allow-override, replacing a built-in rule on purpose is not a conflict.`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "prefix", Usage: "the report server's virtual directory (the path of --upstream), e.g. /reporting"},
					&cli.BoolFlag{Name: "allow-override", Usage: "do not count replacing a built-in rule as a conflict"},
				},
				Action: rulesCheck,
			},
		},
	}
}

func rulesSuggest(s *session) error {
	routes, err := s.client.Unmatched(s.ctx)
	if err != nil {
		return err
	}
	if s.json {
		return s.writeJSON(routes)
	}
	if len(routes) == 0 {
		fmt.Fprintln(s.out, "# No unmatched calls since the daemon started: nothing to suggest.")
		fmt.Fprintln(s.out, "rules: []")
		return nil
	}
	rules := make([]rswebhooks.SuggestedRule, len(routes))
	for i, r := range routes {
		rules[i] = r.Rule
		note := fmt.Sprintf("seen %d times, last %s (status %d).", r.Count, r.LastSeenUTC.Format("2006-01-02T15:04:05Z"), r.Status)
		if r.Rule.Note != "" {
			note += " " + r.Rule.Note
		}
		rules[i].Note = note
	}
	fmt.Fprintln(s.out, "# Suggested by rswebhooks from successful calls no detection rule matched.")
	fmt.Fprintln(s.out, "# Review each rule, then: rswebhooks rules check FILE; rswebhooks serve --rules FILE")
	fmt.Fprint(s.out, detect.FormatSuggestions(rules))
	return nil
}

func rulesCheck(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("rules check: want exactly one argument, the rules FILE", 2)
	}
	file := c.Args().First()
	rules, err := detect.LoadRules(file)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	prefix := c.String("prefix")
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		return cli.Exit(fmt.Sprintf("--prefix: must start with /, got %q", prefix), 2)
	}
	findings, err := detect.CheckRules(prefix, rules)
	if err != nil {
		return cli.Exit(fmt.Sprintf("%s: %v", file, err), 1)
	}
	conflicts := 0
	for _, f := range findings {
		fmt.Fprintf(c.App.Writer, "%s: %s: %s\n", file, f.Kind, f.Message)
		if f.Kind != detect.FindingOverride || !c.Bool("allow-override") {
			conflicts++
		}
	}
	fmt.Fprintf(c.App.Writer, "%s: %d rules, %d conflicts with the built-in table\n", file, len(rules), conflicts)
	if conflicts > 0 {
		return cli.Exit("", 1)
	}
	return nil
}
