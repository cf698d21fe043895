package detect

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/events.md")

const (
	beginTable = "<!-- BEGIN GENERATED RULE TABLE (go test ./detect -run TestEventsDoc -update) -->\n"
	endTable   = "<!-- END GENERATED RULE TABLE -->\n"
)

// ruleTable renders rules as the Markdown table in docs/events.md.
func ruleTable(rules []Rule) string {
	var b strings.Builder
	b.WriteString("| # | Method | Route | Filter | Event | Resource id from | API |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for i, r := range rules {
		filter, event := r.Filter, r.Event
		if filter == "" {
			filter = "—"
		}
		if r.Ignore() {
			event = "*(ignore)*"
		}
		version := r.APIVersion
		if version == "" {
			version = "—"
		}
		route := "`" + r.Path + "`"
		if r.Inferred {
			route += " *(inferred)*"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s |\n", i+1, r.Method, route, filter, event, idDoc(r.ID), version)
	}
	return b.String()
}

func idDoc(s IDSource) string {
	if p, ok := s.PathParam(); ok {
		return "path `{" + p + "}`"
	}
	switch s {
	case IDBody:
		return "request body `Id`"
	case IDResponse:
		return "response (string, `Id`, `Location`)"
	case IDLocation:
		return "`Location` header"
	}
	return "—"
}

// TestEventsDoc fails when the rule table in docs/events.md differs from
// BuiltinRules. Run with -update to regenerate it.
func TestEventsDoc(t *testing.T) {
	path := filepath.Join("..", "docs", "events.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(doc, []byte(beginTable))
	end := bytes.Index(doc, []byte(endTable))
	if start < 0 || end < start {
		t.Fatalf("%s lacks the generated-table markers", path)
	}
	start += len(beginTable)
	want := ruleTable(BuiltinRules())
	if got := string(doc[start:end]); got != want {
		if *update {
			out := append(append(append([]byte{}, doc[:start]...), want...), doc[end:]...)
			if err := os.WriteFile(path, out, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("%s is out of date with BuiltinRules; run go test ./detect -run TestEventsDoc -update", path)
	}
}
