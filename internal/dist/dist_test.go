package dist

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"debug/pe"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testVersion = "v9.8.7-disttest"

// release is the full set of artifacts, built once for the package's tests.
var release struct {
	once sync.Once
	dir  string
	res  Result
	err  error
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func built(t *testing.T) (string, Result) {
	t.Helper()
	release.once.Do(func() {
		release.dir, release.err = os.MkdirTemp("", "rswebhooks-dist-")
		if release.err != nil {
			return
		}
		start := time.Now()
		var log bytes.Buffer
		release.res, release.err = Build(context.Background(), Options{Root: repoRoot(t), Out: release.dir, Version: testVersion, Log: &log})
		t.Logf("dist build (3 targets, 2 .debs, SBOM): %s\n%s", time.Since(start).Round(time.Second), log.String())
	})
	if release.err != nil {
		t.Fatalf("dist.Build: %v", release.err)
	}
	return release.dir, release.res
}

func TestMain(m *testing.M) {
	code := m.Run()
	if release.dir != "" {
		os.RemoveAll(release.dir)
	}
	os.Exit(code)
}

func gitOut(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

func TestArtifactsAndChecksums(t *testing.T) {
	dir, res := built(t)
	want := []string{
		"rswebhooks_9.8.7-disttest.sbom.cdx.json",
		"rswebhooks_9.8.7-disttest_linux_amd64.tar.gz",
		"rswebhooks_9.8.7-disttest_linux_arm64.tar.gz",
		"rswebhooks_9.8.7-disttest_windows_amd64.zip",
		"rswebhooks_9.8.7~disttest_amd64.deb",
		"rswebhooks_9.8.7~disttest_arm64.deb",
	}
	if !slices.Equal(res.Artifacts, want) {
		t.Fatalf("artifacts %q, want %q", res.Artifacts, want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(sorted(names), sorted(append(slices.Clone(want), "SHA256SUMS"))) {
		t.Errorf("the output directory holds %q: want the artifacts and SHA256SUMS only", names)
	}

	// SHA256SUMS lists every artifact with its hash, in sha256sum's format.
	sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q: want <hash>  <name>", line)
		}
		if got := fileSHA256(t, filepath.Join(dir, name)); got != sum {
			t.Errorf("SHA256SUMS says %s for %s, the file hashes to %s", sum, name, got)
		}
		listed = append(listed, name)
	}
	if !slices.Equal(listed, want) {
		t.Errorf("SHA256SUMS lists %q, want %q", listed, want)
	}
	cmd := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum --check: %v\n%s", err, out)
	}

	// The build date is the commit's time, not the clock's.
	if ct := gitOut(t, "log", "-1", "--format=%ct"); os.Getenv("SOURCE_DATE_EPOCH") == "" && res.Date.Unix() != mustAtoi(t, ct) {
		t.Errorf("build date %s, want the commit's time %s", res.Date, ct)
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestLinuxTarball unpacks the linux/amd64 archive with tar and runs the
// binary from it; the arm64 one holds the same files and an arm64 binary.
func TestLinuxTarball(t *testing.T) {
	dir, res := built(t)
	for _, arch := range []string{"amd64", "arm64"} {
		base := "rswebhooks_9.8.7-disttest_linux_" + arch
		names, modes := tarContents(t, filepath.Join(dir, base+".tar.gz"), res.Date)
		want := []string{"LICENSE", "README.md", "docs/install.md", "rswebhooks", "rswebhooks.env.example", "rswebhooks.example.yaml", "rswebhooks.service", "rules.example.yaml"}
		for i := range want {
			want[i] = base + "/" + want[i]
		}
		if !slices.Equal(names, want) {
			t.Errorf("%s: files %q, want %q", arch, names, want)
		}
		if modes[base+"/rswebhooks"] != 0o755 || modes[base+"/rswebhooks.service"] != 0o644 {
			t.Errorf("%s: modes %v: want the binary 0755, the rest 0644", arch, modes)
		}
	}

	unpacked := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", filepath.Join(dir, "rswebhooks_9.8.7-disttest_linux_amd64.tar.gz"), "-C", unpacked).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	bin := filepath.Join(unpacked, "rswebhooks_9.8.7-disttest_linux_amd64", "rswebhooks")
	checkELF(t, bin, elf.EM_X86_64)
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("cannot run a linux/amd64 binary on %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	checkVersionOutput(t, bin, res)
	out, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--upstream") || !strings.Contains(string(out), "RSWEBHOOKS_UPSTREAM") {
		t.Errorf("serve --help from the tarball: %v\n%s", err, out)
	}
	checkNoBuildPaths(t, bin)

	arm := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", filepath.Join(dir, "rswebhooks_9.8.7-disttest_linux_arm64.tar.gz"), "-C", arm).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	checkELF(t, filepath.Join(arm, "rswebhooks_9.8.7-disttest_linux_arm64", "rswebhooks"), elf.EM_AARCH64)
}

// checkVersionOutput runs `version` and `version -o json` and checks the
// stamped version, commit and date.
func checkVersionOutput(t *testing.T, bin string, res Result) {
	t.Helper()
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "rswebhooks "+testVersion+"\n") {
		t.Fatalf("version: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "version", "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("version -o json: %v\n%s", err, out)
	}
	var v struct{ Version, Commit, Date, GoVersion string }
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, out)
	}
	head := gitOut(t, "rev-parse", "HEAD")
	if v.Version != testVersion || !strings.HasPrefix(v.Commit, head) || v.Commit != res.Commit ||
		v.Date != res.Date.Format(time.RFC3339) || v.GoVersion != runtime.Version() {
		t.Errorf("version %+v: want %s, commit %s, date %s, %s", v, testVersion, res.Commit, res.Date.Format(time.RFC3339), runtime.Version())
	}
}

func checkELF(t *testing.T, path string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s: ELF machine %v, want %v", path, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: dynamically linked (has an ELF interpreter); want CGO_ENABLED=0", path)
		}
	}
}

// checkNoBuildPaths: -trimpath leaves no path of the build machine in the
// binary.
func checkNoBuildPaths(t *testing.T, bin string) {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	for _, p := range []string{repoRoot(t), os.Getenv("HOME") + "/go/pkg/mod", strings.TrimSpace(string(goroot)) + "/src"} {
		if len(p) > 4 && bytes.Contains(b, []byte(p)) {
			t.Errorf("%s contains the build path %s", bin, p)
		}
	}
}

// tarContents lists a tar.gz and checks every entry is owned by root and
// dated at the build date.
func tarContents(t *testing.T, path string, date time.Time) (files []string, modes map[string]int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	modes = map[string]int64{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(date) {
			t.Errorf("%s: %s owned %d:%d, dated %s: want root and %s", path, h.Name, h.Uid, h.Gid, h.ModTime, date)
		}
		if h.Typeflag == tar.TypeReg {
			files = append(files, h.Name)
			modes[h.Name] = h.Mode
		}
	}
	return files, modes
}

// TestWindowsZip: the archive's files (listed with unzip), a Windows amd64
// executable, and an installer that does what it promises.
func TestWindowsZip(t *testing.T) {
	dir, res := built(t)
	path := filepath.Join(dir, "rswebhooks_9.8.7-disttest_windows_amd64.zip")
	out, err := exec.Command("unzip", "-l", path).CombinedOutput()
	if err != nil {
		t.Fatalf("unzip -l: %v\n%s", err, out)
	}
	base := "rswebhooks_9.8.7-disttest_windows_amd64/"
	want := []string{"LICENSE", "README.md", "WINDOWS.md", "docs/install.md", "install.ps1", "rswebhooks.example.yaml", "rswebhooks.exe", "rules.example.yaml"}
	for _, w := range want {
		if !strings.Contains(string(out), " "+base+w+"\n") {
			t.Errorf("unzip -l does not list %s:\n%s", base+w, out)
		}
	}

	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var files []string
	var exe, ps1 []byte
	for _, f := range zr.File {
		if !f.Modified.Equal(res.Date) {
			t.Errorf("%s dated %s, want %s", f.Name, f.Modified, res.Date)
		}
		if f.FileInfo().IsDir() {
			continue
		}
		files = append(files, strings.TrimPrefix(f.Name, base))
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		switch f.Name {
		case base + "rswebhooks.exe":
			exe = b
		case base + "install.ps1":
			ps1 = b
		}
	}
	if !slices.Equal(files, want) {
		t.Errorf("zip files %q, want %q", files, want)
	}
	pf, err := pe.NewFile(bytes.NewReader(exe))
	if err != nil {
		t.Fatalf("rswebhooks.exe: %v", err)
	}
	if pf.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
		t.Errorf("rswebhooks.exe machine %#x, want amd64", pf.Machine)
	}
	if !bytes.Contains(exe, []byte(testVersion)) {
		t.Error("rswebhooks.exe does not carry the stamped version")
	}
	checkInstallScript(t, string(ps1))
}

// checkInstallScript is a structural check of the PowerShell installer (no
// PowerShell runs here): brackets balance outside strings and comments, and
// it installs, starts and uninstalls the service through rswebhooks.exe and
// manages the firewall rule.
func checkInstallScript(t *testing.T, s string) {
	t.Helper()
	if err := psBalanced(s); err != nil {
		t.Errorf("install.ps1: %v", err)
	}
	for _, want := range []string{
		"#Requires -RunAsAdministrator",
		"@('service', 'install', '--')",
		"@('service', 'start')",
		"@('service', 'stop')",
		"@('service', 'uninstall')",
		"New-NetFirewallRule",
		"Remove-NetFirewallRule",
		"'--admin-token-file'",
		"$ErrorActionPreference = 'Stop'",
		"$LASTEXITCODE",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("install.ps1 lacks %q", want)
		}
	}
	if strings.Contains(s, "\r\n") != strings.Contains(s, "\n") && strings.Contains(s, "\r") {
		t.Error("install.ps1 mixes line endings")
	}
}

// psBalanced checks (), {}, [] and here-strings/comments nest properly,
// skipping '…' and "…" strings (with PowerShell's `escape and doubled
// quotes), # comments and <# … #> blocks.
func psBalanced(s string) error {
	var stack []byte
	line := 1
	pairs := map[byte]byte{')': '(', '}': '{', ']': '['}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n':
			line++
		case c == '<' && i+1 < len(s) && s[i+1] == '#':
			end := strings.Index(s[i+2:], "#>")
			if end < 0 {
				return errors.New("unterminated <# comment")
			}
			line += strings.Count(s[i:i+2+end], "\n")
			i += end + 3
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
			i--
		case c == '\'' || c == '"':
			start := line
			i++
			for ; i < len(s); i++ {
				if s[i] == '\n' {
					line++
				}
				if c == '"' && s[i] == '`' {
					i++
					continue
				}
				if s[i] == c {
					if i+1 < len(s) && s[i+1] == c {
						i++
						continue
					}
					break
				}
			}
			if i >= len(s) {
				return errors.New("unterminated string from line " + itoa(start))
			}
		case c == '(' || c == '{' || c == '[':
			stack = append(stack, c)
		case c == ')' || c == '}' || c == ']':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return errors.New("unbalanced " + string(c) + " on line " + itoa(line))
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return errors.New("unclosed " + string(stack))
	}
	return nil
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestSBOM: a CycloneDX document naming the modules linked into the binary.
func TestSBOM(t *testing.T) {
	dir, _ := built(t)
	b, err := os.ReadFile(filepath.Join(dir, "rswebhooks_9.8.7-disttest.sbom.cdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		BOMFormat string `json:"bomFormat"`
		Metadata  struct {
			Component struct{ Name, Version string } `json:"component"`
		} `json:"metadata"`
		Components []struct{ Name, Version, Purl string } `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.BOMFormat != "CycloneDX" || !strings.Contains(doc.Metadata.Component.Name, "rswebhooks") {
		t.Errorf("SBOM format %q for %q: want CycloneDX for rswebhooks", doc.BOMFormat, doc.Metadata.Component.Name)
	}
	goMod, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mod := range []string{"github.com/dgraph-io/badger/v4", "github.com/urfave/cli/v2", "github.com/elazarl/goproxy"} {
		var version string
		for _, line := range strings.Split(string(goMod), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == mod {
				version = f[1]
			}
		}
		if !slices.ContainsFunc(doc.Components, func(c struct{ Name, Version, Purl string }) bool {
			return c.Name == mod && c.Version == version
		}) {
			t.Errorf("SBOM lacks %s %s (go.mod)", mod, version)
		}
	}
}

// TestRebuildIsIdentical: building the same commit again gives the same
// bytes (binary, archive).
func TestRebuildIsIdentical(t *testing.T) {
	dir, _ := built(t)
	again := t.TempDir()
	if _, err := Build(context.Background(), Options{Root: repoRoot(t), Out: again, Version: testVersion,
		Targets: []Target{{"linux", "amd64"}}, NoPackages: true}); err != nil {
		t.Fatal(err)
	}
	name := "rswebhooks_9.8.7-disttest_linux_amd64.tar.gz"
	if a, b := fileSHA256(t, filepath.Join(dir, name)), fileSHA256(t, filepath.Join(again, name)); a != b {
		t.Errorf("%s differs between two builds of the same commit: %s, %s", name, a, b)
	}
}

func TestSnapshotVersion(t *testing.T) {
	tag := func(s string) func() (string, error) { return func() (string, error) { return s, nil } }
	none := func() (string, error) { return "", errors.New("no names found") }
	for _, tc := range []struct {
		name        string
		dirty       bool
		exact, last func() (string, error)
		want        string
	}{
		{"tagged, clean", false, tag("v1.2.0"), tag("v1.2.0"), "v1.2.0"},
		{"tagged, modified", true, tag("v1.2.0"), tag("v1.2.0"), "v1.2.0-snapshot-0123456789ab.dirty"},
		{"after a tag", false, none, tag("v1.2.0"), "v1.2.0-snapshot-0123456789ab"},
		{"after a pre-release tag", false, none, tag("v1.3.0-rc.1"), "v1.3.0-snapshot-0123456789ab"},
		{"no tag at all", false, none, none, "v0.0.0-snapshot-0123456789ab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := snapshotVersion("0123456789abcdef0123", tc.dirty, tc.exact, tc.last)
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if err := checkVersion(got); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, bad := range []string{"1.2.0", "v1.2", "v1.2.x", "v1.2.0-", "v1.2.0 beta", "dev"} {
		if err := checkVersion(bad); err == nil || !strings.Contains(err.Error(), "vMAJOR.MINOR.PATCH") {
			t.Errorf("checkVersion(%q) = %v", bad, err)
		}
	}
	if got := debVersion("v1.2.0-snapshot-0123.dirty"); got != "1.2.0~snapshot-0123.dirty" {
		t.Errorf("debVersion = %q", got)
	}
}

func TestDebianUnitRefusesAnUnexpectedUnit(t *testing.T) {
	if _, err := DebianUnit([]byte("[Unit]\n[Service]\nExecStart=/opt/rswebhooks serve\n")); err == nil || !strings.Contains(err.Error(), "ExecStart=/usr/local/bin/rswebhooks") {
		t.Fatalf("DebianUnit of a unit without the expected ExecStart: %v", err)
	}
}
