package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// scripts/helm-lint.sh renders one file per scenario (dev.yaml, prod.yaml, ...)
// into COURIER_RENDERED_DIR and runs these tests on them. Without it the
// rendered-manifest tests skip (they need helm), unless
// COURIER_REQUIRE_RENDERED=1 makes that a failure.
func renderedDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("COURIER_RENDERED_DIR")
	if dir == "" {
		if os.Getenv("COURIER_REQUIRE_RENDERED") == "1" {
			t.Fatal("COURIER_RENDERED_DIR is not set: run scripts/helm-lint.sh (make helm-lint)")
		}
		t.Skip("COURIER_RENDERED_DIR is not set: scripts/helm-lint.sh renders the chart and runs these tests")
	}
	return dir
}

func repoRoot() string {
	if r := os.Getenv("COURIER_REPO_ROOT"); r != "" {
		return r
	}
	return filepath.Join("..", "..")
}

type skaffoldConfig struct {
	Build struct {
		Artifacts []struct {
			Image   string `json:"image"`
			Context string `json:"context"`
			Docker  struct {
				Dockerfile string            `json:"dockerfile"`
				BuildArgs  map[string]string `json:"buildArgs"`
			} `json:"docker"`
		} `json:"artifacts"`
		TagPolicy map[string]any `json:"tagPolicy"`
	} `json:"build"`
	Manifests struct {
		Helm struct {
			Releases []struct {
				Name              string            `json:"name"`
				ChartPath         string            `json:"chartPath"`
				SetValueTemplates map[string]string `json:"setValueTemplates"`
			} `json:"releases"`
		} `json:"helm"`
	} `json:"manifests"`
	Deploy struct {
		Helm *struct{} `json:"helm"`
	} `json:"deploy"`
	Profiles []struct {
		Name    string `json:"name"`
		Patches []struct {
			Op    string `json:"op"`
			Path  string `json:"path"`
			Value any    `json:"value"`
		} `json:"patches"`
		PortForward []struct {
			ResourceType string `json:"resourceType"`
			ResourceName string `json:"resourceName"`
			Port         int    `json:"port"`
		} `json:"portForward"`
	} `json:"profiles"`
}

func loadSkaffold(t *testing.T) skaffoldConfig {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(), "skaffold.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Only the fields above are read; skaffold diagnose judges the rest.
	var c skaffoldConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("skaffold.yaml: %v", err)
	}
	return c
}

func project(t *testing.T) Project {
	t.Helper()
	var p Project
	for _, a := range loadSkaffold(t).Build.Artifacts {
		p.Artifacts = append(p.Artifacts, a.Image)
	}
	if len(p.Artifacts) == 0 {
		t.Fatal("skaffold.yaml declares no artifacts")
	}
	return p
}

// skaffold exposes an artifact's values to templates with "-" and "/" turned into "_".
func templateName(artifact string) string {
	return strings.NewReplacer("-", "_", "/", "_", ".", "_").Replace(artifact)
}

// TestSkaffoldMatchesChart: each artifact builds from the repository root
// with its Dockerfile, the chart's default image names are the artifact
// names, and skaffold sets every image's repository, tag and digest.
func TestSkaffoldMatchesChart(t *testing.T) {
	sk := loadSkaffold(t)
	root := repoRoot()
	var values map[string]any
	data, err := os.ReadFile(filepath.Join(root, "k8s", "courier", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	if _, ok := sk.Build.TagPolicy["gitCommit"]; !ok {
		t.Errorf("skaffold tagPolicy is %v, want gitCommit", sk.Build.TagPolicy)
	}
	artifacts := map[string]bool{}
	for _, a := range sk.Build.Artifacts {
		artifacts[a.Image] = true
		if a.Context != "." {
			t.Errorf("artifact %s: context %q, want the repository root (services import ../../pkg)", a.Image, a.Context)
		}
		if _, err := os.Stat(filepath.Join(root, a.Docker.Dockerfile)); err != nil {
			t.Errorf("artifact %s: Dockerfile: %v", a.Image, err)
		}
		if a.Docker.BuildArgs["VERSION"] == "" {
			t.Errorf("artifact %s: no VERSION build arg (the binary's version stamp)", a.Image)
		}
	}
	if sk.Deploy.Helm == nil {
		t.Error("skaffold deploys without helm (deploy.helm): no hooks, no `helm rollback` history")
	}
	if len(sk.Manifests.Helm.Releases) != 1 {
		t.Fatalf("want one helm release in manifests.helm, got %d", len(sk.Manifests.Helm.Releases))
	}
	rel := sk.Manifests.Helm.Releases[0]
	if rel.ChartPath != "k8s/courier" {
		t.Errorf("chartPath %q, want k8s/courier", rel.ChartPath)
	}
	covered := map[string]bool{}
	keys := slices.Sorted(func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, k := range ImageValues {
			if !seen[k] {
				seen[k] = true
				if !yield(k) {
					return
				}
			}
		}
	})
	for _, key := range keys {
		repo, _ := dig(values, key, "image", "repository").(string)
		if !artifacts[repo] {
			t.Errorf("values.yaml %s.image.repository = %q is no skaffold artifact", key, repo)
			continue
		}
		covered[repo] = true
		for field, tmpl := range map[string]string{"repository": "IMAGE_REPO_", "tag": "IMAGE_TAG_", "digest": "IMAGE_DIGEST_"} {
			k := key + ".image." + field
			want := "{{." + tmpl + templateName(repo) + "}}"
			if got := rel.SetValueTemplates[k]; got != want {
				t.Errorf("skaffold setValueTemplates[%s] = %q, want %q", k, got, want)
			}
		}
	}
	for a := range artifacts {
		if !covered[a] {
			t.Errorf("skaffold artifact %s is the image of no chart component", a)
		}
	}
	profiles := map[string][]string{}
	for _, p := range sk.Profiles {
		for _, patch := range p.Patches {
			if strings.HasSuffix(patch.Path, "/valuesFiles") {
				vs, _ := patch.Value.([]any)
				for _, v := range vs {
					f := v.(string)
					profiles[p.Name] = append(profiles[p.Name], f)
					if _, err := os.Stat(filepath.Join(root, f)); err != nil {
						t.Errorf("profile %s: values file: %v", p.Name, err)
					}
				}
			}
		}
	}
	for _, name := range []string{"dev", "prod"} {
		if len(profiles[name]) == 0 {
			t.Errorf("skaffold profile %s sets no values file", name)
		}
	}
}

// TestRenderedManifests runs every rule on every rendered scenario.
func TestRenderedManifests(t *testing.T) {
	dir := renderedDir(t)
	p := project(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rendered scenarios in %s (%v)", dir, err)
	}
	for _, f := range files {
		scenario := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(scenario, func(t *testing.T) {
			s, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range Rules {
				t.Run(r.Name, func(t *testing.T) {
					for _, msg := range r.Check(s, p) {
						t.Error(msg)
					}
				})
			}
			if scenario == "dev" {
				t.Run("port-forwards", func(t *testing.T) { checkPortForwards(t, s) })
			}
		})
	}
}

// checkPortForwards: the dev profile forwards ports of Services that the dev
// values render.
func checkPortForwards(t *testing.T, s Set) {
	for _, p := range loadSkaffold(t).Profiles {
		if p.Name != "dev" {
			continue
		}
		if len(p.PortForward) == 0 {
			t.Error("the dev profile forwards no ports")
		}
		for _, pf := range p.PortForward {
			if pf.ResourceType != "service" {
				continue
			}
			if err := servicePort(s, pf.ResourceName, pf.Port); err != nil {
				t.Errorf("dev portForward %s:%d: %v", pf.ResourceName, pf.Port, err)
			}
		}
	}
}

// rebuild round-trips documents so labels and annotations are re-read after
// a mutation.
func rebuild(t *testing.T, name string, raws []map[string]any) Set {
	t.Helper()
	var buf bytes.Buffer
	for _, r := range raws {
		b, err := yaml.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	s, err := Parse(name, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func podSpecRaw(o map[string]any) map[string]any {
	path := []string{"spec", "template", "spec"}
	if o["kind"] == "CronJob" {
		path = []string{"spec", "jobTemplate", "spec", "template", "spec"}
	}
	m, _ := dig(o, path...).(map[string]any)
	return m
}

func containerRaw(t *testing.T, o map[string]any, name string) map[string]any {
	t.Helper()
	cs, _ := podSpecRaw(o)["containers"].([]any)
	for _, c := range cs {
		if cm, _ := c.(map[string]any); cm["name"] == name {
			return cm
		}
	}
	t.Fatalf("%v/%v has no container %s", o["kind"], dig(o, "metadata", "name"), name)
	return nil
}

func setEnv(c map[string]any, name string, entry map[string]any) {
	env, _ := c["env"].([]any)
	for i, e := range env {
		if em, _ := e.(map[string]any); em["name"] == name {
			env[i] = entry
			return
		}
	}
	c["env"] = append(env, entry)
}

// TestRulesCatchViolations proves the rules are not vacuous: each mutation of
// a compliant rendering breaks exactly what a reviewer would reject, and the
// named rule must report it.
func TestRulesCatchViolations(t *testing.T) {
	dir := renderedDir(t)
	p := project(t)
	rules := map[string]Rule{}
	for _, r := range Rules {
		rules[r.Name] = r
	}
	type mutation struct {
		name, scenario, rule, kind, object string
		want                               string // a fragment of the expected message
		mutate                             func(t *testing.T, o map[string]any)
	}
	const gw, worker, edge = "courier-api-gateway", "courier-pipeline-worker", "courier-ws-edge"
	mutations := []mutation{
		{"no readiness probe", "dev", "probes", "Deployment", edge, "has no readinessProbe",
			func(t *testing.T, o map[string]any) { delete(containerRaw(t, o, "ws-edge"), "readinessProbe") }},
		{"liveness probe on the wrong path", "prod", "probes", "Deployment", gw, "must be an HTTP GET of /healthz",
			func(t *testing.T, o map[string]any) {
				containerRaw(t, o, "api-gateway")["livenessProbe"] = map[string]any{"httpGet": map[string]any{"path": "/", "port": "http"}}
			}},
		{"probe on an undeclared port", "dev", "probes", "Deployment", worker, "does not declare",
			func(t *testing.T, o map[string]any) {
				containerRaw(t, o, "pipeline-worker")["readinessProbe"] = map[string]any{"httpGet": map[string]any{"path": "/readyz", "port": "metrics"}}
			}},
		{"no resources", "prod", "resources", "Deployment", gw, "has no resources.requests.cpu",
			func(t *testing.T, o map[string]any) { delete(containerRaw(t, o, "api-gateway"), "resources") }},
		{"root allowed", "dev", "security", "Deployment", edge, "runAsNonRoot is not true",
			func(t *testing.T, o map[string]any) {
				delete(podSpecRaw(o)["securityContext"].(map[string]any), "runAsNonRoot")
			}},
		{"writable root filesystem", "prod", "security", "CronJob", "courier-sweep", "readOnlyRootFilesystem must be true",
			func(t *testing.T, o map[string]any) {
				containerRaw(t, o, "sweep")["securityContext"].(map[string]any)["readOnlyRootFilesystem"] = false
			}},
		{"emulator may escalate", "dev", "security", "Deployment", "courier-pubsub-emulator", "allowPrivilegeEscalation must be false",
			func(t *testing.T, o map[string]any) {
				delete(containerRaw(t, o, "pubsub")["securityContext"].(map[string]any), "allowPrivilegeEscalation")
			}},
		{"image name not an artifact", "prod", "images", "Deployment", worker, "is no skaffold artifact",
			func(t *testing.T, o map[string]any) {
				containerRaw(t, o, "pipeline-worker")["image"] = "courier-pipline-worker:abc123"
			}},
		{"unpinned third-party image", "dev", "images", "Deployment", "courier-jaeger", "is not pinned",
			func(t *testing.T, o map[string]any) {
				containerRaw(t, o, "jaeger")["image"] = "jaegertracing/all-in-one:latest"
			}},
		{"POD_NAME not from the downward API", "prod", "ws-edge", "Deployment", edge, "must come from fieldRef metadata.name",
			func(t *testing.T, o map[string]any) {
				setEnv(containerRaw(t, o, "ws-edge"), "POD_NAME", map[string]any{"name": "POD_NAME", "value": "edge"})
			}},
		{"grace period shorter than the drain", "prod", "shutdown", "Deployment", edge, "does not exceed SHUTDOWN_TIMEOUT",
			func(t *testing.T, o map[string]any) { podSpecRaw(o)["terminationGracePeriodSeconds"] = 20 }},
		{"Service selects nothing", "dev", "references", "Service", gw, "selects no Deployment",
			func(t *testing.T, o map[string]any) {
				o["spec"].(map[string]any)["selector"].(map[string]any)["app.kubernetes.io/component"] = "gateway"
			}},
		{"Ingress routes to a missing Service", "prod", "references", "Ingress", "courier", "which is not rendered",
			func(t *testing.T, o map[string]any) {
				rules := o["spec"].(map[string]any)["rules"].([]any)
				path := dig(rules[1].(map[string]any), "http", "paths").([]any)[0].(map[string]any)
				dig(path, "backend", "service").(map[string]any)["name"] = "courier-edge"
			}},
		{"emulator host names no Service", "dev", "in-cluster-hosts", "ConfigMap", "courier-config", "no Service courier-pubsub",
			func(t *testing.T, o map[string]any) {
				o["data"].(map[string]any)["PUBSUB_EMULATOR_HOST"] = "courier-pubsub:8085"
			}},
		{"provisioner and services disagree", "prod", "provision", "Job", "courier-provisioner", "but the services read",
			func(t *testing.T, o map[string]any) {
				setEnv(containerRaw(t, o, "provision"), "INGRESS_MAX_DELIVERY_ATTEMPTS", map[string]any{"name": "INGRESS_MAX_DELIVERY_ATTEMPTS", "value": "7"})
			}},
		{"no Workload Identity", "prod", "workload-identity", "ServiceAccount", worker, "iam.gke.io/gcp-service-account",
			func(t *testing.T, o map[string]any) { delete(o["metadata"].(map[string]any), "annotations") }},
		{"Ingress routes /metrics", "prod", "exposure", "Ingress", "courier", "routes /metrics",
			func(t *testing.T, o map[string]any) {
				rules := o["spec"].(map[string]any)["rules"].([]any)
				http := rules[0].(map[string]any)["http"].(map[string]any)
				first := http["paths"].([]any)[0].(map[string]any)
				http["paths"] = append(http["paths"].([]any), map[string]any{"path": "/metrics", "pathType": "Exact", "backend": first["backend"]})
			}},
		{"Ingress routes everything to the edge", "prod", "exposure", "Ingress", "courier", `Prefix "/"`,
			func(t *testing.T, o map[string]any) {
				rules := o["spec"].(map[string]any)["rules"].([]any)
				path := dig(rules[1].(map[string]any), "http", "paths").([]any)[0].(map[string]any)
				path["path"], path["pathType"] = "/", "Prefix"
			}},
		{"admin port on the ingress's Service", "prod", "exposure", "Service", edge, "exposes the admin port",
			func(t *testing.T, o map[string]any) {
				spec := o["spec"].(map[string]any)
				spec["ports"] = append(spec["ports"].([]any), map[string]any{"name": "admin", "port": 9464, "targetPort": "admin"})
			}},
		{"metrics scraped on the public port", "prod", "exposure", "PodMonitoring", worker, "not the admin port",
			func(t *testing.T, o map[string]any) {
				o["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)["port"] = "http"
			}},
		{"ADMIN_ADDR not the declared port", "prod", "exposure", "Deployment", gw, "must be the declared container port",
			func(t *testing.T, o map[string]any) {
				setEnv(containerRaw(t, o, "api-gateway"), "ADMIN_ADDR", map[string]any{"name": "ADMIN_ADDR", "value": ":9090"})
			}},
		{"API token mounted", "prod", "exposure", "Deployment", edge, "automountServiceAccountToken",
			func(t *testing.T, o map[string]any) { delete(podSpecRaw(o), "automountServiceAccountToken") }},
		{"dev tokens in production", "prod", "exposure", "Deployment", edge, "DEV_TOKENS=true",
			func(t *testing.T, o map[string]any) {
				setEnv(containerRaw(t, o, "ws-edge"), "DEV_TOKENS", map[string]any{"name": "DEV_TOKENS", "value": "true"})
			}},
		{"gRPC open to everyone", "prod", "exposure", "NetworkPolicy", gw, "from everyone",
			func(t *testing.T, o map[string]any) {
				spec := o["spec"].(map[string]any)
				spec["ingress"] = append(spec["ingress"].([]any), map[string]any{"ports": []any{map[string]any{"port": "grpc"}}})
			}},
		{"egress anywhere", "prod", "exposure", "NetworkPolicy", "courier-egress", "to everywhere on port 443",
			func(t *testing.T, o map[string]any) {
				spec := o["spec"].(map[string]any)
				spec["egress"] = append(spec["egress"].([]any), map[string]any{"ports": []any{map[string]any{"port": 443}}})
			}},
		{"no default deny", "dev", "exposure", "NetworkPolicy", "courier-default-deny", "no default-deny NetworkPolicy",
			func(t *testing.T, o map[string]any) { o["spec"].(map[string]any)["policyTypes"] = []any{"Ingress"} }},
		{"ws-edge HPA without sessions", "prod", "autoscaling", "HorizontalPodAutoscaler", edge, "does not scale on sessions",
			func(t *testing.T, o map[string]any) {
				ms := o["spec"].(map[string]any)["metrics"].([]any)
				o["spec"].(map[string]any)["metrics"] = ms[:1]
			}},
	}
	loaded := map[string]Set{}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			s, ok := loaded[m.scenario]
			if !ok {
				var err error
				if s, err = Load(filepath.Join(dir, m.scenario+".yaml")); err != nil {
					t.Fatal(err)
				}
				loaded[m.scenario] = s
			}
			rule := rules[m.rule]
			if before := rule.Check(s, p); len(before) != 0 {
				t.Fatalf("%s: rule %s already fails before the mutation: %v", m.scenario, m.rule, before)
			}
			// Mutate a deep copy: marshal, unmarshal, change one object.
			copied := rebuild(t, s.Scenario, raws(s))
			var docs []map[string]any
			found := false
			for _, o := range copied.Objects {
				if o.Kind == m.kind && o.Name == m.object {
					m.mutate(t, o.Raw)
					found = true
				}
				docs = append(docs, o.Raw)
			}
			if !found {
				t.Fatalf("%s renders no %s/%s", m.scenario, m.kind, m.object)
			}
			after := rule.Check(rebuild(t, s.Scenario, docs), p)
			if len(after) == 0 {
				t.Fatalf("rule %s did not catch: %s", m.rule, m.name)
			}
			if !slices.ContainsFunc(after, func(msg string) bool { return strings.Contains(msg, m.want) }) {
				t.Fatalf("rule %s reported %q, want a message containing %q", m.rule, after, m.want)
			}
			t.Logf("caught: %s", after[0])
		})
	}
}

func raws(s Set) []map[string]any {
	out := make([]map[string]any, len(s.Objects))
	for i, o := range s.Objects {
		out[i] = o.Raw
	}
	return out
}

// TestParseImage pins the image reference parsing the images rule relies on.
func TestParseImage(t *testing.T) {
	for _, tc := range []struct{ ref, repo, tag, digest string }{
		{"courier-ws-edge:abc", "courier-ws-edge", "abc", ""},
		{"localhost:5000/courier-ws-edge", "localhost:5000/courier-ws-edge", "", ""},
		{"europe-docker.pkg.dev/p/courier/courierctl:v1@sha256:00", "europe-docker.pkg.dev/p/courier/courierctl", "v1", "sha256:00"},
		{"courierctl@sha256:00", "courierctl", "", "sha256:00"},
	} {
		repo, tag, digest := ParseImage(tc.ref)
		if repo != tc.repo || tag != tc.tag || digest != tc.digest {
			t.Errorf("ParseImage(%q) = %q %q %q, want %q %q %q", tc.ref, repo, tag, digest, tc.repo, tc.tag, tc.digest)
		}
	}
	if got := ArtifactName("europe-docker.pkg.dev/p/courier/courierctl"); got != "courierctl" {
		t.Errorf("ArtifactName = %q", got)
	}
}
