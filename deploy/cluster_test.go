package deploy_test

import (
	"strings"
	"testing"
)

// TestKubernetesClusterManifest: the cluster example runs several report
// server replicas, each with an rswebhooks sidecar whose PostgreSQL URL
// comes from the Secret, whose node name is the Pod's, and whose data
// directory holds only the spool.
func TestKubernetesClusterManifest(t *testing.T) {
	flags := serveFlags(t)
	envs := envNames(flags)
	byKind := k8sObjects(t, "kubernetes/cluster.yaml")
	if len(byKind["Deployment"]) != 1 || len(byKind["Secret"]) != 1 {
		t.Fatalf("want one Deployment and one Secret, got %d and %d", len(byKind["Deployment"]), len(byKind["Secret"]))
	}
	if len(byKind["PersistentVolumeClaim"]) != 0 {
		t.Error("a shared PersistentVolumeClaim: cluster nodes share PostgreSQL, not a volume")
	}
	secret := byKind["Secret"][0]
	var dep deploymentSpec
	decodeSpec(t, byKind["Deployment"][0], &dep)
	if dep.Replicas < 2 {
		t.Errorf("replicas %d: a cluster example needs several", dep.Replicas)
	}
	var rw *container
	for i := range dep.Template.Spec.Containers {
		if strings.Contains(dep.Template.Spec.Containers[i].Image, "rswebhooks") {
			rw = &dep.Template.Spec.Containers[i]
		}
	}
	if rw == nil {
		t.Fatal("no rswebhooks sidecar")
	}
	for _, a := range rw.Args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if _, ok := flags[name]; !ok {
			t.Errorf("arg %q: --%s is not a serve flag", a, name)
		}
		if name == "postgres-url" {
			t.Errorf("arg %q: the URL (with its password) belongs in the Secret", a)
		}
	}
	env := map[string]bool{}
	for _, e := range rw.Env {
		if _, ok := envs[e.Name]; !ok && e.Name != "GOMEMLIMIT" {
			t.Errorf("env %s is not a serve flag's variable", e.Name)
		}
		switch e.Name {
		case "RSWEBHOOKS_POSTGRES_URL":
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != secret.Metadata.Name ||
				secret.StringData[e.ValueFrom.SecretKeyRef.Key] == "" {
				t.Errorf("RSWEBHOOKS_POSTGRES_URL must come from a key of Secret %s", secret.Metadata.Name)
			}
		case "RSWEBHOOKS_NODE_NAME":
			if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
				t.Error("RSWEBHOOKS_NODE_NAME must be the Pod's name (fieldRef metadata.name)")
			}
		}
		env[e.Name] = true
	}
	for _, want := range []string{"RSWEBHOOKS_POSTGRES_URL", "RSWEBHOOKS_NODE_NAME"} {
		if !env[want] {
			t.Errorf("the sidecar does not set %s", want)
		}
	}
	if v, _ := argValue(rw.Args, "data-dir"); v == "" {
		t.Error("the sidecar needs --data-dir for its spool")
	}
	if rw.ReadinessProbe == nil || rw.ReadinessProbe.HTTPGet == nil || rw.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("the sidecar needs a /readyz readiness probe")
	}
	for _, v := range dep.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			t.Errorf("volume %s is a shared claim; the spool is per Pod", v.Name)
		}
	}
}
