package rswebhooks_test

import (
	"os/exec"
	"strings"
	"testing"
)

// goList runs `go list -deps` with format over pkgs and returns the lines.
func goList(t *testing.T, format string, pkgs ...string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go") // go test puts its own GOROOT/bin first on PATH
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	args := append([]string{"list", "-deps", "-f", format}, pkgs...)
	out, err := exec.Command(gobin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.Fields(string(out))
}

// TestDependencyDirection pins which way dependencies point: the delivery
// engine, the watcher and the registrations API do not link the store's
// Badger; the detector and the identity resolver do not link the proxy's
// goproxy; what receivers and observers import is standard library only.
func TestDependencyDirection(t *testing.T) {
	for _, tc := range []struct {
		pkgs      []string
		forbidden string
	}{
		{[]string{"./deliver", "./watch", "./admin", "./reconcile"}, "github.com/dgraph-io/badger"},
		{[]string{"./detect", "./identity"}, "github.com/elazarl/goproxy"},
		// The PostgreSQL engine and the storage conformance suite stand
		// beside Badger's package, not on it.
		{[]string{"./pgstore", "./store/storetest"}, "github.com/dgraph-io/badger"},
		{[]string{"./store", "./store/storetest"}, "github.com/jackc/pgx"},
		// Trace context needs only OpenTelemetry's API; the SDK and its
		// exporter (with gRPC) are linked by the daemon alone.
		{[]string{"./deliver", "./detect", "./proxy", "./tracing"}, "go.opentelemetry.io/otel/sdk"},
		{[]string{"./deliver", "./detect", "./proxy", "./tracing"}, "google.golang.org/grpc"},
	} {
		deps := goList(t, "{{.ImportPath}}", tc.pkgs...)
		if len(deps) < len(tc.pkgs) {
			t.Fatalf("go list -deps %v listed %d packages", tc.pkgs, len(deps))
		}
		for _, d := range deps {
			if strings.HasPrefix(d, tc.forbidden) {
				t.Errorf("go list -deps %v names %s", tc.pkgs, d)
			}
		}
	}
	for _, pkg := range []string{"./signature", "./tap", "."} {
		own := "github.com/rswebhooks/rswebhooks" + strings.TrimPrefix(pkg, ".")
		for _, d := range goList(t, "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg) {
			if d != own {
				t.Errorf("go list -deps %s names %s, want the standard library only", pkg, d)
			}
		}
	}
}
