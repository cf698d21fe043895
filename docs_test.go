package rswebhooks_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocReferencesExist: what the code, the deploy files and the docs cite
// as documentation is in the repository. A comment naming docs/x.md names a
// file that exists, and none cites a document kept outside it (design.md,
// a shared reference).
func TestDocReferencesExist(t *testing.T) {
	cite := regexp.MustCompile("(?:^|[\\s(`\"'\\[])docs/([A-Za-z0-9_-]+\\.md)")
	outside := regexp.MustCompile(`\bdesign\.md\b|shared/reference|\.\./shared/`)
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != "." && (strings.HasPrefix(n, ".") || n == "node_modules" || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if path == "docs_test.go" {
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".yml", ".yaml", ".sh":
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if outside.MatchString(line) {
				t.Errorf("%s:%d cites a document outside the repository: %s", path, i+1, strings.TrimSpace(line))
			}
			for _, m := range cite.FindAllStringSubmatch(line, -1) {
				if _, err := os.Stat(filepath.Join("docs", m[1])); err != nil {
					t.Errorf("%s:%d cites docs/%s, which does not exist", path, i+1, m[1])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
