package deploy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// --- metrics: dashboard and alerts use only exported names --------------------

// exportedMetrics reads metrics.txt, the one list of names the daemon exports.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open("metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	valid := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if !valid.MatchString(l) {
			t.Errorf("metrics.txt:%d: %q is not a metric name", n, l)
		}
		if out[l] {
			t.Errorf("metrics.txt:%d: %s listed twice", n, l)
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(l, suf) {
				t.Errorf("metrics.txt:%d: %s: list histograms by base name", n, l)
			}
		}
		out[l] = true
	}
	if len(out) == 0 {
		t.Fatal("metrics.txt lists nothing")
	}
	return out
}

var metricRE = regexp.MustCompile(`\b((?:rswebhooks|go|process)_[a-zA-Z0-9_]+|up)\b`)

// metricNames returns the metric names a PromQL expression uses.
func metricNames(expr string) []string {
	// Drop label matchers' values and strings, so "up" in a label value
	// does not count.
	expr = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).ReplaceAllString(expr, `""`)
	var out []string
	for _, m := range metricRE.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	return out
}

// synthetic names Prometheus makes itself.
var synthetic = map[string]bool{"up": true}

func checkNames(t *testing.T, where string, names []string, exported map[string]bool) {
	t.Helper()
	for _, n := range names {
		if synthetic[n] || exported[n] {
			continue
		}
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suf)
		}
		if base != n && exported[base] {
			continue
		}
		t.Errorf("%s uses %s, which the daemon does not export (deploy/metrics.txt)", where, n)
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestAlertRules(t *testing.T) {
	exported := exportedMetrics(t)
	var rf ruleFile
	readYAML(t, "prometheus/alerts.yml", &rf)
	runbook, err := os.ReadFile("prometheus/RUNBOOK.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, l := range strings.Split(string(runbook), "\n") {
		if h, ok := strings.CutPrefix(l, "## "); ok {
			anchors[strings.ToLower(strings.ReplaceAll(strings.TrimSpace(h), " ", "-"))] = true
		}
	}

	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, "prometheus/alerts_test.yml", &tests)
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}

	want := []string{"RswebhooksTargetDown", "RswebhooksStoreDegraded", "RswebhooksDeliveriesFailing", "RswebhooksAttemptErrorRatioHigh", "RswebhooksQueueGrowing",
		"RswebhooksOldestPendingTooOld", "RswebhooksEventsLost", "RswebhooksUpstreamErrors", "RswebhooksWatcherFailing", "RswebhooksReconcileFailing", "RswebhooksWebhookAutoPaused",
		"RswebhooksUnreadableRecords",
		"RswebhooksWebhookOwnerMissing", "RswebhooksAccessCheckErrorRatioHigh", "RswebhooksEventsNotFannedOut",
		"RswebhooksDatabaseOutage"}
	var got []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			got = append(got, r.Alert)
			checkNames(t, "alert "+r.Alert, metricNames(r.Expr), exported)
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, s)
			}
			for _, k := range []string{"summary", "description", "runbook", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[k]) == "" {
					t.Errorf("%s: no %s annotation", r.Alert, k)
				}
			}
			_, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "RUNBOOK.md#")
			if !anchors[anchor] || anchor != strings.ToLower(r.Alert) {
				t.Errorf("%s: runbook_url anchor %q has no section in RUNBOOK.md", r.Alert, anchor)
			}
			if !firing[r.Alert] || !quiet[r.Alert] {
				t.Errorf("%s: alerts_test.yml must show it firing (%v) and not firing (%v)", r.Alert, firing[r.Alert], quiet[r.Alert])
			}
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("alerts %v, want %v", got, want)
	}
}

// promtool returns the promtool path; it is required (Debian package
// prometheus), so a missing one fails rather than skips.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (install the Debian package prometheus; CI=%q): %v", os.Getenv("CI"), err)
	}
	return p
}

func TestPromtool(t *testing.T) {
	p := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "prometheus/alerts.yml"},
		{"test", "rules", "prometheus/alerts_test.yml"},
	} {
		out, err := exec.Command(p, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// --- Grafana -------------------------------------------------------------------

type dashboard struct {
	Title      string          `json:"title"`
	UID        string          `json:"uid"`
	Panels     []dashPanel     `json:"panels"`
	Templating json.RawMessage `json:"templating"`
}

type dashPanel struct {
	Type    string      `json:"type"`
	Title   string      `json:"title"`
	ID      int         `json:"id"`
	Panels  []dashPanel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
}

func readDashboard(t *testing.T) (dashboard, []string) {
	t.Helper()
	b, err := os.ReadFile("grafana/rswebhooks.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/rswebhooks.json: %v", err)
	}
	var exprs []string
	var walk func(ps []dashPanel)
	ids := map[int]bool{}
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			if p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q overflows the grid: %+v", p.Title, p.GridPos)
			}
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	// Template variable queries use metric names too.
	exprs = append(exprs, regexp.MustCompile(`label_values\([^"]*?(?:\{[^}]*\})?[^)]*\)`).FindAllString(string(d.Templating), -1)...)
	return d, exprs
}

func TestDashboard(t *testing.T) {
	exported := exportedMetrics(t)
	d, exprs := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	used := map[string]bool{}
	for _, e := range exprs {
		names := metricNames(e)
		if len(names) == 0 {
			t.Errorf("expression %q uses no metric", e)
		}
		checkNames(t, "dashboard expression "+e, names, exported)
		for _, n := range names {
			used[strings.TrimSuffix(n, "_bucket")] = true
		}
	}
	// Every rswebhooks metric is on the dashboard somewhere.
	for n := range exported {
		if strings.HasPrefix(n, "rswebhooks_") && !used[n] {
			t.Errorf("the dashboard shows nothing of %s", n)
		}
	}
}

// TestDashboardQueriesParse checks every dashboard expression is valid
// PromQL, by handing them to promtool as recording rules.
func TestDashboardQueriesParse(t *testing.T) {
	p := promtool(t)
	_, exprs := readDashboard(t)
	r := strings.NewReplacer("$__rate_interval", "5m", "$job", ".+", "$instance", ".+")
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, e := range exprs {
		if strings.HasPrefix(e, "label_values(") {
			continue
		}
		rules = append(rules, rule{Record: "dashboard:expr" + strconv.Itoa(i), Expr: r.Replace(e)})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(p, "check", "rules", f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("SUCCESS: %d rules found", len(rules))) {
		t.Fatalf("dashboard expressions are not valid PromQL: %v\n%s", err, out)
	}
}

func TestMetricNamesExtraction(t *testing.T) {
	got := metricNames(`histogram_quantile(0.9, sum by (le) (rate(rswebhooks_x_bucket{job="up"}[5m]))) / up`)
	if !slices.Equal(got, []string{"rswebhooks_x_bucket", "up"}) {
		t.Fatalf("metricNames = %q", got)
	}
}

// --- systemd ---------------------------------------------------------------------

// unitKeys parses a systemd unit: section.key → values (keys may repeat).
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	section := ""
	for n, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = strings.Trim(l, "[]")
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Errorf("%s:%d: %q is not KEY=VALUE in a section", path, n+1, l)
				continue
			}
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	flags := serveFlags(t)
	envs := envNames(flags)
	u := unitKeys(t, "systemd/rswebhooks.service")
	want := map[string]string{
		"Service.DynamicUser":             "yes",
		"Service.StateDirectory":          "rswebhooks",
		"Service.ProtectSystem":           "strict",
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.NoNewPrivileges":         "yes",
		"Service.CapabilityBoundingSet":   "",
		"Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"Service.LimitNOFILE":             "65535",
		"Service.Restart":                 "on-failure",
		"Service.EnvironmentFile":         "/etc/rswebhooks/rswebhooks.env",
		"Service.ExecStart":               "/usr/local/bin/rswebhooks serve --data-dir ${STATE_DIRECTORY}",
		"Install.WantedBy":                "multi-user.target",
	}
	for k, v := range want {
		if got := u[k]; len(got) == 0 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !slices.Contains(u["Service.SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter %q lacks @system-service", u["Service.SystemCallFilter"])
	}
	if len(u["Service.MemoryMax"]) == 0 {
		t.Error("no MemoryMax")
	}
	for _, a := range strings.Fields(u["Service.ExecStart"][0]) {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			if _, ok := flags[name]; !ok {
				t.Errorf("ExecStart uses --%s, which is not a serve flag", name)
			}
		}
	}

	// The environment file example sets only real RSWEBHOOKS_* variables.
	b, err := os.ReadFile("systemd/rswebhooks.env.example")
	if err != nil {
		t.Fatal(err)
	}
	set := 0
	for n, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#"))
		k, _, ok := strings.Cut(l, "=")
		if !ok || !regexp.MustCompile(`^RSWEBHOOKS_[A-Z0-9_]+$`).MatchString(k) {
			continue
		}
		set++
		if _, ok := envs[k]; !ok {
			t.Errorf("rswebhooks.env.example:%d: %s is not the environment variable of any serve flag", n+1, k)
		}
	}
	if set < 5 {
		t.Errorf("rswebhooks.env.example sets only %d variables", set)
	}
}

// TestSystemdAnalyze runs systemd's own checks on the unit, with ExecStart
// pointed at the binary just built (verify wants an executable there).
func TestSystemdAnalyze(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found (Debian package systemd): %v", err)
	}
	b, err := os.ReadFile("systemd/rswebhooks.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "rswebhooks.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/rswebhooks", binary(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sa, "verify", unit).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command(sa, "security", "--offline=true", "--no-pager", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for rswebhooks\.service: ([0-9.]+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if lvl, _ := strconv.ParseFloat(m[1], 64); lvl > 2.0 {
		t.Errorf("exposure level %.1f, want at most 2.0 (hardened)", lvl)
	}
	t.Logf("systemd-analyze security exposure: %s", m[1])
}

// --- Windows ----------------------------------------------------------------------

func TestWindowsCrossBuild(t *testing.T) {
	out := filepath.Join(t.TempDir(), "rswebhooks.exe")
	c := exec.Command(goTool(), "build", "-trimpath", "-o", out, "./cmd/rswebhooks")
	c.Dir = moduleRoot()
	c.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=windows go build ./cmd/rswebhooks: %v\n%s", err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	magic := make([]byte, 2)
	if _, err := f.Read(magic); err != nil || string(magic) != "MZ" {
		t.Fatalf("%s is not a Windows executable (magic %q)", out, magic)
	}
}

func TestWindowsReadme(t *testing.T) {
	flags := serveFlags(t)
	b, err := os.ReadFile("windows/README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"service install --", "service start", "service stop", "service uninstall", "127.0.0.1:83", "Server URL", "New-NetFirewallRule", "event log"} {
		if !strings.Contains(s, want) {
			t.Errorf("windows/README.md does not mention %q", want)
		}
	}
	// Every flag shown after `service install --` is a serve flag.
	_, rest, _ := strings.Cut(s, "service install --")
	block, _, _ := strings.Cut(rest, "```")
	for _, m := range regexp.MustCompile(`--([a-z][a-z0-9-]+)`).FindAllStringSubmatch(block, -1) {
		if _, ok := flags[m[1]]; !ok {
			t.Errorf("windows/README.md installs with --%s, which is not a serve flag", m[1])
		}
	}
}
