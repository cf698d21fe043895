package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const testVersion = "v9.8.7-deploytest"

// built is the rswebhooks binary built once for the whole package, with the
// Dockerfile's own build command.
var built struct {
	bin string
	err error
	out string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rswebhooks-deploy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	built.bin, built.out, built.err = buildLikeDockerfile(dir)
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// goTool is the go command that runs the tests: go test puts its own
// GOROOT/bin first on PATH.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// moduleRoot is the repository root (the parent of deploy/).
func moduleRoot() string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}

// binary returns the binary built by TestMain, failing the test if the
// Dockerfile's build command did not work.
func binary(t *testing.T) string {
	t.Helper()
	if built.err != nil {
		t.Fatalf("the Dockerfile's build command failed: %v\n%s", built.err, built.out)
	}
	return built.bin
}

// --- Dockerfile --------------------------------------------------------------

type instruction struct {
	line int
	cmd  string // upper case
	args string
}

type stage struct {
	from, name string
	instrs     []instruction
}

var validInstructions = map[string]bool{"FROM": true, "RUN": true, "CMD": true, "LABEL": true, "EXPOSE": true, "ENV": true,
	"ADD": true, "COPY": true, "ENTRYPOINT": true, "VOLUME": true, "USER": true, "WORKDIR": true, "ARG": true,
	"ONBUILD": true, "STOPSIGNAL": true, "HEALTHCHECK": true, "SHELL": true, "MAINTAINER": true}

// parseDockerfile is a line parser: comments, blank lines, backslash
// continuations; one instruction per logical line.
func parseDockerfile(t *testing.T, path string) (global []instruction, stages []stage) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var cur strings.Builder
	start, n := 0, 0
	var all []instruction
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // comment inside a continuation
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		all = append(all, instruction{start, strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("%s: dangling line continuation at the end", path)
	}
	for _, in := range all {
		if !validInstructions[in.cmd] {
			t.Errorf("%s:%d: unknown instruction %q", path, in.line, in.cmd)
		}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Errorf("%s:%d: only ARG may come before the first FROM, got %s", path, in.line, in.cmd)
			}
			global = append(global, in)
			continue
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	return global, stages
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	global, stages := parseDockerfile(t, "docker/Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if build.name == "" || !strings.HasPrefix(strings.ReplaceAll(build.from, "${GO_VERSION}", "1.26"), "golang:1.26") {
		t.Errorf("build stage: FROM %q AS %q, want golang:1.26 with a name", build.from, build.name)
	}
	if !slices.ContainsFunc(global, func(in instruction) bool { return in.args == "GO_VERSION=1.26" }) && strings.Contains(build.from, "${GO_VERSION}") {
		t.Errorf("GO_VERSION is used but not declared as 1.26")
	}
	if final.from != "gcr.io/distroless/static:nonroot" && final.from != "scratch" {
		t.Errorf("runtime stage FROM %q, want distroless static nonroot or scratch", final.from)
	}

	// The build stage declares ARG VERSION and stamps it into main.version.
	if !slices.ContainsFunc(build.all("ARG"), func(in instruction) bool { return strings.HasPrefix(in.args, "VERSION") }) {
		t.Error("build stage: no ARG VERSION")
	}
	if _, err := buildCommand(); err != nil {
		t.Error(err)
	}

	// Copies from the build stage name it.
	for _, in := range final.all("COPY") {
		if strings.Contains(in.args, "--from=") && !strings.Contains(in.args, "--from="+build.name+" ") {
			t.Errorf("line %d: COPY %s does not copy from stage %q", in.line, in.args, build.name)
		}
	}

	users := final.all("USER")
	if len(users) == 0 {
		t.Fatal("runtime stage: no USER")
	}
	user := strings.Split(users[len(users)-1].args, ":")[0]
	if user == "" || user == "0" || user == "root" {
		t.Errorf("runtime stage runs as %q, want a non-root user", user)
	}
	if user != "65532" && user != "nonroot" {
		t.Errorf("runtime USER %q, want 65532 (distroless nonroot)", user)
	}

	if v := final.all("VOLUME"); len(v) != 1 || strings.Trim(v[0].args, `[]" `) != "/data" {
		t.Errorf("VOLUME = %+v, want /data", v)
	}
	var ports []string
	for _, in := range final.all("EXPOSE") {
		ports = append(ports, strings.Fields(in.args)...)
	}
	slices.Sort(ports)
	if !slices.Equal(ports, []string{"8080", "8081"}) {
		t.Errorf("EXPOSE %v, want 8080 8081", ports)
	}

	hc := final.all("HEALTHCHECK")
	if len(hc) != 1 {
		t.Fatalf("want one HEALTHCHECK, got %d", len(hc))
	}
	_, hcCmd, ok := strings.Cut(hc[0].args, "CMD ")
	var hcArgv []string
	if !ok || json.Unmarshal([]byte(hcCmd), &hcArgv) != nil || len(hcArgv) < 2 || filepath.Base(hcArgv[0]) != "rswebhooks" || hcArgv[1] != "healthcheck" {
		t.Errorf("HEALTHCHECK %q: want CMD [\".../rswebhooks\", \"healthcheck\"] in exec form (distroless has no shell)", hc[0].args)
	}

	eps := final.all("ENTRYPOINT")
	var ep []string
	if len(eps) != 1 || json.Unmarshal([]byte(eps[0].args), &ep) != nil {
		t.Fatalf("ENTRYPOINT %+v: want one in exec form", eps)
	}
	if len(ep) != 4 || filepath.Base(ep[0]) != "rswebhooks" || !slices.Equal(ep[1:], []string{"serve", "--data-dir", "/data"}) {
		t.Errorf("ENTRYPOINT %q", ep)
	}
	// The binary the image runs is the one the build stage writes.
	if !slices.ContainsFunc(final.all("COPY"), func(in instruction) bool {
		return strings.Contains(in.args, "/out/rswebhooks "+ep[0])
	}) {
		t.Errorf("no COPY puts /out/rswebhooks at %s", ep[0])
	}
	if !slices.ContainsFunc(final.all("COPY"), func(in instruction) bool {
		return strings.Contains(in.args, "--chown=65532:65532") && strings.HasSuffix(in.args, " /data")
	}) {
		t.Error("the /data volume is not created owned by 65532, so a fresh volume would not be writable")
	}
}

// buildCommand returns the build stage's go build RUN line.
func buildCommand() (string, error) {
	b, err := os.ReadFile("docker/Dockerfile")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") {
			cmd := strings.TrimPrefix(l, "RUN ")
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "-o /out/rswebhooks", "./cmd/rswebhooks"} {
				if !strings.Contains(cmd, want) {
					return "", fmt.Errorf("Dockerfile build command %q lacks %q", cmd, want)
				}
			}
			return cmd, nil
		}
	}
	return "", fmt.Errorf("Dockerfile: no RUN line with go build")
}

// buildLikeDockerfile runs the Dockerfile's build command, as written, with
// /out redirected into dir and VERSION set.
func buildLikeDockerfile(dir string) (bin, out string, err error) {
	cmd, err := buildCommand()
	if err != nil {
		return "", "", err
	}
	cmd = strings.ReplaceAll(cmd, "/out/", dir+"/")
	c := exec.Command("sh", "-c", cmd)
	c.Dir = moduleRoot()
	c.Env = append(os.Environ(), "VERSION="+testVersion, "PATH="+filepath.Dir(goTool())+string(os.PathListSeparator)+os.Getenv("PATH"))
	b, err := c.CombinedOutput()
	return filepath.Join(dir, "rswebhooks"), string(b), err
}

func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	c := exec.Command(bin, args...)
	c.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	b, err := c.CombinedOutput()
	return string(b), err
}

func TestBuiltBinary(t *testing.T) {
	bin := binary(t)
	out, err := run(t, bin, "--version")
	if err != nil || !strings.Contains(out, testVersion) {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	// CGO_ENABLED=0: a static binary (no ELF interpreter) that runs on distroless/static.
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b[:min(len(b), 4096)], []byte("ld-linux")) {
		t.Error("the binary is dynamically linked")
	}

	// The HEALTHCHECK command works against a healthy and a failing admin listener.
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"status":"ok"}`)) }))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer bad.Close()
	if out, err := run(t, bin, "healthcheck", "--url", ok.URL+"/healthz"); err != nil {
		t.Errorf("healthcheck of a healthy listener: %v\n%s", err, out)
	}
	if out, err := run(t, bin, "healthcheck", "--url", bad.URL+"/healthz"); err == nil {
		t.Errorf("healthcheck of a 503 listener exited 0:\n%s", out)
	}
}

// serveFlags reads `rswebhooks serve --help`: flag name → its environment variables.
func serveFlags(t *testing.T) map[string][]string {
	t.Helper()
	out, err := run(t, binary(t), "serve", "--help")
	if err != nil {
		t.Fatalf("serve --help: %v\n%s", err, out)
	}
	flags := map[string][]string{}
	flagRE := regexp.MustCompile(`^\s+--([a-z0-9][a-z0-9-]*)`)
	envRE := regexp.MustCompile(`\$([A-Z0-9_]+)`)
	for _, l := range strings.Split(out, "\n") {
		m := flagRE.FindStringSubmatch(l)
		if m == nil || m[1] == "help" {
			continue
		}
		var envs []string
		if i := strings.LastIndex(l, "[$"); i >= 0 {
			for _, e := range envRE.FindAllStringSubmatch(l[i:], -1) {
				envs = append(envs, e[1])
			}
		}
		flags[m[1]] = envs
	}
	for _, must := range []string{"upstream", "listen", "admin-listen", "data-dir", "admin-token", "service-user", "service-password", "config"} {
		if _, ok := flags[must]; !ok {
			t.Fatalf("serve --help does not list --%s:\n%s", must, out)
		}
	}
	return flags
}

func envNames(flags map[string][]string) map[string]string {
	out := map[string]string{}
	for f, envs := range flags {
		for _, e := range envs {
			out[e] = f
		}
	}
	return out
}

// --- config example ------------------------------------------------------------

func TestConfigExample(t *testing.T) {
	flags := serveFlags(t)
	b, err := os.ReadFile("rswebhooks.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("rswebhooks.example.yaml: %v", err)
	}
	for k := range cfg {
		if _, ok := flags[k]; !ok {
			t.Errorf("key %q is not a serve flag", k)
		}
		if k == "config" {
			t.Errorf("key %q makes no sense inside the config file", k)
		}
	}
	for f := range flags {
		if _, ok := cfg[f]; !ok && f != "config" {
			t.Errorf("serve flag --%s has no key in rswebhooks.example.yaml", f)
		}
	}
	for _, list := range []string{"allow-target", "deny-target"} {
		if _, ok := cfg[list].([]any); !ok {
			t.Errorf("%s: want a YAML list (repeatable flag), got %T", list, cfg[list])
		}
	}
}

// --- Kubernetes ----------------------------------------------------------------

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	StartupProbe   *probe `yaml:"startupProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type deploymentSpec struct {
	Replicas int `yaml:"replicas"`
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			Containers []container `yaml:"containers"`
			Volumes    []struct {
				Name                  string `yaml:"name"`
				PersistentVolumeClaim *struct {
					ClaimName string `yaml:"claimName"`
				} `yaml:"persistentVolumeClaim"`
				EmptyDir *struct{} `yaml:"emptyDir"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort any    `yaml:"targetPort"`
	} `yaml:"ports"`
}

type podMonitorSpec struct {
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	PodMetricsEndpoints []struct {
		Port string `yaml:"port"`
		Path string `yaml:"path"`
	} `yaml:"podMetricsEndpoints"`
}

func decodeSpec(t *testing.T, o k8sObject, v any) {
	t.Helper()
	if err := o.Spec.Decode(v); err != nil {
		t.Fatalf("%s %s: spec: %v", o.Kind, o.Metadata.Name, err)
	}
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// argValue reads --name=value or --name value from args.
func argValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func portOf(addr string) string {
	i := strings.LastIndex(addr, ":")
	return addr[i+1:]
}

// k8sObjects reads the documents of a manifest file by kind (documents
// without one, such as comments only, are left out).
func k8sObjects(t *testing.T, path string) map[string][]k8sObject {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	byKind := map[string][]k8sObject{}
	for {
		var o k8sObject
		if err := dec.Decode(&o); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("%s: %v", path, err)
		}
		if o.Kind != "" {
			byKind[o.Kind] = append(byKind[o.Kind], o)
		}
	}
	return byKind
}

func TestKubernetesManifests(t *testing.T) {
	flags := serveFlags(t)
	envs := envNames(flags)

	byKind := k8sObjects(t, "kubernetes/rswebhooks.yaml")
	wantAPI := map[string]string{"Secret": "v1", "PersistentVolumeClaim": "v1", "Deployment": "apps/v1", "Service": "v1", "PodMonitor": "monitoring.coreos.com/v1"}
	for kind, api := range wantAPI {
		if len(byKind[kind]) == 0 {
			t.Errorf("no %s", kind)
		}
		for _, o := range byKind[kind] {
			if o.APIVersion != api {
				t.Errorf("%s %s: apiVersion %q, want %q", kind, o.Metadata.Name, o.APIVersion, api)
			}
		}
	}
	for kind := range byKind {
		if _, ok := wantAPI[kind]; !ok {
			t.Errorf("unexpected kind %s", kind)
		}
	}
	if len(byKind["Deployment"]) != 1 || len(byKind["Secret"]) != 1 || len(byKind["PersistentVolumeClaim"]) != 1 {
		t.Fatalf("want one Deployment, Secret and PVC")
	}
	secret := byKind["Secret"][0]
	pvc := byKind["PersistentVolumeClaim"][0]

	var dep deploymentSpec
	decodeSpec(t, byKind["Deployment"][0], &dep)
	if dep.Replicas != 1 {
		t.Errorf("replicas %d: the Badger volume has a single writer", dep.Replicas)
	}
	podLabels := dep.Template.Metadata.Labels
	if !subset(dep.Selector.MatchLabels, podLabels) {
		t.Errorf("Deployment selector %v does not match the pod labels %v", dep.Selector.MatchLabels, podLabels)
	}
	var rs, rw *container
	for i := range dep.Template.Spec.Containers {
		c := &dep.Template.Spec.Containers[i]
		if strings.Contains(c.Image, "rswebhooks") {
			rw = c
		} else {
			rs = c
		}
	}
	if rs == nil || rw == nil {
		t.Fatal("want a report-server container and a rswebhooks container in one pod")
	}
	if len(rs.Ports) != 1 || rs.Ports[0].ContainerPort != 83 {
		t.Errorf("report server ports %+v, want 83", rs.Ports)
	}

	// rswebhooks' args are real flags, with the sidecar wiring.
	for _, a := range rw.Args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") {
			continue
		}
		if _, ok := flags[name]; !ok {
			t.Errorf("arg %q: --%s is not a serve flag", a, name)
		}
	}
	want := map[string]string{"upstream": "http://127.0.0.1:83", "listen": ":8080", "admin-listen": ":8081", "data-dir": "/data"}
	got := map[string]string{}
	for f, v := range want {
		got[f], _ = argValue(rw.Args, f)
		if got[f] != v {
			t.Errorf("rswebhooks --%s = %q, want %q", f, got[f], v)
		}
	}
	ports := map[string]int{}
	for _, p := range rw.Ports {
		ports[p.Name] = p.ContainerPort
	}
	resolve := func(p any) string {
		switch v := p.(type) {
		case int:
			return fmt.Sprint(v)
		case string:
			if n, ok := ports[v]; ok {
				return fmt.Sprint(n)
			}
			return "unknown port name " + v
		}
		return fmt.Sprint(p)
	}
	if fmt.Sprint(ports["proxy"]) != portOf(got["listen"]) || fmt.Sprint(ports["admin"]) != portOf(got["admin-listen"]) {
		t.Errorf("container ports %v do not match --listen %s and --admin-listen %s", ports, got["listen"], got["admin-listen"])
	}

	// Probes: /healthz and /readyz on the admin listener.
	for name, pr := range map[string]struct {
		p    *probe
		path string
	}{"liveness": {rw.LivenessProbe, "/healthz"}, "readiness": {rw.ReadinessProbe, "/readyz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("%s probe missing", name)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path || resolve(pr.p.HTTPGet.Port) != portOf(got["admin-listen"]) {
			t.Errorf("%s probe %s on port %v, want %s on the admin listener", name, pr.p.HTTPGet.Path, pr.p.HTTPGet.Port, pr.path)
		}
	}

	// Env: real RSWEBHOOKS_* variables, from keys the Secret has, plus the
	// Go runtime's soft memory limit below the container's.
	wantEnv := []string{"GOMEMLIMIT", "RSWEBHOOKS_ADMIN_TOKEN", "RSWEBHOOKS_SERVICE_USER", "RSWEBHOOKS_SERVICE_PASSWORD"}
	var gotEnv []string
	for _, e := range rw.Env {
		gotEnv = append(gotEnv, e.Name)
		if e.Name == "GOMEMLIMIT" {
			if !strings.HasSuffix(e.Value, "MiB") {
				t.Errorf("GOMEMLIMIT %q: want a MiB value below the memory limit", e.Value)
			}
			continue
		}
		if _, ok := envs[e.Name]; !ok {
			t.Errorf("env %s is not the environment variable of any serve flag", e.Name)
		}
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("env %s: want it from the Secret", e.Name)
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if _, ok := secret.StringData[ref.Key]; ref.Name != secret.Metadata.Name || !ok {
			t.Errorf("env %s refers to %s/%s, which the Secret example does not have", e.Name, ref.Name, ref.Key)
		}
	}
	slices.Sort(gotEnv)
	slices.Sort(wantEnv)
	if !slices.Equal(gotEnv, wantEnv) {
		t.Errorf("env %v, want %v", gotEnv, wantEnv)
	}

	// Data: /data from the PVC.
	var mounted bool
	for _, m := range rw.VolumeMounts {
		if m.MountPath != got["data-dir"] {
			continue
		}
		for _, v := range dep.Template.Spec.Volumes {
			if v.Name == m.Name && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == pvc.Metadata.Name {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("--data-dir %s is not mounted from the PVC %s", got["data-dir"], pvc.Metadata.Name)
	}

	// Resources and security.
	if rw.Resources.Requests["memory"] != "128Mi" || rw.Resources.Limits["memory"] != "384Mi" {
		t.Errorf("memory request/limit %q/%q, want 128Mi/384Mi (docs/benchmarks.md, Memory bound)", rw.Resources.Requests["memory"], rw.Resources.Limits["memory"])
	}
	for _, e := range rw.Env {
		if e.Name == "GOMEMLIMIT" && e.Value != "192MiB" {
			t.Errorf("GOMEMLIMIT %q, want 192MiB: half the memory limit (docs/benchmarks.md, Memory bound)", e.Value)
		}
	}
	sc := rw.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("securityContext %+v: want runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, drop ALL", sc)
	}

	// Services: the public one targets the proxy port, the admin one the admin port.
	targets := map[string]string{}
	for _, o := range byKind["Service"] {
		var s serviceSpec
		decodeSpec(t, o, &s)
		if !subset(s.Selector, podLabels) {
			t.Errorf("Service %s selector %v does not select the pod %v", o.Metadata.Name, s.Selector, podLabels)
		}
		for _, p := range s.Ports {
			targets[o.Metadata.Name] = resolve(p.TargetPort)
		}
	}
	if !slices.Contains(slices.Collect(maps.Values(targets)), portOf(got["listen"])) {
		t.Errorf("no Service targets the proxy port: %v", targets)
	}
	if !slices.Contains(slices.Collect(maps.Values(targets)), portOf(got["admin-listen"])) {
		t.Errorf("no Service targets the admin port: %v", targets)
	}
	for name, p := range targets {
		if p == "83" {
			t.Errorf("Service %s exposes the report server directly, bypassing rswebhooks", name)
		}
	}

	// PodMonitor scrapes /metrics on the admin port of this pod.
	var pm podMonitorSpec
	decodeSpec(t, byKind["PodMonitor"][0], &pm)
	if !subset(pm.Selector.MatchLabels, podLabels) || len(pm.PodMetricsEndpoints) != 1 ||
		pm.PodMetricsEndpoints[0].Path != "/metrics" || resolve(pm.PodMetricsEndpoints[0].Port) != portOf(got["admin-listen"]) {
		t.Errorf("PodMonitor %+v: want /metrics on the admin port of the pod", pm)
	}
}

// TestExamplesQuoteTheRetrySchedule: the config and environment examples
// quote the default retry schedule; it must be the one serve --help reports.
func TestExamplesQuoteTheRetrySchedule(t *testing.T) {
	out, err := run(t, binary(t), "serve", "--help")
	if err != nil {
		t.Fatalf("serve --help: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`--retry-delays.*\(default: ([0-9a-z,]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("serve --help shows no default for --retry-delays:\n%s", out)
	}
	schedule := regexp.MustCompile(`\b\d+[smh](,\d+[smh]){3,}`)
	for _, f := range []string{"rswebhooks.example.yaml", "systemd/rswebhooks.env.example"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		quoted := schedule.FindAllString(string(b), -1)
		if len(quoted) == 0 {
			t.Errorf("%s does not quote the default retry schedule %s", f, m[1])
		}
		for _, q := range quoted {
			if q != m[1] {
				t.Errorf("%s quotes the retry schedule %s, serve --help says %s", f, q, m[1])
			}
		}
	}
}
