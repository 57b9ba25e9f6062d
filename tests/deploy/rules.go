package deploy

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Project is what the rules compare the rendered manifests with.
type Project struct {
	// Artifacts are skaffold's build.artifacts[].image names.
	Artifacts []string
}

// Rule is one reviewable property of a rendered release. Check returns one
// message per violation (none when the set complies).
type Rule struct {
	Name  string
	Check func(Set, Project) []string
}

// Rules are every check, in report order.
var Rules = []Rule{
	{"probes", checkProbes},
	{"resources", checkResources},
	{"security", checkSecurity},
	{"images", checkImages},
	{"ws-edge", checkEdge},
	{"shutdown", checkShutdown},
	{"references", checkReferences},
	{"in-cluster-hosts", checkHosts},
	{"provision", checkProvision},
	{"workload-identity", checkWorkloadIdentity},
	{"autoscaling", checkAutoscaling},
	{"exposure", checkExposure},
}

// Services are the long-running Courier components: they serve /healthz and
// /readyz on HTTP_ADDR, /metrics on ADMIN_ADDR, and drain within
// SHUTDOWN_TIMEOUT.
var Services = []string{"api-gateway", "pipeline-worker", "ws-edge"}

// ImageValues maps each component running a Courier image to the values key
// holding its image (and so to a skaffold artifact).
var ImageValues = map[string]string{
	"api-gateway":     "apiGateway",
	"pipeline-worker": "pipelineWorker",
	"ws-edge":         "wsEdge",
	"provisioner":     "courierctl",
	"sweep":           "courierctl",
	"loadgen":         "courierctl", // k8s/loadgen/job.yaml, skaffold's load profile
}

func workloads(s Set) ([]Workload, []string) {
	ws, err := s.Workloads()
	if err != nil {
		return nil, []string{err.Error()}
	}
	return ws, nil
}

func checkProbes(s Set, _ Project) []string {
	ws, errs := workloads(s)
	for _, w := range ws {
		if w.Kind != "Deployment" {
			continue
		}
		for _, c := range w.Pod.Containers {
			where := fmt.Sprintf("%s container %s", w, c.Name)
			for name, p := range map[string]*Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
				if p == nil {
					errs = append(errs, fmt.Sprintf("%s has no %s", where, name))
					continue
				}
				if port := p.Port(); port != nil {
					if _, ok := resolvePort(c, port); !ok {
						errs = append(errs, fmt.Sprintf("%s: %s targets port %v, which the container does not declare", where, name, port))
					}
				} else if p.Exec == nil {
					errs = append(errs, fmt.Sprintf("%s: %s has no handler", where, name))
				}
			}
			if !slices.Contains(Services, w.Component()) || c.ReadinessProbe == nil || c.LivenessProbe == nil {
				continue
			}
			// Courier's contract: /healthz is liveness, /readyz readiness, both on HTTP_ADDR.
			addr, _ := c.EnvValue("HTTP_ADDR")
			_, httpPort, err := net.SplitHostPort(addr)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: HTTP_ADDR %q is not host:port", where, addr))
				continue
			}
			for name, want := range map[string]struct {
				p    *Probe
				path string
			}{"livenessProbe": {c.LivenessProbe, "/healthz"}, "readinessProbe": {c.ReadinessProbe, "/readyz"}} {
				if want.p.HTTPGet == nil || want.p.HTTPGet.Path != want.path {
					errs = append(errs, fmt.Sprintf("%s: %s must be an HTTP GET of %s", where, name, want.path))
					continue
				}
				if port, _ := resolvePort(c, want.p.HTTPGet.Port); strconv.Itoa(port) != httpPort {
					errs = append(errs, fmt.Sprintf("%s: %s probes port %v, but HTTP_ADDR is %s", where, name, want.p.HTTPGet.Port, addr))
				}
			}
		}
	}
	return errs
}

// resolvePort turns a named or numbered port into the container port number.
func resolvePort(c Container, port any) (int, bool) {
	switch p := port.(type) {
	case string:
		if n, err := strconv.Atoi(p); err == nil {
			return n, true
		}
		for _, cp := range c.Ports {
			if cp.Name == p {
				return cp.ContainerPort, true
			}
		}
	case float64:
		// A numbered probe port need not be declared, but ours always are.
		for _, cp := range c.Ports {
			if cp.ContainerPort == int(p) {
				return int(p), true
			}
		}
	}
	return 0, false
}

func checkResources(s Set, _ Project) []string {
	ws, errs := workloads(s)
	for _, w := range ws {
		for _, c := range w.Pod.AllContainers() {
			for _, need := range []struct {
				m        map[string]any
				resource string
				field    string
			}{{c.Resources.Requests, "cpu", "requests"}, {c.Resources.Requests, "memory", "requests"}, {c.Resources.Limits, "memory", "limits"}} {
				if _, ok := need.m[need.resource]; !ok {
					errs = append(errs, fmt.Sprintf("%s container %s has no resources.%s.%s", w, c.Name, need.field, need.resource))
				}
			}
		}
	}
	return errs
}

func checkSecurity(s Set, _ Project) []string {
	ws, errs := workloads(s)
	for _, w := range ws {
		pod := w.Pod.SecurityContext
		if pod == nil {
			pod = &SecurityContext{}
		}
		for _, c := range w.Pod.AllContainers() {
			where := fmt.Sprintf("%s container %s", w, c.Name)
			sc := c.SecurityContext
			if sc == nil {
				errs = append(errs, where+" has no securityContext")
				continue
			}
			nonRoot := pod.RunAsNonRoot
			if sc.RunAsNonRoot != nil {
				nonRoot = sc.RunAsNonRoot
			}
			if nonRoot == nil || !*nonRoot {
				errs = append(errs, where+" may run as root: runAsNonRoot is not true")
			}
			user := pod.RunAsUser
			if sc.RunAsUser != nil {
				user = sc.RunAsUser
			}
			if user != nil && *user == 0 {
				errs = append(errs, where+" runs as user 0")
			}
			seccomp := pod.SeccompProfile
			if sc.SeccompProfile != nil {
				seccomp = sc.SeccompProfile
			}
			if seccomp == nil || (seccomp.Type != "RuntimeDefault" && seccomp.Type != "Localhost") {
				errs = append(errs, where+" has no RuntimeDefault seccomp profile")
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				errs = append(errs, where+": allowPrivilegeEscalation must be false")
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				errs = append(errs, where+": readOnlyRootFilesystem must be true")
			}
			if sc.Privileged != nil && *sc.Privileged {
				errs = append(errs, where+" is privileged")
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				errs = append(errs, where+": capabilities must drop ALL")
			} else if len(sc.Capabilities.Add) > 0 {
				errs = append(errs, fmt.Sprintf("%s adds capabilities %v", where, sc.Capabilities.Add))
			}
		}
	}
	return errs
}

// ParseImage splits an image reference into repository, tag and digest.
func ParseImage(ref string) (repo, tag, digest string) {
	repo = ref
	if i := strings.Index(repo, "@"); i >= 0 {
		repo, digest = repo[:i], repo[i+1:]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	return repo, tag, digest
}

// ArtifactName is the last path element of a repository: skaffold's
// --default-repo prefixes the artifact name with a registry path.
func ArtifactName(repo string) string {
	return repo[strings.LastIndex(repo, "/")+1:]
}

func checkImages(s Set, p Project) []string {
	ws, errs := workloads(s)
	used := map[string]bool{}
	for _, w := range ws {
		for _, c := range w.Pod.AllContainers() {
			where := fmt.Sprintf("%s container %s", w, c.Name)
			repo, tag, digest := ParseImage(c.Image)
			if digest == "" && (tag == "" || tag == "latest") {
				errs = append(errs, fmt.Sprintf("%s: image %q is not pinned (no tag or digest, or :latest)", where, c.Image))
			}
			if _, ours := ImageValues[w.Component()]; !ours {
				if slices.Contains(p.Artifacts, ArtifactName(repo)) {
					errs = append(errs, fmt.Sprintf("%s (component %q) runs Courier image %s but is not a known Courier component", where, w.Component(), c.Image))
				}
				continue
			}
			name := ArtifactName(repo)
			used[name] = true
			if !slices.Contains(p.Artifacts, name) {
				errs = append(errs, fmt.Sprintf("%s: image %s is no skaffold artifact (%s)", where, c.Image, strings.Join(p.Artifacts, ", ")))
			}
		}
	}
	for _, a := range p.Artifacts {
		if !used[a] {
			errs = append(errs, fmt.Sprintf("skaffold artifact %s is used by no workload", a))
		}
	}
	return errs
}

func findWorkload(ws []Workload, component, kind string) (Workload, bool) {
	for _, w := range ws {
		if w.Component() == component && w.Kind == kind {
			return w, true
		}
	}
	return Workload{}, false
}

func container(w Workload, name string) (Container, bool) {
	for _, c := range w.Pod.Containers {
		if c.Name == name {
			return c, true
		}
	}
	return Container{}, false
}

func checkEdge(s Set, _ Project) []string {
	ws, errs := workloads(s)
	w, ok := findWorkload(ws, "ws-edge", "Deployment")
	if !ok {
		return append(errs, "no ws-edge Deployment")
	}
	c, ok := container(w, "ws-edge")
	if !ok {
		return append(errs, fmt.Sprintf("%s has no ws-edge container", w))
	}
	// POD_NAME names the pod's own subscription: it must be the pod's real,
	// unique name, which only the downward API gives.
	found := false
	for _, e := range c.Env {
		if e.Name != "POD_NAME" {
			continue
		}
		found = true
		if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
			errs = append(errs, fmt.Sprintf("%s: POD_NAME must come from fieldRef metadata.name (the downward API)", w))
		}
	}
	if !found {
		errs = append(errs, fmt.Sprintf("%s: no POD_NAME env (its subscription would be named after the host name)", w))
	}
	if _, ok := c.EnvValue("SHUTDOWN_TIMEOUT"); !ok {
		errs = append(errs, fmt.Sprintf("%s: SHUTDOWN_TIMEOUT is not set, so its drain cannot be checked against terminationGracePeriodSeconds", w))
	}
	return errs
}

func checkShutdown(s Set, _ Project) []string {
	ws, errs := workloads(s)
	for _, w := range ws {
		if w.Kind != "Deployment" || !slices.Contains(Services, w.Component()) {
			continue
		}
		grace := int64(30) // the Kubernetes default
		if g := w.Pod.TerminationGracePeriodSeconds; g != nil {
			grace = *g
		}
		for _, c := range w.Pod.Containers {
			v, ok := c.EnvValue("SHUTDOWN_TIMEOUT")
			if !ok {
				continue
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s container %s: SHUTDOWN_TIMEOUT %q: %v", w, c.Name, v, err))
				continue
			}
			if time.Duration(grace)*time.Second <= d {
				errs = append(errs, fmt.Sprintf("%s: terminationGracePeriodSeconds %d does not exceed SHUTDOWN_TIMEOUT %s: Kubernetes kills the pod mid-drain", w, grace, v))
			}
		}
	}
	return errs
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func checkReferences(s Set, _ Project) []string {
	ws, errs := workloads(s)
	deployments := map[string]Workload{}
	for _, w := range ws {
		if w.Kind == "Deployment" {
			deployments[w.Name] = w
		}
	}
	matching := func(sel map[string]string) []Workload {
		var out []Workload
		for _, w := range ws {
			if w.Kind == "Deployment" && selects(sel, w.PodLabels) {
				out = append(out, w)
			}
		}
		return out
	}
	for _, svc := range s.OfKind("Service") {
		sel := stringMap(dig(svc.Raw, "spec", "selector"))
		targets := matching(sel)
		if len(targets) == 0 {
			errs = append(errs, fmt.Sprintf("%s selects no Deployment's pods (selector %v)", svc, sel))
			continue
		}
		ports, _ := dig(svc.Raw, "spec", "ports").([]any)
		for _, p := range ports {
			pm, _ := p.(map[string]any)
			target := pm["targetPort"]
			if target == nil {
				target = pm["port"]
			}
			for _, w := range targets {
				ok := false
				for _, c := range w.Pod.Containers {
					if _, found := resolvePort(c, target); found {
						ok = true
					}
				}
				if !ok {
					errs = append(errs, fmt.Sprintf("%s port %v: targetPort %v is not a port of %s", svc, pm["name"], target, w))
				}
			}
		}
	}
	for _, kind := range []string{"PodDisruptionBudget", "PodMonitoring", "ServiceMonitor"} {
		for _, o := range s.OfKind(kind) {
			sel := stringMap(dig(o.Raw, "spec", "selector", "matchLabels"))
			if kind == "ServiceMonitor" {
				found := false
				for _, svc := range s.OfKind("Service") {
					found = found || selects(sel, svc.Labels)
				}
				if !found {
					errs = append(errs, fmt.Sprintf("%s selects no Service", o))
				}
				continue
			}
			if len(matching(sel)) == 0 {
				errs = append(errs, fmt.Sprintf("%s selects no Deployment's pods (selector %v)", o, sel))
			}
		}
	}
	for _, hpa := range s.OfKind("HorizontalPodAutoscaler") {
		ref := stringMap(dig(hpa.Raw, "spec", "scaleTargetRef"))
		if _, ok := deployments[ref["name"]]; ref["kind"] != "Deployment" || !ok {
			errs = append(errs, fmt.Sprintf("%s scales %s/%s, which is not rendered", hpa, ref["kind"], ref["name"]))
		}
	}
	for _, ing := range s.OfKind("Ingress") {
		rules, _ := dig(ing.Raw, "spec", "rules").([]any)
		for _, r := range rules {
			paths, _ := dig(r.(map[string]any), "http", "paths").([]any)
			for _, p := range paths {
				backend, _ := dig(p.(map[string]any), "backend", "service").(map[string]any)
				name, _ := backend["name"].(string)
				svc, ok := s.Find("Service", name)
				if !ok {
					errs = append(errs, fmt.Sprintf("%s routes to Service %s, which is not rendered", ing, name))
					continue
				}
				port := stringMap(backend["port"])
				found := false
				svcPorts, _ := dig(svc.Raw, "spec", "ports").([]any)
				for _, sp := range svcPorts {
					spm := stringMap(sp)
					found = found || (port["name"] != "" && spm["name"] == port["name"]) || (port["number"] != "" && spm["port"] == port["number"])
				}
				if !found {
					errs = append(errs, fmt.Sprintf("%s routes to %s port %v, which it does not expose", ing, svc, port))
				}
			}
		}
	}
	for _, svc := range s.OfKind("Service") {
		if ref := svc.Annots["cloud.google.com/backend-config"]; ref != "" {
			var names map[string]string
			if err := json.Unmarshal([]byte(ref), &names); err != nil {
				errs = append(errs, fmt.Sprintf("%s: cloud.google.com/backend-config %q: %v", svc, ref, err))
			}
			for _, n := range names {
				if _, ok := s.Find("BackendConfig", n); !ok {
					errs = append(errs, fmt.Sprintf("%s uses BackendConfig %s, which is not rendered", svc, n))
				}
			}
		}
	}
	secretKeys := map[string]map[string]bool{}
	for _, sec := range s.OfKind("Secret") {
		keys := map[string]bool{}
		for _, field := range []string{"data", "stringData"} {
			for k := range stringMap(sec.Raw[field]) {
				keys[k] = true
			}
		}
		secretKeys[sec.Name] = keys
	}
	for _, w := range ws {
		if sa := w.Pod.ServiceAccountName; sa != "" && sa != "default" {
			if _, ok := s.Find("ServiceAccount", sa); !ok {
				errs = append(errs, fmt.Sprintf("%s runs as ServiceAccount %s, which is not rendered", w, sa))
			}
		}
		for _, c := range w.Pod.AllContainers() {
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					if _, ok := s.Find("ConfigMap", ef.ConfigMapRef.Name); !ok {
						errs = append(errs, fmt.Sprintf("%s container %s: envFrom ConfigMap %s is not rendered", w, c.Name, ef.ConfigMapRef.Name))
					}
				}
				if ef.SecretRef != nil {
					if _, ok := secretKeys[ef.SecretRef.Name]; !ok {
						errs = append(errs, fmt.Sprintf("%s container %s: envFrom Secret %s is not rendered", w, c.Name, ef.SecretRef.Name))
					}
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				if keys, ok := secretKeys[ref.Name]; !ok || !keys[ref.Key] {
					errs = append(errs, fmt.Sprintf("%s container %s: %s reads key %s of Secret %s, which is not rendered", w, c.Name, e.Name, ref.Key, ref.Name))
				}
			}
		}
	}
	return errs
}

// SharedConfig is the ConfigMap the Courier services read with envFrom.
func SharedConfig(s Set) (map[string]string, string, error) {
	ws, err := s.Workloads()
	if err != nil {
		return nil, "", err
	}
	for _, w := range ws {
		if w.Component() != "api-gateway" || w.Kind != "Deployment" {
			continue
		}
		for _, c := range w.Pod.Containers {
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef == nil {
					continue
				}
				cm, ok := s.Find("ConfigMap", ef.ConfigMapRef.Name)
				if !ok {
					return nil, "", fmt.Errorf("ConfigMap %s is not rendered", ef.ConfigMapRef.Name)
				}
				return stringMap(cm.Raw["data"]), cm.Name, nil
			}
		}
	}
	return nil, "", fmt.Errorf("the api-gateway Deployment reads no ConfigMap")
}

// urlHostPort returns host:port of a URL, with the scheme's default port.
func urlHostPort(v string) (string, error) {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not an absolute URL", v)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// servicePort reports whether a rendered Service named host exposes port.
// Only short names are the release's own: a dotted name is another
// namespace's Service or outside the cluster, which a render cannot see.
func servicePort(s Set, host string, port int) error {
	if strings.Contains(host, ".") {
		return nil
	}
	name := host
	svc, ok := s.Find("Service", name)
	if !ok {
		return fmt.Errorf("no Service %s in the release", name)
	}
	ports, _ := dig(svc.Raw, "spec", "ports").([]any)
	for _, p := range ports {
		if pm, _ := p.(map[string]any); pm["port"] == float64(port) {
			return nil
		}
	}
	return fmt.Errorf("Service %s has no port %d", name, port)
}

// checkHosts: every in-cluster address the services are given (emulator
// hosts, OTLP endpoint) names a Service of the release and one of its ports,
// so the pods reach them by name. (GATEWAY_URL is the browser's address of
// the gateway, not the pods'.)
func checkHosts(s Set, _ Project) []string {
	cfg, cmName, err := SharedConfig(s)
	if err != nil {
		return []string{err.Error()}
	}
	var errs []string
	addrs := map[string]string{}
	for k, v := range cfg {
		if strings.HasSuffix(k, "_EMULATOR_HOST") {
			addrs["ConfigMap "+cmName+" "+k] = v
		}
	}
	if v, ok := cfg["OTEL_EXPORTER_OTLP_ENDPOINT"]; ok {
		if hp, err := urlHostPort(v); err == nil {
			addrs["ConfigMap "+cmName+" OTEL_EXPORTER_OTLP_ENDPOINT"] = hp
		} else {
			errs = append(errs, fmt.Sprintf("ConfigMap %s OTEL_EXPORTER_OTLP_ENDPOINT: %v", cmName, err))
		}
	}
	for where, addr := range addrs {
		host, portStr, err := net.SplitHostPort(addr)
		port, perr := strconv.Atoi(portStr)
		if err != nil || perr != nil {
			errs = append(errs, fmt.Sprintf("%s: %q is not host:port", where, addr))
			continue
		}
		if err := servicePort(s, host, port); err != nil {
			errs = append(errs, fmt.Sprintf("%s = %s: %v", where, addr, err))
		}
	}
	return errs
}

func hookWeight(o Object) int {
	w, _ := strconv.Atoi(o.Annots["helm.sh/hook-weight"])
	return w
}

// checkProvision: the hook Job provisions exactly the topology the services
// read (same settings as the shared ConfigMap), as a ServiceAccount that
// exists before it.
func checkProvision(s Set, _ Project) []string {
	ws, errs := workloads(s)
	cfg, cmName, err := SharedConfig(s)
	if err != nil {
		return append(errs, err.Error())
	}
	var jobs []Workload
	for _, w := range ws {
		if w.Kind == "Job" {
			for _, c := range w.Pod.Containers {
				if slices.Contains(c.Args, "provision") {
					jobs = append(jobs, w)
				}
			}
		}
	}
	if len(jobs) != 1 {
		return append(errs, fmt.Sprintf("want one Job running `courierctl provision`, found %d", len(jobs)))
	}
	job := jobs[0]
	hooks := strings.Split(job.Annots["helm.sh/hook"], ",")
	if !(slices.Contains(hooks, "pre-install") && slices.Contains(hooks, "pre-upgrade")) &&
		!(slices.Contains(hooks, "post-install") && slices.Contains(hooks, "post-upgrade")) {
		errs = append(errs, fmt.Sprintf("%s must be a Helm hook on install and upgrade, has helm.sh/hook %q", job, job.Annots["helm.sh/hook"]))
	}
	preInstall := slices.Contains(hooks, "pre-install")
	if preInstall && cfg["PUBSUB_EMULATOR_HOST"] != "" {
		errs = append(errs, fmt.Sprintf("%s runs pre-install, before the in-cluster emulator it targets exists", job))
	}
	for _, c := range job.Pod.Containers {
		for k, want := range cfg {
			got, ok := c.EnvValue(k)
			switch {
			case !ok && preInstall:
				errs = append(errs, fmt.Sprintf("%s lacks %s=%q of ConfigMap %s", job, k, want, cmName))
			case ok && got != want:
				errs = append(errs, fmt.Sprintf("%s provisions %s=%q but the services read %q from ConfigMap %s", job, k, got, want, cmName))
			}
		}
		if preInstall && len(c.EnvFrom) > 0 {
			errs = append(errs, fmt.Sprintf("%s runs pre-install but reads envFrom, which does not exist yet on a first install", job))
		}
	}
	if sa := job.Pod.ServiceAccountName; sa != "" && sa != "default" {
		o, ok := s.Find("ServiceAccount", sa)
		if ok && preInstall && (!strings.Contains(o.Annots["helm.sh/hook"], "pre-install") || hookWeight(o) >= hookWeight(job.Object)) {
			errs = append(errs, fmt.Sprintf("%s runs pre-install as %s, which is not a pre-install hook created before it", job, o))
		}
	}
	return errs
}

var gsaEmail = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com$`)

// checkWorkloadIdentity: on GCP (no emulator) every Courier pod runs as a
// ServiceAccount bound to a Google service account.
func checkWorkloadIdentity(s Set, _ Project) []string {
	cfg, _, err := SharedConfig(s)
	if err != nil {
		return []string{err.Error()}
	}
	if cfg["PUBSUB_EMULATOR_HOST"] != "" {
		return nil
	}
	ws, errs := workloads(s)
	for _, w := range ws {
		if _, ours := ImageValues[w.Component()]; !ours {
			continue
		}
		sa, ok := s.Find("ServiceAccount", w.Pod.ServiceAccountName)
		if !ok {
			errs = append(errs, fmt.Sprintf("%s runs as %q, not a ServiceAccount of the release", w, w.Pod.ServiceAccountName))
			continue
		}
		if email := sa.Annots["iam.gke.io/gcp-service-account"]; !gsaEmail.MatchString(email) {
			errs = append(errs, fmt.Sprintf("%s (used by %s) has no valid iam.gke.io/gcp-service-account annotation (%q)", sa, w, email))
		}
	}
	return errs
}

func checkAutoscaling(s Set, _ Project) []string {
	var errs []string
	for _, hpa := range s.OfKind("HorizontalPodAutoscaler") {
		target := stringMap(dig(hpa.Raw, "spec", "scaleTargetRef"))["name"]
		if d, ok := s.Find("Deployment", target); ok && dig(d.Raw, "spec", "replicas") != nil {
			errs = append(errs, fmt.Sprintf("%s sets spec.replicas although %s scales it: every upgrade would reset the scale", d, hpa))
		}
		metrics, _ := dig(hpa.Raw, "spec", "metrics").([]any)
		var cpu, sessions bool
		for _, m := range metrics {
			mm, _ := m.(map[string]any)
			if fmt.Sprint(dig(mm, "resource", "name")) == "cpu" {
				cpu = true
			}
			if mm["type"] == "Pods" && strings.Contains(fmt.Sprint(dig(mm, "pods", "metric", "name")), "courier_ws_edge_sessions") {
				sessions = true
			}
		}
		if !cpu {
			errs = append(errs, fmt.Sprintf("%s does not scale on CPU", hpa))
		}
		if hpa.Labels["app.kubernetes.io/component"] == "ws-edge" && !sessions {
			errs = append(errs, fmt.Sprintf("%s does not scale on sessions (Pods metric courier_ws_edge_sessions)", hpa))
		}
	}
	return errs
}

// adminPort is the container port name of every service's admin listener
// (ADMIN_ADDR): /metrics, which nothing behind the ingress may expose.
const adminPort = "admin"

// isDev reports whether the release runs on the in-cluster emulators: a
// development cluster, where the demo client and dev tokens may be routed.
func isDev(s Set) bool {
	cfg, _, err := SharedConfig(s)
	return err == nil && cfg["PUBSUB_EMULATOR_HOST"] != ""
}

// privatePaths are served on the public ports for the kubelet or for
// development only; an Ingress must not route them.
var privatePaths = []string{"/metrics", "/healthz", "/readyz", "/dev/token", "/debug"}

// checkExposure: metrics are served on the admin port only, and nothing the
// ingress routes to exposes it; a production Ingress routes only /v1/ API
// paths; no Courier pod mounts a Kubernetes API token; a release with an
// Ingress ships default-deny NetworkPolicies, none of whose rules admits
// everyone; DEV_TOKENS only in a development release.
func checkExposure(s Set, _ Project) []string {
	ws, errs := workloads(s)
	dev := isDev(s)
	for _, w := range ws {
		if _, ours := ImageValues[w.Component()]; !ours {
			continue
		}
		if w.Pod.AutomountServiceAccountToken == nil || *w.Pod.AutomountServiceAccountToken {
			errs = append(errs, fmt.Sprintf("%s mounts a Kubernetes API token (automountServiceAccountToken is not false) it never uses", w))
		}
		if sa, ok := s.Find("ServiceAccount", w.Pod.ServiceAccountName); ok {
			if v, _ := sa.Raw["automountServiceAccountToken"].(bool); v || sa.Raw["automountServiceAccountToken"] == nil {
				errs = append(errs, fmt.Sprintf("%s (used by %s): automountServiceAccountToken is not false", sa, w))
			}
		}
		for _, c := range w.Pod.Containers {
			if v, ok := c.EnvValue("DEV_TOKENS"); ok && v == "true" && !dev {
				errs = append(errs, fmt.Sprintf("%s container %s: DEV_TOKENS=true (POST /dev/token mints tokens for anyone) outside a development release", w, c.Name))
			}
			if w.Kind != "Deployment" || !slices.Contains(Services, w.Component()) {
				continue
			}
			addr, _ := c.EnvValue("ADMIN_ADDR")
			_, port, err := net.SplitHostPort(addr)
			declared, ok := resolvePort(c, adminPort)
			if err != nil || !ok || strconv.Itoa(declared) != port {
				errs = append(errs, fmt.Sprintf("%s container %s: ADMIN_ADDR %q must be the declared container port %q (%d)", w, c.Name, addr, adminPort, declared))
			}
			if a := w.Object.Raw; a != nil {
				ann := stringMap(dig(a, "spec", "template", "metadata", "annotations"))
				if p, ok := ann["prometheus.io/port"]; ok && p != port {
					errs = append(errs, fmt.Sprintf("%s: prometheus.io/port %s is not the admin port %s", w, p, port))
				}
			}
		}
	}
	for _, kind := range []string{"PodMonitoring", "ServiceMonitor"} {
		for _, o := range s.OfKind(kind) {
			eps, _ := dig(o.Raw, "spec", "endpoints").([]any)
			for _, ep := range eps {
				if p := stringMap(ep)["port"]; p != adminPort {
					errs = append(errs, fmt.Sprintf("%s scrapes port %q, not the admin port %q (the public port serves no /metrics)", o, p, adminPort))
				}
			}
		}
	}
	routed := map[string]bool{}
	for _, ing := range s.OfKind("Ingress") {
		rules, _ := dig(ing.Raw, "spec", "rules").([]any)
		for _, r := range rules {
			paths, _ := dig(r.(map[string]any), "http", "paths").([]any)
			for _, p := range paths {
				pm := p.(map[string]any)
				path, _ := pm["path"].(string)
				routed[fmt.Sprint(dig(pm, "backend", "service", "name"))] = true
				for _, private := range privatePaths {
					if path == private || strings.HasPrefix(path, private+"/") {
						errs = append(errs, fmt.Sprintf("%s routes %s, which must not be public", ing, path))
					}
				}
				if !dev && !strings.HasPrefix(path, "/v1/") {
					errs = append(errs, fmt.Sprintf("%s routes %s %q: outside a development release only /v1/ API paths are routed (it would expose /metrics, /dev/token or the demo client)", ing, pm["pathType"], path))
				}
			}
		}
	}
	for _, svc := range s.OfKind("Service") {
		ports, _ := dig(svc.Raw, "spec", "ports").([]any)
		for _, p := range ports {
			pm := stringMap(p)
			if routed[svc.Name] && (pm["targetPort"] == adminPort || pm["name"] == adminPort) {
				errs = append(errs, fmt.Sprintf("%s is routed by the Ingress and exposes the admin port (%s): /metrics would be public", svc, pm["name"]))
			}
		}
	}
	policies := s.OfKind("NetworkPolicy")
	if len(s.OfKind("Ingress")) > 0 && len(policies) == 0 {
		errs = append(errs, "the release has an Ingress but no NetworkPolicy: every pod accepts connections from anywhere")
	}
	if len(policies) > 0 {
		errs = append(errs, checkNetworkPolicies(s, ws, policies)...)
	}
	return errs
}

// checkNetworkPolicies: one default-deny policy covers every pod of the
// release, and no allow rule admits everyone (an empty or missing from/to).
func checkNetworkPolicies(s Set, ws []Workload, policies []Object) []string {
	var errs []string
	var denyAll []map[string]string
	for _, np := range policies {
		sel := stringMap(dig(np.Raw, "spec", "podSelector", "matchLabels"))
		types := fmt.Sprint(dig(np.Raw, "spec", "policyTypes"))
		in, _ := dig(np.Raw, "spec", "ingress").([]any)
		out, _ := dig(np.Raw, "spec", "egress").([]any)
		if dig(np.Raw, "spec", "podSelector", "matchExpressions") == nil && types == "[Ingress Egress]" && len(in) == 0 && len(out) == 0 {
			denyAll = append(denyAll, sel)
		}
		for _, r := range in {
			if from, _ := r.(map[string]any)["from"].([]any); len(from) == 0 {
				errs = append(errs, fmt.Sprintf("%s has an ingress rule from everyone (no from): %v", np, r))
			}
		}
		for _, r := range out {
			rm := r.(map[string]any)
			to, _ := rm["to"].([]any)
			if len(to) > 0 {
				continue
			}
			// Only DNS may go anywhere (kube-dns and node-local caches).
			ports, _ := rm["ports"].([]any)
			for _, p := range ports {
				if pm := stringMap(p); pm["port"] != "53" {
					errs = append(errs, fmt.Sprintf("%s has an egress rule to everywhere on port %s", np, pm["port"]))
				}
			}
			if len(ports) == 0 {
				errs = append(errs, fmt.Sprintf("%s has an egress rule to everywhere on every port", np))
			}
		}
	}
	for _, w := range ws {
		covered := false
		for _, sel := range denyAll {
			covered = covered || selects(sel, w.PodLabels)
		}
		if !covered {
			errs = append(errs, fmt.Sprintf("%s: no default-deny NetworkPolicy (all traffic, no rules) selects its pods", w))
		}
	}
	return errs
}
