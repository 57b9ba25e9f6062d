// Package deploy checks the Kubernetes manifests that the Helm chart in
// k8s/courier renders (and that skaffold deploys) against the rules an SRE
// reviews by hand: probes, resources, a non-root locked-down security context,
// image names that match skaffold's artifacts, ws-edge's pod identity and drain
// time, and references between objects (Services, HPAs, PDBs, ConfigMaps,
// Secrets, ServiceAccounts, emulator hosts) that resolve inside the release.
//
// Schema validity is kubectl-validate's job (scripts/helm-lint.sh runs both);
// these rules are about intent, which a schema cannot see.
package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// Object is one rendered manifest, kept as a generic document so a test can
// break it on purpose; typed views are decoded on demand.
type Object struct {
	Kind     string
	Name     string
	Source   string // "# Source:" comment helm writes above each document
	Raw      map[string]any
	Labels   map[string]string
	Annots   map[string]string
	Document int
}

func (o Object) String() string { return o.Kind + "/" + o.Name }

// Set is the rendered release of one scenario (one values file).
type Set struct {
	Scenario string
	Objects  []Object
}

// Load reads a multi-document YAML file as helm template writes it.
func Load(path string) (Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Set{}, fmt.Errorf("read rendered manifests: %w", err)
	}
	return Parse(path, data)
}

// Parse splits and decodes multi-document YAML.
func Parse(name string, data []byte) (Set, error) {
	s := Set{Scenario: name}
	docs := bytes.Split(data, []byte("\n---"))
	for i, doc := range docs {
		source := ""
		for _, line := range strings.Split(string(doc), "\n") {
			if rest, ok := strings.CutPrefix(line, "# Source: "); ok {
				source = rest
				break
			}
		}
		var raw map[string]any
		if err := yaml.Unmarshal(doc, &raw); err != nil {
			return Set{}, fmt.Errorf("%s: document %d (%s): %w", name, i, source, err)
		}
		if len(raw) == 0 {
			continue
		}
		o := Object{Raw: raw, Source: source, Document: i}
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name        string            `json:"name"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := convert(raw, &head); err != nil {
			return Set{}, fmt.Errorf("%s: document %d (%s): %w", name, i, source, err)
		}
		o.Kind, o.Name, o.Labels, o.Annots = head.Kind, head.Metadata.Name, head.Metadata.Labels, head.Metadata.Annotations
		if o.Kind == "" || o.Name == "" {
			return Set{}, fmt.Errorf("%s: document %d (%s) has no kind or name", name, i, source)
		}
		s.Objects = append(s.Objects, o)
	}
	return s, nil
}

func convert(in any, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// Find returns the object of that kind and name.
func (s Set) Find(kind, name string) (Object, bool) {
	for _, o := range s.Objects {
		if o.Kind == kind && o.Name == name {
			return o, true
		}
	}
	return Object{}, false
}

// OfKind lists the objects of one kind.
func (s Set) OfKind(kind string) []Object {
	var out []Object
	for _, o := range s.Objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// Workload is a pod template and what owns it.
type Workload struct {
	Object
	PodLabels map[string]string
	Pod       PodSpec
}

// Component is the app.kubernetes.io/component label of the workload.
func (w Workload) Component() string { return w.Labels["app.kubernetes.io/component"] }

// Workloads lists every pod template in the set: Deployments, Jobs, CronJobs.
func (s Set) Workloads() ([]Workload, error) {
	var out []Workload
	for _, o := range s.Objects {
		var path []string
		switch o.Kind {
		case "Deployment", "StatefulSet", "DaemonSet", "Job":
			path = []string{"spec", "template"}
		case "CronJob":
			path = []string{"spec", "jobTemplate", "spec", "template"}
		default:
			continue
		}
		tmpl, ok := dig(o.Raw, path...).(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s has no pod template", o)
		}
		var t struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec PodSpec `json:"spec"`
		}
		if err := convert(tmpl, &t); err != nil {
			return nil, fmt.Errorf("%s pod template: %w", o, err)
		}
		out = append(out, Workload{Object: o, PodLabels: t.Metadata.Labels, Pod: t.Spec})
	}
	return out, nil
}

func dig(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

// The typed views below hold only the fields the rules read.

// PodSpec is the part of a pod spec the rules read.
type PodSpec struct {
	ServiceAccountName            string              `json:"serviceAccountName"`
	AutomountServiceAccountToken  *bool               `json:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds *int64              `json:"terminationGracePeriodSeconds"`
	SecurityContext               *SecurityContext    `json:"securityContext"`
	Containers                    []Container         `json:"containers"`
	InitContainers                []Container         `json:"initContainers"`
	Volumes                       []map[string]any    `json:"volumes"`
	NodeSelector                  map[string]string   `json:"nodeSelector"`
	ImagePullSecrets              []map[string]string `json:"imagePullSecrets"`
}

// AllContainers lists init and regular containers.
func (p PodSpec) AllContainers() []Container {
	return append(append([]Container{}, p.InitContainers...), p.Containers...)
}

// Container is the part of a container the rules read.
type Container struct {
	Name            string           `json:"name"`
	Image           string           `json:"image"`
	Args            []string         `json:"args"`
	Command         []string         `json:"command"`
	Ports           []ContainerPort  `json:"ports"`
	Env             []EnvVar         `json:"env"`
	EnvFrom         []EnvFromSource  `json:"envFrom"`
	LivenessProbe   *Probe           `json:"livenessProbe"`
	ReadinessProbe  *Probe           `json:"readinessProbe"`
	StartupProbe    *Probe           `json:"startupProbe"`
	Resources       Resources        `json:"resources"`
	SecurityContext *SecurityContext `json:"securityContext"`
}

// EnvValue returns a plain env value and whether it is set.
func (c Container) EnvValue(name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

// ContainerPort is a declared port.
type ContainerPort struct {
	Name          string `json:"name"`
	ContainerPort int    `json:"containerPort"`
}

// EnvVar is one env entry.
type EnvVar struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `json:"fieldPath"`
		} `json:"fieldRef"`
		SecretKeyRef *struct {
			Name string `json:"name"`
			Key  string `json:"key"`
		} `json:"secretKeyRef"`
		ConfigMapKeyRef *struct {
			Name string `json:"name"`
			Key  string `json:"key"`
		} `json:"configMapKeyRef"`
	} `json:"valueFrom"`
}

// EnvFromSource is one envFrom entry.
type EnvFromSource struct {
	ConfigMapRef *struct {
		Name string `json:"name"`
	} `json:"configMapRef"`
	SecretRef *struct {
		Name string `json:"name"`
	} `json:"secretRef"`
}

// Probe is a container probe.
type Probe struct {
	HTTPGet *struct {
		Path string `json:"path"`
		Port any    `json:"port"`
	} `json:"httpGet"`
	TCPSocket *struct {
		Port any `json:"port"`
	} `json:"tcpSocket"`
	GRPC *struct {
		Port any `json:"port"`
	} `json:"grpc"`
	Exec *struct {
		Command []string `json:"command"`
	} `json:"exec"`
}

// Port returns the port a network probe targets, or nil for exec probes.
func (p Probe) Port() any {
	switch {
	case p.HTTPGet != nil:
		return p.HTTPGet.Port
	case p.TCPSocket != nil:
		return p.TCPSocket.Port
	case p.GRPC != nil:
		return p.GRPC.Port
	}
	return nil
}

// Resources are requests and limits.
type Resources struct {
	Requests map[string]any `json:"requests"`
	Limits   map[string]any `json:"limits"`
}

// SecurityContext merges the pod and container fields the rules read.
type SecurityContext struct {
	RunAsNonRoot             *bool  `json:"runAsNonRoot"`
	RunAsUser                *int64 `json:"runAsUser"`
	AllowPrivilegeEscalation *bool  `json:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool  `json:"readOnlyRootFilesystem"`
	Privileged               *bool  `json:"privileged"`
	Capabilities             *struct {
		Add  []string `json:"add"`
		Drop []string `json:"drop"`
	} `json:"capabilities"`
	SeccompProfile *struct {
		Type string `json:"type"`
	} `json:"seccompProfile"`
}
