// Package charttest renders meshgate's Helm chart (deploy/helm/meshgate) with
// the Helm library, the way `helm template` does, and decodes each object
// strictly into the Kubernetes API types. Its tests check the chart against
// the real binary; cmd/render writes deploy/kubernetes (`make manifests`).
//
// It is a module of its own so that Helm and the Kubernetes libraries stay
// out of meshgate's go.mod.
package charttest

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// Object is one rendered Kubernetes object.
type Object struct {
	Source     string // the template it came from, e.g. meshgate/templates/service.yaml
	APIVersion string
	Kind       string
	Name       string
	YAML       string // the object's YAML as rendered
}

// KubeVersion is the Kubernetes version renders are for (.Capabilities):
// one inside the range the chart's kubeVersion allows.
const KubeVersion = "1.30"

// Release names the release a render is for.
type Release struct {
	Name, Namespace string
}

// DefaultRelease is the release of deploy/kubernetes: an Istio gateway's
// place.
var DefaultRelease = Release{Name: "meshgate", Namespace: "istio-system"}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// Render renders the chart in chartDir with values over its values.yaml,
// as `helm template` would (strict: a template reading a value that does
// not exist fails), and returns its objects in Helm's install order.
func Render(chartDir string, rel Release, values map[string]any) ([]Object, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	caps := *chartutil.DefaultCapabilities
	caps.KubeVersion = chartutil.KubeVersion{Version: "v" + KubeVersion + ".0", Major: "1", Minor: strings.TrimPrefix(KubeVersion, "1.")}
	if kv := ch.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart needs Kubernetes %s, rendering for %s", kv, caps.KubeVersion.String())
	}
	if values == nil {
		values = map[string]any{}
	}
	vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{
		Name: rel.Name, Namespace: rel.Namespace, Revision: 1, IsInstall: true,
	}, &caps)
	if err != nil {
		return nil, err
	}
	files, err := engine.Engine{Strict: true}.Render(ch, vals)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		if strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var objs []Object
	for _, name := range names {
		for _, doc := range docSep.Split(files[name], -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				return nil, fmt.Errorf("%s: %w\n%s", name, err, doc)
			}
			if head.Kind == "" || head.APIVersion == "" || head.Metadata.Name == "" {
				return nil, fmt.Errorf("%s: an object without apiVersion, kind or metadata.name:\n%s", name, doc)
			}
			objs = append(objs, Object{Source: name, APIVersion: head.APIVersion, Kind: head.Kind,
				Name: head.Metadata.Name, YAML: strings.Trim(doc, "\n") + "\n"})
		}
	}
	order := func(kind string) int {
		if i := slices.Index(releaseutil.InstallOrder, kind); i >= 0 {
			return i
		}
		return len(releaseutil.InstallOrder)
	}
	sort.SliceStable(objs, func(i, j int) bool {
		if oi, oj := order(objs[i].Kind), order(objs[j].Kind); oi != oj {
			return oi < oj
		}
		return objs[i].Name < objs[j].Name
	})
	return objs, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// newTyped gives the Kubernetes API type of each kind the chart renders.
var newTyped = map[string]func() any{
	"v1/ConfigMap":                             func() any { return &corev1.ConfigMap{} },
	"v1/Service":                               func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                        func() any { return &corev1.ServiceAccount{} },
	"apps/v1/Deployment":                       func() any { return &appsv1.Deployment{} },
	"apps/v1/DaemonSet":                        func() any { return &appsv1.DaemonSet{} },
	"policy/v1/PodDisruptionBudget":            func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler":   func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"rbac.authorization.k8s.io/v1/Role":        func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding": func() any { return &rbacv1.RoleBinding{} },
}

// Decode decodes o strictly into its Kubernetes API type (*corev1.Service,
// *appsv1.Deployment, ...): an unknown or duplicated field, a value of the
// wrong type or an unparsable quantity is an error, as is a kind the chart
// is not known to render.
func Decode(o Object) (any, error) {
	mk, ok := newTyped[o.APIVersion+"/"+o.Kind]
	if !ok {
		return nil, fmt.Errorf("%s: %s %s: no Kubernetes type known for it here", o.Source, o.APIVersion, o.Kind)
	}
	v := mk()
	if err := yaml.UnmarshalStrict([]byte(o.YAML), v); err != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", o.Source, o.Kind, o.Name, err)
	}
	return v, nil
}

// Manifest joins objects into one multi-document YAML file, each with the
// template it came from, as `helm template` prints them.
func Manifest(header string, objs []Object) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	for _, o := range objs {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s", path.Clean(o.Source), o.YAML)
	}
	return b.Bytes()
}

// ManifestHeader heads the files of deploy/kubernetes.
const ManifestHeader = `# Generated by ` + "`make manifests`" + ` (deploy/helm/charttest/cmd/render) from the Helm chart
# deploy/helm/meshgate with its default values, release "meshgate" in namespace istio-system.
# Do not edit: change the chart and run make manifests (a test checks that this file is current).
`
