// Package dist builds the release artifacts `make dist` publishes: for one
// version, the Windows zip (with the PowerShell installer), the Linux
// tarballs, Debian packages (nfpm), a CycloneDX SBOM of the Go modules
// (cyclonedx-gomod) and SHA256SUMS. The packaging tools are pinned in
// tools/go.mod and run with `go tool`. Everything is reproducible: binaries
// are built with -trimpath and a stamped version, and every archive entry
// carries the commit's time (or SOURCE_DATE_EPOCH), owner root and a fixed
// mode, in a fixed order.
package dist

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Target is one platform a binary is built for.
type Target struct{ OS, Arch string }

func (t Target) String() string { return t.OS + "/" + t.Arch }

// DefaultTargets are the platforms a release ships.
var DefaultTargets = []Target{{"windows", "amd64"}, {"linux", "amd64"}, {"linux", "arm64"}}

// Options configure one build.
type Options struct {
	// Root is the module root (the repository). Required.
	Root string
	// Out receives the artifacts; it is emptied first. Required.
	Out string
	// Version overrides the version taken from git (the tag on HEAD, else a
	// snapshot name). Must start with "v".
	Version string
	// Targets to build; nil means DefaultTargets.
	Targets []Target
	// NoPackages skips the .deb and the SBOM (a quick local build).
	NoPackages bool
	// Go is the go command. Default: go from GOROOT, else PATH.
	Go string
	// Log receives progress lines. Nil discards them.
	Log io.Writer
}

// Result lists what was built.
type Result struct {
	Version string
	Commit  string
	// Date is the build date stamped into the binaries and every archive
	// entry: the commit's time or SOURCE_DATE_EPOCH.
	Date time.Time
	// Artifacts are file names in Out, sorted; SHA256SUMS lists each.
	Artifacts []string
}

// Build makes the artifacts.
func Build(ctx context.Context, o Options) (Result, error) {
	if o.Root == "" || o.Out == "" {
		return Result{}, errors.New("dist: Root and Out are required")
	}
	if o.Targets == nil {
		o.Targets = DefaultTargets
	}
	if o.Go == "" {
		o.Go = goCommand()
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	b := &builder{o: o}
	return b.run(ctx)
}

type builder struct {
	o     Options
	res   Result
	stage string
}

func (b *builder) run(ctx context.Context) (Result, error) {
	if err := b.gitFacts(ctx); err != nil {
		return Result{}, err
	}
	if err := os.RemoveAll(b.o.Out); err != nil {
		return Result{}, err
	}
	b.stage = filepath.Join(b.o.Out, ".stage")
	if err := os.MkdirAll(b.stage, 0o755); err != nil {
		return Result{}, err
	}
	fmt.Fprintf(b.o.Log, "dist: %s (commit %s, %s)\n", b.res.Version, b.res.Commit, b.res.Date.Format(time.RFC3339))
	var sbomBin string
	for _, t := range b.o.Targets {
		bin, err := b.compile(ctx, t)
		if err != nil {
			return Result{}, err
		}
		if sbomBin == "" || t == (Target{"linux", "amd64"}) {
			sbomBin = bin
		}
		if err := b.archive(t, bin); err != nil {
			return Result{}, err
		}
		if t.OS == "linux" && !b.o.NoPackages {
			if err := b.deb(ctx, t, bin); err != nil {
				return Result{}, err
			}
		}
	}
	if !b.o.NoPackages {
		if err := b.sbom(ctx, sbomBin); err != nil {
			return Result{}, err
		}
	}
	if err := os.RemoveAll(b.stage); err != nil {
		return Result{}, err
	}
	if err := b.checksums(); err != nil {
		return Result{}, err
	}
	return b.res, nil
}

// gitFacts reads the commit, its time and the version.
func (b *builder) gitFacts(ctx context.Context) error {
	git := func(args ...string) (string, error) {
		out, err := b.output(ctx, b.o.Root, nil, "git", args...)
		return strings.TrimSpace(out), err
	}
	commit, err := git("rev-parse", "HEAD")
	if err != nil {
		return fmt.Errorf("dist: not a git checkout: %w", err)
	}
	status, err := git("status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return err
	}
	dirty := status != ""
	b.res.Commit = commit
	if dirty {
		b.res.Commit += "-dirty"
	}

	sde := os.Getenv("SOURCE_DATE_EPOCH")
	if sde == "" {
		if sde, err = git("log", "-1", "--format=%ct"); err != nil {
			return err
		}
	}
	secs, err := strconv.ParseInt(sde, 10, 64)
	if err != nil {
		return fmt.Errorf("dist: SOURCE_DATE_EPOCH %q: want seconds since 1970: %w", sde, err)
	}
	b.res.Date = time.Unix(secs, 0).UTC()

	b.res.Version = b.o.Version
	if b.res.Version == "" {
		b.res.Version = snapshotVersion(commit, dirty, func() (string, error) { return git("describe", "--tags", "--exact-match", "--match", "v[0-9]*") },
			func() (string, error) { return git("describe", "--tags", "--abbrev=0", "--match", "v[0-9]*") })
	}
	if err := checkVersion(b.res.Version); err != nil {
		return err
	}
	return nil
}

// snapshotVersion is the tag on HEAD for a clean checkout of a tagged
// commit; otherwise the last tag (or v0.0.0) with -snapshot-<short commit>
// (and .dirty), a semver pre-release that sorts before the next release.
func snapshotVersion(commit string, dirty bool, exactTag, lastTag func() (string, error)) string {
	if !dirty {
		if tag, err := exactTag(); err == nil && tag != "" {
			return tag
		}
	}
	base, err := lastTag()
	if err != nil || base == "" {
		base = "v0.0.0"
	}
	base, _, _ = strings.Cut(base, "-")
	v := base + "-snapshot-" + commit[:min(len(commit), 12)]
	if dirty {
		v += ".dirty"
	}
	return v
}

// checkVersion accepts v<major>.<minor>.<patch>[-pre-release][+build]:
// file names and the Debian version are derived from it.
func checkVersion(v string) error {
	rest, ok := strings.CutPrefix(v, "v")
	core, _, _ := strings.Cut(rest, "+")
	core, pre, hasPre := strings.Cut(core, "-")
	parts := strings.Split(core, ".")
	bad := !ok || len(parts) != 3 || (hasPre && pre == "")
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 64); err != nil {
			bad = true
		}
	}
	if strings.ContainsAny(v, "/\\ _") || bad {
		return fmt.Errorf("dist: version %q: want vMAJOR.MINOR.PATCH[-PRE-RELEASE] (a git tag such as v1.2.0)", v)
	}
	return nil
}

// compile builds the binary for t with the version stamped in.
func (b *builder) compile(ctx context.Context, t Target) (string, error) {
	name := "rswebhooks"
	if t.OS == "windows" {
		name += ".exe"
	}
	bin := filepath.Join(b.stage, t.OS+"_"+t.Arch, name)
	ldflags := strings.Join([]string{"-s", "-w",
		"-X", "main.version=" + b.res.Version,
		"-X", "main.commit=" + b.res.Commit,
		"-X", "main.date=" + b.res.Date.Format(time.RFC3339)}, " ")
	env := []string{"CGO_ENABLED=0", "GOOS=" + t.OS, "GOARCH=" + t.Arch, "GOFLAGS=-mod=readonly",
		// Reproducible regardless of the machine's defaults.
		"GOAMD64=v1", "GOARM64=v8.0"}
	fmt.Fprintf(b.o.Log, "dist: go build %s\n", t)
	if _, err := b.output(ctx, b.o.Root, env, b.o.Go, "build", "-trimpath", "-buildvcs=false",
		"-ldflags", ldflags, "-o", bin, "./cmd/rswebhooks"); err != nil {
		return "", err
	}
	return bin, nil
}

// fileVersion is the version as it appears in file names: without the v.
func (b *builder) fileVersion() string { return strings.TrimPrefix(b.res.Version, "v") }

// archive writes the zip (Windows) or tar.gz (Linux) for t.
func (b *builder) archive(t Target, bin string) error {
	base := fmt.Sprintf("rswebhooks_%s_%s_%s", b.fileVersion(), t.OS, t.Arch)
	r := b.o.Root
	common := []entry{
		{name: "README.md", src: filepath.Join(r, "README.md"), mode: 0o644},
		{name: "LICENSE", src: filepath.Join(r, "LICENSE"), mode: 0o644},
		{name: "rswebhooks.example.yaml", src: filepath.Join(r, "deploy", "rswebhooks.example.yaml"), mode: 0o644},
		{name: "rules.example.yaml", src: filepath.Join(r, "deploy", "rules.example.yaml"), mode: 0o644},
		{name: "docs/install.md", src: filepath.Join(r, "docs", "install.md"), mode: 0o644},
	}
	var files []entry
	var name string
	if t.OS == "windows" {
		files = append(common,
			entry{name: "rswebhooks.exe", src: bin, mode: 0o755},
			entry{name: "install.ps1", src: filepath.Join(r, "deploy", "windows", "install.ps1"), mode: 0o755},
			entry{name: "WINDOWS.md", src: filepath.Join(r, "deploy", "windows", "README.md"), mode: 0o644})
		name = base + ".zip"
	} else {
		files = append(common,
			entry{name: "rswebhooks", src: bin, mode: 0o755},
			entry{name: "rswebhooks.service", src: filepath.Join(r, "deploy", "systemd", "rswebhooks.service"), mode: 0o644},
			entry{name: "rswebhooks.env.example", src: filepath.Join(r, "deploy", "systemd", "rswebhooks.env.example"), mode: 0o644})
		name = base + ".tar.gz"
	}
	for i := range files {
		files[i].name = base + "/" + files[i].name
	}
	slices.SortFunc(files, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	f, err := os.Create(filepath.Join(b.o.Out, name))
	if err != nil {
		return err
	}
	if t.OS == "windows" {
		err = writeZip(f, files, b.res.Date)
	} else {
		err = writeTarGz(f, files, b.res.Date)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("dist: %s: %w", name, err)
	}
	b.res.Artifacts = append(b.res.Artifacts, name)
	return nil
}

// debArch maps GOARCH to the Debian architecture name.
var debArch = map[string]string{"amd64": "amd64", "arm64": "arm64"}

// deb packages the Linux binary with nfpm, using deploy/packaging/nfpm.yaml
// and a unit derived from deploy/systemd/rswebhooks.service.
func (b *builder) deb(ctx context.Context, t Target, bin string) error {
	arch, ok := debArch[t.Arch]
	if !ok {
		return fmt.Errorf("dist: no Debian architecture for %s", t)
	}
	stage := filepath.Join(b.stage, "deb_"+t.Arch)
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return err
	}
	unit, err := os.ReadFile(filepath.Join(b.o.Root, "deploy", "systemd", "rswebhooks.service"))
	if err != nil {
		return err
	}
	debUnit, err := DebianUnit(unit)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(stage, "rswebhooks.service"), debUnit, 0o644); err != nil {
		return err
	}
	if err := copyFile(bin, filepath.Join(stage, "rswebhooks"), 0o755); err != nil {
		return err
	}
	name := fmt.Sprintf("rswebhooks_%s_%s.deb", debVersion(b.res.Version), arch)
	config, err := os.ReadFile(filepath.Join(b.o.Root, "deploy", "packaging", "nfpm.yaml"))
	if err != nil {
		return err
	}
	vars := map[string]string{"VERSION": b.res.Version, "DEB_ARCH": arch, "STAGE": stage}
	var missing []string
	config = []byte(os.Expand(string(config), func(k string) string {
		v, ok := vars[k]
		if !ok {
			missing = append(missing, k)
		}
		return v
	}))
	if len(missing) > 0 {
		return fmt.Errorf("dist: deploy/packaging/nfpm.yaml uses unknown variables %v", missing)
	}
	configPath := filepath.Join(stage, "nfpm.yaml")
	if err := os.WriteFile(configPath, config, 0o644); err != nil {
		return err
	}
	// nfpm dates every file and the package itself from SOURCE_DATE_EPOCH.
	env := []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(b.res.Date.Unix(), 10)}
	fmt.Fprintf(b.o.Log, "dist: nfpm %s\n", name)
	if _, err := b.output(ctx, b.o.Root, env, b.o.Go, "tool", "-modfile=tools/go.mod", "nfpm", "package",
		"--config", configPath, "--packager", "deb", "--target", filepath.Join(b.o.Out, name)); err != nil {
		return err
	}
	b.res.Artifacts = append(b.res.Artifacts, name)
	return nil
}

// debVersion is the Debian version nfpm writes for a semver: no v, and a
// pre-release after ~ so it sorts before the release.
func debVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	v, _, _ = strings.Cut(v, "+")
	core, pre, ok := strings.Cut(v, "-")
	if !ok {
		return core
	}
	return core + "~" + pre
}

// DebianUnit derives the Debian package's unit from the tarball's: the
// binary in /usr/bin, and the static rswebhooks account the package creates
// (sysusers.d) instead of a dynamic user, so the store's owner is stable.
func DebianUnit(unit []byte) ([]byte, error) {
	s := string(unit)
	replace := func(old, new string) error {
		if strings.Count(s, old) != 1 {
			return fmt.Errorf("dist: deploy/systemd/rswebhooks.service: want %q exactly once", strings.TrimSpace(old))
		}
		s = strings.Replace(s, old, new, 1)
		return nil
	}
	// The comment at the top describes installing the tarball by hand.
	if i := strings.Index(s, "[Unit]"); i > 0 {
		s = "# rswebhooks.service from the rswebhooks Debian package.\n#\n" +
			"# Settings: /etc/rswebhooks/rswebhooks.env. Start: systemctl enable --now rswebhooks\n" +
			"# Data: /var/lib/rswebhooks (kept when the package is removed).\n" + s[i:]
	}
	if err := replace("ExecStart=/usr/local/bin/rswebhooks ", "ExecStart=/usr/bin/rswebhooks "); err != nil {
		return nil, err
	}
	if err := replace("DynamicUser=yes\n", "User=rswebhooks\nGroup=rswebhooks\n"); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// sbom writes a CycloneDX SBOM of the modules linked into bin, read from
// the build information the Go toolchain embeds (every target links the
// same modules). No timestamp or serial: the same commit gives the same
// document.
func (b *builder) sbom(ctx context.Context, bin string) error {
	name := fmt.Sprintf("rswebhooks_%s.sbom.cdx.json", b.fileVersion())
	fmt.Fprintf(b.o.Log, "dist: cyclonedx-gomod %s\n", name)
	if _, err := b.output(ctx, b.o.Root, nil, b.o.Go, "tool", "-modfile=tools/go.mod", "cyclonedx-gomod", "bin",
		"-json", "-noserial", "-notimestamp", "-std", "-version", b.res.Version,
		"-output", filepath.Join(b.o.Out, name), bin); err != nil {
		return err
	}
	b.res.Artifacts = append(b.res.Artifacts, name)
	return nil
}

// checksums writes SHA256SUMS in the format `sha256sum -c` reads.
func (b *builder) checksums() error {
	slices.Sort(b.res.Artifacts)
	var sums bytes.Buffer
	for _, name := range b.res.Artifacts {
		f, err := os.Open(filepath.Join(b.o.Out, name))
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), name)
	}
	return os.WriteFile(filepath.Join(b.o.Out, "SHA256SUMS"), sums.Bytes(), 0o644)
}

// output runs a command and returns its standard output; the error carries
// its standard error.
func (b *builder) output(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func goCommand() string {
	if p := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" {
		return p
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}
