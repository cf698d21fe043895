package dist

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestDebInstallsIntoAThrowAwayRoot installs the amd64 package with dpkg
// into an empty root, running its real maintainer scripts chrootless
// (DPKG_ROOT), then removes and purges it.
func TestDebInstallsIntoAThrowAwayRoot(t *testing.T) {
	dir, res := built(t)
	deb := filepath.Join(dir, "rswebhooks_9.8.7~disttest_amd64.deb")
	for _, tool := range []string{"dpkg", "dpkg-deb", "systemd-sysusers", "systemd-tmpfiles"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (.ci/run installs dpkg and systemd)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	info, err := exec.Command("dpkg-deb", "--field", deb, "Package", "Version", "Architecture", "Depends").CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --field: %v\n%s", err, info)
	}
	for _, want := range []string{"Package: rswebhooks\n", "Version: 9.8.7~disttest\n", "Architecture: amd64\n"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("control lacks %q:\n%s", want, info)
		}
	}

	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dpkg := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-not-root", "--log=/dev/null"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := dpkg("--install", deb)

	// Files where the unit and the docs say.
	for path, mode := range map[string]os.FileMode{
		"usr/bin/rswebhooks":                          0o755,
		"usr/lib/systemd/system/rswebhooks.service":   0o644,
		"usr/lib/sysusers.d/rswebhooks.conf":          0o644,
		"usr/lib/tmpfiles.d/rswebhooks.conf":          0o644,
		"usr/share/rswebhooks/rswebhooks.env.example": 0o644,
		"usr/share/doc/rswebhooks/copyright":          0o644,
		"etc/rswebhooks/rswebhooks.env":               0o600,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("after install: %v", err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	if runtime.GOARCH == "amd64" {
		checkVersionOutput(t, filepath.Join(root, "usr/bin/rswebhooks"), res)
	}

	// The unit runs the packaged binary as the packaged account.
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/rswebhooks.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nExecStart=/usr/bin/rswebhooks serve", "\nUser=rswebhooks\n", "\nStateDirectory=rswebhooks\n", "\nEnvironmentFile=/etc/rswebhooks/rswebhooks.env\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("packaged unit lacks %q", strings.TrimSpace(want))
		}
	}
	if strings.Contains(string(unit), "DynamicUser=yes") {
		t.Error("packaged unit still uses DynamicUser")
	}

	// postinst: the account, the state directory (0700, owned by it) and
	// the settings with a random operator token.
	uid := accountUID(t, filepath.Join(root, "etc/passwd"), "rswebhooks")
	fi, err := os.Stat(filepath.Join(root, "var/lib/rswebhooks"))
	if err != nil {
		t.Fatalf("state directory: %v\n%s", err, out)
	}
	if fi.Mode().Perm() != 0o700 || !fi.IsDir() || ownerUID(fi) != uid {
		t.Errorf("/var/lib/rswebhooks mode %v owner %d: want a 0700 directory owned by rswebhooks (%d)", fi.Mode(), ownerUID(fi), uid)
	}
	env, err := os.ReadFile(filepath.Join(root, "etc/rswebhooks/rswebhooks.env"))
	if err != nil {
		t.Fatal(err)
	}
	token := envValue(string(env), "RSWEBHOOKS_ADMIN_TOKEN")
	if len(token) < 32 || strings.Contains(token, "change-me") {
		t.Errorf("the installed env file's operator token %q: want a random one", token)
	}

	// Nothing was enabled or started.
	wants, _ := filepath.Glob(filepath.Join(root, "etc/systemd/system/*.wants/*"))
	if len(wants) > 0 {
		t.Errorf("the package enabled units: %v", wants)
	}

	// Reinstalling (an upgrade) keeps the settings.
	dpkg("--install", deb)
	if again, _ := os.ReadFile(filepath.Join(root, "etc/rswebhooks/rswebhooks.env")); !bytes.Equal(again, env) {
		t.Error("reinstalling the package rewrote /etc/rswebhooks/rswebhooks.env")
	}

	// Remove keeps the settings and the data; purge removes the settings
	// and still keeps the data.
	if err := os.WriteFile(filepath.Join(root, "var/lib/rswebhooks/MANIFEST"), []byte("store"), 0o600); err != nil {
		t.Fatal(err)
	}
	dpkg("--remove", "rswebhooks")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/rswebhooks")); !os.IsNotExist(err) {
		t.Errorf("after remove, /usr/bin/rswebhooks: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/rswebhooks/rswebhooks.env")); err != nil {
		t.Errorf("remove deleted the settings: %v", err)
	}
	dpkg("--purge", "rswebhooks")
	if _, err := os.Stat(filepath.Join(root, "etc/rswebhooks/rswebhooks.env")); !os.IsNotExist(err) {
		t.Errorf("after purge, the settings: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "var/lib/rswebhooks/MANIFEST")); err != nil || string(b) != "store" {
		t.Errorf("purge touched the store: %v", err)
	}
}

func accountUID(t *testing.T, passwd, name string) uint32 {
	t.Helper()
	f, err := os.Open(passwd)
	if err != nil {
		t.Fatalf("no account database in the root: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 7 && fields[0] == name {
			if fields[6] != "/usr/sbin/nologin" || fields[5] != "/var/lib/rswebhooks" {
				t.Errorf("account %q: want home /var/lib/rswebhooks and no login shell", sc.Text())
			}
			uid, err := strconv.ParseUint(fields[2], 10, 32)
			if err != nil || uid == 0 || uid >= 1000 {
				t.Errorf("account %q: want a system uid", sc.Text())
			}
			return uint32(uid)
		}
	}
	t.Fatalf("%s has no %s account", passwd, name)
	return 0
}

func envValue(env, key string) string {
	for _, line := range strings.Split(env, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v
		}
	}
	return ""
}

// ownerUID is the uid owning fi.
func ownerUID(fi os.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return ^uint32(0)
}
