package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kinds are the manifest kinds the deploy directory may hold, each with the Go type it must
// decode into. Anything else is an error: a kind nobody checks is a kind nobody reviewed.
var kinds = map[string]func() any{
	"v1/Namespace":                  func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":             func() any { return &corev1.ServiceAccount{} },
	"v1/Service":                    func() any { return &corev1.Service{} },
	"v1/ConfigMap":                  func() any { return &corev1.ConfigMap{} },
	"apps/v1/Deployment":            func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget": func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any {
		return &autoscalingv2.HorizontalPodAutoscaler{}
	},
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any {
		return &monitoringv1.ServiceMonitor{}
	},
}

// decodeStrict decodes one YAML document into the API type its apiVersion and kind name the
// way the API server does with strict field validation: field names are case-sensitive, and
// unknown or duplicate fields are errors naming their path.
func decodeStrict(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, fmt.Errorf("read apiVersion and kind: %w", err)
	}
	gvk := tm.APIVersion + "/" + tm.Kind
	newObject, ok := kinds[gvk]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q kind %q: not a kind the deploy tests know",
			tm.APIVersion, tm.Kind)
	}
	data, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", gvk, err)
	}
	obj := newObject()
	strictErrs, err := kjson.UnmarshalStrict(data, obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", gvk, err)
	}
	if len(strictErrs) > 0 {
		return nil, fmt.Errorf("%s: %w", gvk, errors.Join(strictErrs...))
	}
	return obj, nil
}

// splitDocuments cuts a multi-document YAML stream at its "---" lines, dropping documents
// that hold only comments or nothing.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if hasContent(cur.Bytes()) {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	for line := range bytes.Lines(data) {
		if strings.TrimRight(string(line), " \r\n") == "---" {
			flush()
			continue
		}
		cur.Write(line)
	}
	flush()
	return docs
}

func hasContent(doc []byte) bool {
	for line := range bytes.Lines(doc) {
		s := strings.TrimSpace(string(line))
		if s != "" && !strings.HasPrefix(s, "#") {
			return true
		}
	}
	return false
}

// manifests is one rendered kustomization, indexed by kind and name.
type manifests struct {
	yaml            []byte
	namespaces      map[string]*corev1.Namespace
	serviceAccounts map[string]*corev1.ServiceAccount
	services        map[string]*corev1.Service
	configMaps      map[string]*corev1.ConfigMap
	deployments     map[string]*appsv1.Deployment
	budgets         map[string]*policyv1.PodDisruptionBudget
	autoscalers     map[string]*autoscalingv2.HorizontalPodAutoscaler
	networkPolicies map[string]*networkingv1.NetworkPolicy
	serviceMonitors map[string]*monitoringv1.ServiceMonitor
	// namespaced lists every namespaced object's kind, name and namespace.
	namespaced []objectRef
}

type objectRef struct{ kind, name, namespace string }

func newManifests() *manifests {
	return &manifests{
		namespaces:      map[string]*corev1.Namespace{},
		serviceAccounts: map[string]*corev1.ServiceAccount{},
		services:        map[string]*corev1.Service{},
		configMaps:      map[string]*corev1.ConfigMap{},
		deployments:     map[string]*appsv1.Deployment{},
		budgets:         map[string]*policyv1.PodDisruptionBudget{},
		autoscalers:     map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		networkPolicies: map[string]*networkingv1.NetworkPolicy{},
		serviceMonitors: map[string]*monitoringv1.ServiceMonitor{},
	}
}

// add decodes doc strictly and files it under its kind and name; a second object of the
// same kind and name is an error.
func (m *manifests) add(doc []byte) error {
	obj, err := decodeStrict(doc)
	if err != nil {
		return err
	}
	var meta metav1.ObjectMeta
	var dup bool
	switch o := obj.(type) {
	case *corev1.Namespace:
		meta, dup = o.ObjectMeta, put(m.namespaces, o.Name, o)
	case *corev1.ServiceAccount:
		meta, dup = o.ObjectMeta, put(m.serviceAccounts, o.Name, o)
	case *corev1.Service:
		meta, dup = o.ObjectMeta, put(m.services, o.Name, o)
	case *corev1.ConfigMap:
		meta, dup = o.ObjectMeta, put(m.configMaps, o.Name, o)
	case *appsv1.Deployment:
		meta, dup = o.ObjectMeta, put(m.deployments, o.Name, o)
	case *policyv1.PodDisruptionBudget:
		meta, dup = o.ObjectMeta, put(m.budgets, o.Name, o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		meta, dup = o.ObjectMeta, put(m.autoscalers, o.Name, o)
	case *networkingv1.NetworkPolicy:
		meta, dup = o.ObjectMeta, put(m.networkPolicies, o.Name, o)
	case *monitoringv1.ServiceMonitor:
		meta, dup = o.ObjectMeta, put(m.serviceMonitors, o.Name, o)
	}
	if meta.Name == "" {
		return errors.New("object without metadata.name")
	}
	if dup {
		return fmt.Errorf("%T %q appears twice", obj, meta.Name)
	}
	if _, isNamespace := obj.(*corev1.Namespace); !isNamespace {
		m.namespaced = append(m.namespaced,
			objectRef{kind: fmt.Sprintf("%T", obj), name: meta.Name, namespace: meta.Namespace})
	}
	return nil
}

// put stores v under name and reports whether name was taken already.
func put[T any](into map[string]T, name string, v T) bool {
	_, taken := into[name]
	into[name] = v
	return taken
}

// rendered caches each kustomization's output: kustomize builds are serialised (its OpenAPI
// schema is loaded into package state without a lock, which the race detector catches), and
// several tests read the same output. Tests only read what is cached.
var rendered = struct {
	sync.Mutex
	byDir map[string]renderResult
}{byDir: map[string]renderResult{}}

type renderResult struct {
	m   *manifests
	err error
}

// render runs kustomize on dir, as `kubectl kustomize dir` would, and decodes the output.
func render(t *testing.T, dir string) *manifests {
	t.Helper()
	rendered.Lock()
	r, ok := rendered.byDir[dir]
	if !ok {
		r.m, r.err = build(dir)
		rendered.byDir[dir] = r
	}
	rendered.Unlock()
	if r.err != nil {
		t.Fatalf("kustomize build %s: %v", dir, r.err)
	}
	return r.m
}

func build(dir string) (*manifests, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	m := newManifests()
	if m.yaml, err = resources.AsYaml(); err != nil {
		return nil, fmt.Errorf("print: %w", err)
	}
	var errs []error
	for _, r := range resources.Resources() {
		doc, err := r.AsYAML()
		if err == nil {
			err = m.add(doc)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.CurId(), err))
		}
	}
	return m, errors.Join(errs...)
}

// readKustomization decodes dir's kustomization.yaml strictly, so a misspelt key fails here
// rather than being ignored.
func readKustomization(dir string) (*types.Kustomization, error) {
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k types.Kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
	}
	return &k, nil
}

// manifestFiles lists the YAML files a kustomization names as resources, and those it names
// as patches (partial objects). Directories it names are kustomizations of their own.
func manifestFiles(dir string, k *types.Kustomization) (files, patches []string) {
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			files = append(files, p)
		}
	}
	for _, p := range k.Patches {
		if p.Path != "" {
			patches = append(patches, filepath.Join(dir, p.Path))
		}
	}
	return files, patches
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
