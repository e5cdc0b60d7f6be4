package deploy

import (
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"tunnelgateway/internal/app"
	"tunnelgateway/internal/config"
	"tunnelgateway/internal/policy"
)

const (
	gatewayName   = "tunnel-gateway"
	containerName = "gateway"
	policyMapName = "tunnel-gateway-policy"
	// workloadIdentityLabel asks the Azure Workload Identity webhook to mutate the pod.
	workloadIdentityLabel = "azure.workload.identity/use"
	clientIDAnnotation    = "azure.workload.identity/client-id"
	tenantIDAnnotation    = "azure.workload.identity/tenant-id"
	// placeholderID marks ids the base leaves for an overlay to set.
	placeholderID = "00000000-0000-0000-0000-000000000000"
)

// target is one kustomization the tests render, with what its output must show.
type target struct {
	name       string
	dir        string
	credential string // as config.GraphConfig.Credential names it
	namespace  string // "" for the base, which leaves it to overlays
	image      string
	replicas   int32
}

var targets = []target{
	{name: "base", dir: "base", credential: "workload-identity", image: "tunnel-gateway",
		replicas: 2},
	{name: "example overlay", dir: "overlays/example", credential: "workload-identity",
		namespace: "tunnel-gateway", image: "contoso.azurecr.io/platform/tunnel-gateway:1.0.0",
		replicas: 3},
	{name: "example overlay with a client secret", dir: "overlays/example-client-secret",
		credential: "client-secret", namespace: "tunnel-gateway",
		image: "contoso.azurecr.io/platform/tunnel-gateway:1.0.0", replicas: 3},
}

// TestKustomizationFilesDecodeStrictly reads every kustomization under deploy/ and decodes
// each file it names, patches included, into the API types. Patches are partial objects,
// but a misspelt field in one is as wrong as in a full manifest.
func TestKustomizationFilesDecodeStrictly(t *testing.T) {
	t.Parallel()
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "kustomization.yaml" {
			dirs = append(dirs, filepath.Dir(path))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"base", "components/client-secret", "overlays/example"} {
		if !slices.Contains(dirs, want) {
			t.Errorf("kustomizations found: %v, want %s among them", dirs, want)
		}
	}

	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			k, err := readKustomization(dir)
			if err != nil {
				t.Fatal(err)
			}
			files, patches := manifestFiles(dir, k)
			for _, f := range append(files, patches...) {
				checkFileDecodes(t, f)
			}
			for _, g := range k.ConfigMapGenerator {
				if g.Name == policyMapName {
					for _, f := range g.FileSources {
						checkPolicyFile(t, filepath.Join(dir, f))
					}
				}
			}
		})
	}
}

func checkFileDecodes(t *testing.T, path string) {
	t.Helper()
	data := readFile(t, path)
	docs := splitDocuments(data)
	if len(docs) == 0 {
		t.Errorf("%s: holds no manifest", path)
	}
	for i, doc := range docs {
		if _, err := decodeStrict(doc); err != nil {
			t.Errorf("%s, document %d: %v", path, i+1, err)
		}
	}
}

func checkPolicyFile(t *testing.T, path string) {
	t.Helper()
	if _, err := policy.Parse(readFile(t, path)); err != nil {
		t.Errorf("%s: %v", path, err)
	}
}

// TestDecodeStrictRejects shows that the strict decoding the other tests rely on refuses
// what the API server would refuse or silently drop.
func TestDecodeStrictRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{
			name: "misspelt field",
			doc: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n" +
				"spec: {replica: 2}\n",
			want: `unknown field "spec.replica"`,
		},
		{
			name: "field at the wrong level",
			doc: "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n" +
				"spec: {ports: [{port: 80, containerPort: 8080}]}\n",
			want: `unknown field "spec.ports[0].containerPort"`,
		},
		{
			name: "field in the wrong case",
			doc: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n" +
				"spec: {Replicas: 2}\n",
			want: `unknown field "spec.Replicas"`,
		},
		{
			name: "duplicate field",
			doc:  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nmetadata: {name: y}\n",
			want: "already set",
		},
		{
			name: "unknown kind",
			doc:  "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n",
			want: "not a kind the deploy tests know",
		},
		{
			name: "wrong type",
			doc: "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n" +
				"metadata: {name: x}\nspec: {minReplicas: two}\n",
			want: "minReplicas",
		},
		{
			name: "unknown ServiceMonitor field",
			doc: "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\n" +
				"metadata: {name: x}\nspec: {endpoints: [{portName: admin}]}\n",
			want: `unknown field "spec.endpoints[0].portName"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeStrict([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decodeStrict: got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestRenderedManifests renders each kustomization and checks the output against the
// binary's configuration and against itself.
func TestRenderedManifests(t *testing.T) {
	t.Parallel()
	checks := []struct {
		name  string
		check func(*testing.T, target, *manifests)
	}{
		{"configuration", checkConfiguration},
		{"ports", checkPorts},
		{"probes", checkProbes},
		{"shutdown", checkShutdown},
		{"security", checkSecurity},
		{"caller policy", checkPolicyConfigMap},
		{"selectors", checkSelectors},
		{"service monitor", checkServiceMonitor},
		{"redis", checkRedis},
		{"network policy", checkNetworkPolicy},
		{"identity", checkIdentity},
		{"overlay", checkOverlay},
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, tg.dir)
			for _, c := range checks {
				t.Run(c.name, func(t *testing.T) { c.check(t, tg, m) })
			}
		})
	}
}

// gateway returns the gateway's Deployment and container.
func gateway(t *testing.T, m *manifests) (*appsv1.Deployment, *corev1.Container) {
	t.Helper()
	d, ok := m.deployments[gatewayName]
	if !ok {
		t.Fatalf("no Deployment %q", gatewayName)
	}
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == containerName {
			return d, c
		}
	}
	t.Fatalf("Deployment %q has no container %q", gatewayName, containerName)
	return nil, nil
}

// gatewayConfig reads the configuration the gateway would see in the pod: the container's
// env, plus what the workload identity webhook injects when the pod asks for it (the webhook
// leaves variables the container sets alone). Values from a Secret are stand-ins.
func gatewayConfig(t *testing.T, m *manifests) *config.Config {
	t.Helper()
	d, c := gateway(t, m)
	vars := map[string]string{}
	for _, e := range c.Env {
		switch {
		case slices.Contains(goRuntimeEnv, e.Name):
			// Read by the Go runtime before main; internal/config never sees it.
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			vars[e.Name] = "from-secret-" + e.ValueFrom.SecretKeyRef.Key
		case e.ValueFrom != nil:
			t.Errorf("env %s: only literal values and secretKeyRef are modelled here", e.Name)
		default:
			vars[e.Name] = e.Value
		}
	}
	if d.Spec.Template.Labels[workloadIdentityLabel] == "true" {
		sa := m.serviceAccounts[d.Spec.Template.Spec.ServiceAccountName]
		injected := map[string]string{
			"AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token",
			"AZURE_AUTHORITY_HOST":       "https://login.microsoftonline.com/",
		}
		if sa != nil {
			injected["AZURE_CLIENT_ID"] = sa.Annotations[clientIDAnnotation]
			injected["AZURE_TENANT_ID"] = sa.Annotations[tenantIDAnnotation]
		}
		for k, v := range injected {
			if _, set := vars[k]; !set {
				vars[k] = v
			}
		}
	}
	environ := make([]string, 0, len(vars))
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.FromEnv(environ)
	if err != nil {
		t.Fatalf("config.FromEnv with the manifest's env: %v", err)
	}
	return cfg
}

func checkConfiguration(t *testing.T, tg target, m *manifests) {
	_, c := gateway(t, m)
	names, err := config.EnvNames()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range c.Env {
		if !slices.Contains(names, e.Name) && !slices.Contains(goRuntimeEnv, e.Name) {
			t.Errorf("env %s: the gateway's configuration does not read it (config.EnvNames)",
				e.Name)
		}
	}
	checkMemoryLimitEnv(t, c)
	if len(c.EnvFrom) > 0 {
		t.Errorf("envFrom: got %d sources, want none (names it brings cannot be checked)",
			len(c.EnvFrom))
	}
	for _, e := range c.Env {
		secret := e.Name == "AZURE_CLIENT_SECRET" || e.Name == "AZURE_CLIENT_CERTIFICATE_PASSWORD"
		if secret && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("env %s: want a secretKeyRef, never a literal value", e.Name)
		}
	}

	cfg := gatewayConfig(t, m)
	if err := cfg.Validate(); err != nil {
		t.Errorf("the gateway would refuse this configuration:\n%v", err)
	}
	if got := cfg.Graph.Credential(); got != tg.credential {
		t.Errorf("Graph credential: got %q, want %q", got, tg.credential)
	}
}

// addrPort is the port of a host:port listener address.
func addrPort(t *testing.T, addr string) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listener address %q: %v", addr, err)
	}
	n, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		t.Fatalf("listener address %q: port: %v", addr, err)
	}
	return int32(n)
}

// containerPort resolves a port by name or number to one the container declares.
func containerPort(c *corev1.Container, port intstr.IntOrString) (int32, bool) {
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) ||
			(port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// goRuntimeEnv are the variables the gateway's environment may set for the Go runtime itself.
var goRuntimeEnv = []string{"GOMEMLIMIT"}

// checkMemoryLimitEnv wants GOMEMLIMIT to follow the container's own memory limit, in bytes:
// a literal would drift from the limit when an overlay changes it, and a divisor such as 1Mi
// would hand the runtime a bare number it reads as bytes.
func checkMemoryLimitEnv(t *testing.T, c *corev1.Container) {
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
	if i < 0 {
		t.Error("env GOMEMLIMIT: missing; want it from the container's memory limit")
		return
	}
	ref := (*corev1.ResourceFieldSelector)(nil)
	if from := c.Env[i].ValueFrom; from != nil {
		ref = from.ResourceFieldRef
	}
	if ref == nil || ref.Resource != "limits.memory" ||
		(ref.ContainerName != "" && ref.ContainerName != c.Name) ||
		(!ref.Divisor.IsZero() && ref.Divisor.Value() != 1) {
		t.Errorf("env GOMEMLIMIT: got %+v, want a resourceFieldRef to this container's "+
			"limits.memory in bytes", c.Env[i])
	}
}

func checkPorts(t *testing.T, _ target, m *manifests) {
	_, c := gateway(t, m)
	cfg := gatewayConfig(t, m)
	for _, want := range []struct {
		name string
		addr string
	}{{"http", cfg.Addr}, {"admin", cfg.AdminAddr}} {
		got, ok := containerPort(c, intstr.FromString(want.name))
		if !ok {
			t.Errorf("container port %q: not declared", want.name)
			continue
		}
		if wantPort := addrPort(t, want.addr); got != wantPort {
			t.Errorf("container port %q: got %d, want %d (the gateway listens on %q)",
				want.name, got, wantPort, want.addr)
		}
	}
}

func checkProbes(t *testing.T, _ target, m *manifests) {
	_, c := gateway(t, m)
	adminPort := addrPort(t, gatewayConfig(t, m).AdminAddr)
	probes := []struct {
		name     string
		probe    *corev1.Probe
		wantPath string
	}{
		// Liveness must not be /readyz: a Redis or Graph outage would then restart every pod.
		{"startup", c.StartupProbe, "/healthz"},
		{"liveness", c.LivenessProbe, "/healthz"},
		// Readiness must be /readyz: it is what turns false while the gateway drains.
		{"readiness", c.ReadinessProbe, "/readyz"},
	}
	for _, p := range probes {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: got none, want an httpGet on the admin port", p.name)
			continue
		}
		if got := p.probe.HTTPGet.Path; got != p.wantPath {
			t.Errorf("%s probe path: got %q, want %q", p.name, got, p.wantPath)
		}
		got, ok := containerPort(c, p.probe.HTTPGet.Port)
		if !ok || got != adminPort {
			t.Errorf("%s probe port %s: got container port %d, want the admin port %d",
				p.name, p.probe.HTTPGet.Port.String(), got, adminPort)
		}
	}
}

func checkShutdown(t *testing.T, _ target, m *manifests) {
	d, c := gateway(t, m)
	drain := gatewayConfig(t, m).Requests.DrainTimeout
	var sleep time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if c.Lifecycle.PreStop.Sleep == nil {
			t.Errorf("preStop: want a sleep action (the image has no shell for exec)")
		} else {
			sleep = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
	}
	if sleep == 0 {
		t.Errorf("preStop sleep: got none, want a few seconds for endpoint removal to spread")
	}
	grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil {
		t.Fatal("terminationGracePeriodSeconds: not set (the default 30s is too short)")
	}
	// The audit flush runs after the drain with time of its own; a kill before it ends loses
	// the last ResponseComplete events.
	if got := time.Duration(*grace) * time.Second; got <= sleep+drain+app.AuditFlushTimeout {
		t.Errorf("terminationGracePeriodSeconds: got %v, want more than the preStop sleep %v "+
			"plus GATEWAY_DRAIN_TIMEOUT %v plus the audit flush %v", got, sleep, drain,
			app.AuditFlushTimeout)
	}
}

// checkSecurity holds every container of every Deployment to the restricted Pod Security
// Standard and asks for resource requests and a memory limit.
func checkSecurity(t *testing.T, _ target, m *manifests) {
	for _, d := range m.deployments {
		pod := d.Spec.Template.Spec
		psc := pod.SecurityContext
		if psc == nil {
			psc = &corev1.PodSecurityContext{}
		}
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken: want false", d.Name)
		}
		for _, c := range pod.Containers {
			checkContainerSecurity(t, d.Name+"/"+c.Name, psc, c)
		}
	}
}

func checkContainerSecurity(t *testing.T, where string, psc *corev1.PodSecurityContext,
	c corev1.Container) {
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("%s: no securityContext", where)
		return
	}
	if !isTrue(sc.RunAsNonRoot) && !isTrue(psc.RunAsNonRoot) {
		t.Errorf("%s: runAsNonRoot: want true", where)
	}
	uid := sc.RunAsUser
	if uid == nil {
		uid = psc.RunAsUser
	}
	if uid == nil || *uid == 0 {
		t.Errorf("%s: runAsUser: want a numeric non-root id", where)
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Errorf("%s: readOnlyRootFilesystem: want true", where)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation: want false", where)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") ||
		len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities: want drop ALL and add none", where)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccompProfile: want RuntimeDefault", where)
	}
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
		t.Errorf("%s: resources: want cpu and memory requests and a memory limit", where)
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

func checkPolicyConfigMap(t *testing.T, _ target, m *manifests) {
	d, c := gateway(t, m)
	path := gatewayConfig(t, m).Callers.PolicyFile
	dir, key := filepath.Dir(path), filepath.Base(path)

	var volume string
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == dir {
			volume = vm.Name
		}
	}
	if volume == "" {
		t.Fatalf("GATEWAY_POLICY_FILE %s: nothing is mounted at %s", path, dir)
	}
	var mapName string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == volume && v.ConfigMap != nil {
			mapName = v.ConfigMap.Name
		}
	}
	cm, ok := m.configMaps[mapName]
	if !ok {
		t.Fatalf("volume %q: got ConfigMap %q, which is not in the output", volume, mapName)
	}
	if !strings.HasPrefix(mapName, policyMapName+"-") {
		t.Errorf("ConfigMap %q: want the generated %s-<hash>, so a change rolls the pods",
			mapName, policyMapName)
	}
	data, ok := cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %q: no key %q for GATEWAY_POLICY_FILE %s", mapName, key, path)
	}
	if _, err := policy.Parse([]byte(data)); err != nil {
		t.Errorf("ConfigMap %q key %q: %v", mapName, key, err)
	}
}

// selects reports whether a label selector matches a pod's labels. An empty selector would
// match every pod in the namespace, which is never what these manifests mean.
func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return false
	}
	return s.Matches(labels.Set(podLabels))
}

func checkSelectors(t *testing.T, tg target, m *manifests) {
	d, _ := gateway(t, m)
	pod := d.Spec.Template.Labels
	if !selects(t, d.Spec.Selector, pod) {
		t.Errorf("Deployment %s: selector does not match its own pod template", d.Name)
	}
	svc, ok := m.services[gatewayName]
	if !ok {
		t.Fatalf("no Service %q", gatewayName)
	}
	if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, pod) {
		t.Errorf("Service %s: selector %v does not match the pods", svc.Name, svc.Spec.Selector)
	}
	for _, other := range m.deployments {
		if other.Name != d.Name && selects(t, d.Spec.Selector, other.Spec.Template.Labels) {
			t.Errorf("Deployment %s: selector also matches Deployment %s's pods", d.Name,
				other.Name)
		}
	}
	pdb, ok := m.budgets[gatewayName]
	if !ok || !selects(t, pdb.Spec.Selector, pod) {
		t.Errorf("PodDisruptionBudget %s: missing or does not select the pods", gatewayName)
	} else if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() < 1 {
		t.Errorf("PodDisruptionBudget: want maxUnavailable of at least 1 so drains can proceed")
	}

	hpa, ok := m.autoscalers[gatewayName]
	if !ok {
		t.Fatalf("no HorizontalPodAutoscaler %q", gatewayName)
	}
	ref := hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
		t.Errorf("HorizontalPodAutoscaler target: got %s %s %s, want apps/v1 Deployment %s",
			ref.APIVersion, ref.Kind, ref.Name, d.Name)
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if replicas != tg.replicas {
		t.Errorf("Deployment replicas: got %d, want %d", replicas, tg.replicas)
	}
	minReplicas := int32(1)
	if hpa.Spec.MinReplicas != nil {
		minReplicas = *hpa.Spec.MinReplicas
	}
	if minReplicas != replicas || hpa.Spec.MaxReplicas <= replicas {
		t.Errorf("HorizontalPodAutoscaler: got min %d max %d, want min %d (the Deployment's "+
			"replicas) and a higher max", minReplicas, hpa.Spec.MaxReplicas, replicas)
	}
}

// servicePortTarget resolves a Service port (by name) to the container port behind it.
func servicePortTarget(svc *corev1.Service, name string, c *corev1.Container) (int32, bool) {
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return containerPort(c, p.TargetPort)
		}
	}
	return 0, false
}

func checkServiceMonitor(t *testing.T, _ target, m *manifests) {
	_, c := gateway(t, m)
	adminPort := addrPort(t, gatewayConfig(t, m).AdminAddr)
	svc := m.services[gatewayName]
	sm, ok := m.serviceMonitors[gatewayName]
	if !ok || svc == nil {
		t.Fatalf("want a ServiceMonitor and a Service named %q", gatewayName)
	}
	if !selects(t, &sm.Spec.Selector, svc.Labels) {
		t.Errorf("ServiceMonitor selector %v does not match the Service's labels %v",
			sm.Spec.Selector.MatchLabels, svc.Labels)
	}
	if len(sm.Spec.Endpoints) == 0 {
		t.Fatal("ServiceMonitor: no endpoints")
	}
	for _, ep := range sm.Spec.Endpoints {
		got, ok := servicePortTarget(svc, ep.Port, c)
		if !ok || got != adminPort {
			t.Errorf("ServiceMonitor endpoint port %q: got container port %d, want the admin "+
				"port %d", ep.Port, got, adminPort)
		}
		if ep.Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoint path: got %q, want /metrics", ep.Path)
		}
	}
}

// redisBackend finds the Service GATEWAY_REDIS_ADDR names and the Deployment behind it.
func redisBackend(t *testing.T, m *manifests) (*corev1.Service, *appsv1.Deployment, int32) {
	t.Helper()
	addr := gatewayConfig(t, m).Budget.RedisAddr
	if addr == "" {
		t.Fatal("GATEWAY_REDIS_ADDR: not set; replicas would not share the write budget")
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("GATEWAY_REDIS_ADDR %q: %v", addr, err)
	}
	port := addrPort(t, addr)
	svc, ok := m.services[strings.Split(host, ".")[0]]
	if !ok {
		t.Fatalf("GATEWAY_REDIS_ADDR %q: no Service of that name in the output", addr)
	}
	for _, p := range svc.Spec.Ports {
		if p.Port != port {
			continue
		}
		for _, d := range m.deployments {
			if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector},
				d.Spec.Template.Labels) {
				continue
			}
			for i := range d.Spec.Template.Spec.Containers {
				if cp, ok := containerPort(&d.Spec.Template.Spec.Containers[i],
					p.TargetPort); ok {
					return svc, d, cp
				}
			}
		}
	}
	t.Fatalf("GATEWAY_REDIS_ADDR %q: Service %s has no port %d backed by a Deployment's "+
		"container port", addr, svc.Name, port)
	return nil, nil, 0
}

func checkRedis(t *testing.T, _ target, m *manifests) {
	_, d, _ := redisBackend(t, m)
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("Deployment %s: strategy %q, want Recreate (one budget at a time)", d.Name,
			d.Spec.Strategy.Type)
	}
}

// policyFor returns the NetworkPolicy whose podSelector selects the given pods.
func policyFor(t *testing.T, m *manifests, pod map[string]string) *networkingv1.NetworkPolicy {
	t.Helper()
	for _, np := range m.networkPolicies {
		if selects(t, &np.Spec.PodSelector, pod) {
			return np
		}
	}
	t.Fatalf("no NetworkPolicy selects pods labelled %v", pod)
	return nil
}

func checkNetworkPolicy(t *testing.T, _ target, m *manifests) {
	d, c := gateway(t, m)
	np := policyFor(t, m, d.Spec.Template.Labels)
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) ||
		!slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Errorf("NetworkPolicy %s: policyTypes %v, want Ingress and Egress", np.Name,
			np.Spec.PolicyTypes)
	}

	// Each ingress rule opens exactly one of the gateway's two ports.
	opened := map[string]bool{}
	for i, rule := range np.Spec.Ingress {
		if len(rule.Ports) != 1 || rule.Ports[0].Port == nil || len(rule.From) == 0 {
			t.Errorf("NetworkPolicy %s ingress %d: want one port and a from clause", np.Name, i)
			continue
		}
		if _, ok := containerPort(c, *rule.Ports[0].Port); !ok {
			t.Errorf("NetworkPolicy %s ingress %d: port %s is not a container port", np.Name, i,
				rule.Ports[0].Port.String())
		}
		opened[rule.Ports[0].Port.String()] = true
	}
	if !opened["http"] || !opened["admin"] || len(opened) != 2 {
		t.Errorf("NetworkPolicy %s: ingress opens %v, want http and admin", np.Name, opened)
	}

	// Egress reaches DNS, the write budget's Redis and 443, and nothing else: every rule names
	// both its ports and its peers (an empty list in either opens everything).
	_, redis, redisPort := redisBackend(t, m)
	var dns, toRedis, https bool
	for i, rule := range np.Spec.Egress {
		if len(rule.Ports) == 0 || len(rule.To) == 0 {
			t.Errorf("NetworkPolicy %s egress %d: ports %d, peers %d; want both listed", np.Name, i,
				len(rule.Ports), len(rule.To))
			continue
		}
		switch port := egressPort(t, np.Name, i, rule.Ports); {
		case port == 53 && allPeers(rule.To, func(p networkingv1.NetworkPolicyPeer) bool {
			return p.IPBlock == nil && p.PodSelector != nil &&
				p.PodSelector.MatchLabels["k8s-app"] == "kube-dns"
		}):
			dns = true
		case port == int(redisPort) && allPeers(rule.To, func(p networkingv1.NetworkPolicyPeer) bool {
			return p.IPBlock == nil && selects(t, p.PodSelector, redis.Spec.Template.Labels)
		}):
			toRedis = true
		case port == 443 && allPeers(rule.To, publicOnly):
			https = true
		default:
			t.Errorf("NetworkPolicy %s egress %d: port %d to %+v is not one the gateway needs",
				np.Name, i, port, rule.To)
		}
	}
	if !dns || !toRedis || !https {
		t.Errorf("NetworkPolicy %s egress: dns %v, redis %v, https %v; want all three",
			np.Name, dns, toRedis, https)
	}

	// Redis admits the gateway alone.
	rp := policyFor(t, m, redis.Spec.Template.Labels)
	if len(rp.Spec.Ingress) != 1 || len(rp.Spec.Ingress[0].From) != 1 ||
		!selects(t, rp.Spec.Ingress[0].From[0].PodSelector, d.Spec.Template.Labels) {
		t.Errorf("NetworkPolicy %s: want one ingress rule, from the gateway's pods", rp.Name)
	}
}

// egressPort is the one port number an egress rule opens (53 may come as UDP and TCP), or -1.
func egressPort(t *testing.T, policy string, i int, ports []networkingv1.NetworkPolicyPort) int {
	t.Helper()
	port := -1
	for _, p := range ports {
		if p.Port == nil || p.EndPort != nil || (port != -1 && p.Port.IntValue() != port) {
			t.Errorf("NetworkPolicy %s egress %d: want one numbered port, got %+v", policy, i, ports)
			return -1
		}
		port = p.Port.IntValue()
	}
	return port
}

func allPeers(peers []networkingv1.NetworkPolicyPeer,
	ok func(networkingv1.NetworkPolicyPeer) bool) bool {
	for _, p := range peers {
		if !ok(p) {
			return false
		}
	}
	return true
}

// publicOnly holds for an address block that leaves out the private, shared, link-local and
// loopback ranges, so 443 cannot reach the cluster's own services or the node.
func publicOnly(p networkingv1.NetworkPolicyPeer) bool {
	if p.IPBlock == nil || p.PodSelector != nil || p.NamespaceSelector != nil {
		return false
	}
	want := []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
		"169.254.0.0/16", "127.0.0.0/8"}
	if strings.Contains(p.IPBlock.CIDR, ":") {
		want = []string{"fc00::/7", "fe80::/10", "::1/128"}
	}
	for _, cidr := range want {
		if !slices.Contains(p.IPBlock.Except, cidr) {
			return false
		}
	}
	return true
}

func checkIdentity(t *testing.T, tg target, m *manifests) {
	d, c := gateway(t, m)
	saName := d.Spec.Template.Spec.ServiceAccountName
	sa, ok := m.serviceAccounts[saName]
	if !ok {
		t.Fatalf("serviceAccountName %q: no such ServiceAccount in the output", saName)
	}
	for _, a := range []string{clientIDAnnotation, tenantIDAnnotation} {
		if _, err := uuid.Parse(sa.Annotations[a]); err != nil {
			t.Errorf("ServiceAccount %s annotation %s=%q: want a GUID", sa.Name, a,
				sa.Annotations[a])
		}
	}
	label := d.Spec.Template.Labels[workloadIdentityLabel]
	switch tg.credential {
	case "workload-identity":
		if label != "true" {
			t.Errorf("pod label %s: got %q, want \"true\"", workloadIdentityLabel, label)
		}
	case "client-secret":
		if label == "true" {
			t.Errorf("pod label %s: got \"true\" with a client secret", workloadIdentityLabel)
		}
		var fromSecret bool
		for _, e := range c.Env {
			if e.Name == "AZURE_CLIENT_SECRET" && e.ValueFrom != nil &&
				e.ValueFrom.SecretKeyRef != nil {
				fromSecret = true
			}
		}
		if !fromSecret {
			t.Error("AZURE_CLIENT_SECRET: want it from a secretKeyRef")
		}
	}
}

func checkOverlay(t *testing.T, tg target, m *manifests) {
	_, c := gateway(t, m)
	if c.Image != tg.image {
		t.Errorf("image: got %q, want %q", c.Image, tg.image)
	}
	if tg.namespace == "" {
		return
	}
	if _, ok := m.namespaces[tg.namespace]; !ok {
		t.Errorf("Namespace %q: not in the output", tg.namespace)
	}
	for _, o := range m.namespaced {
		if o.namespace != tg.namespace {
			t.Errorf("%s %s: namespace %q, want %q", o.kind, o.name, o.namespace, tg.namespace)
		}
	}
	if strings.Contains(string(m.yaml), placeholderID) {
		t.Errorf("output still holds the base's placeholder id %s", placeholderID)
	}
}
