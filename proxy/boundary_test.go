package proxy

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// goproxy stays behind one boundary: only goproxy.go imports it.
func TestGoproxyConfinedToOneFile(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var importers []string
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range af.Imports {
			if p, _ := strconv.Unquote(im.Path.Value); strings.HasPrefix(p, "github.com/elazarl/goproxy") {
				importers = append(importers, f)
			}
		}
	}
	if len(importers) != 1 || importers[0] != "goproxy.go" {
		t.Fatalf("files importing goproxy: %v, want only goproxy.go", importers)
	}
}
