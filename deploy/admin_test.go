package deploy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"tunnelgateway/internal/app"
	"tunnelgateway/internal/config"
	"tunnelgateway/internal/demo"
)

// TestAdminServesManifestPaths starts the gateway as the example overlay configures it (its
// env, its caller policy), pointed at the simulator the way --demo does and at the Redis on
// loopback, and asks its admin listener for every path the manifests name: the probes and the
// ServiceMonitor's metrics path. Each must answer 200 once the gateway is up, and the
// gateway must drain and stop cleanly when its context ends, as on SIGTERM.
func TestAdminServesManifestPaths(t *testing.T) {
	t.Parallel()
	m := render(t, "overlays/example")
	paths := manifestAdminPaths(t, m)
	cfg := gatewayConfig(t, m)

	// What a pod has and a loopback test has not: a tenant, the Redis Service, a policy mount.
	cfg.Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Budget.RedisAddr = "127.0.0.1:6379"
	d, err := demo.Start(cfg, "")
	if err != nil {
		t.Fatalf("start the simulator: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	// demo.Start wrote its own policy; the gateway loads the overlay's instead.
	cfg.Callers.PolicyFile = writePolicyFromConfigMap(t, m)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("configuration: %v", err)
	}

	adminURL, stop := serveGateway(t, cfg, d)
	client := &http.Client{Timeout: 3 * time.Second}
	for _, path := range paths {
		if got := pollStatus(client, adminURL+path, 20*time.Second); got != http.StatusOK {
			t.Errorf("GET %s on the admin listener: got %d, want 200", path, got)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("drain: %v", err)
	}
}

// manifestAdminPaths lists the paths the kubelet and Prometheus will ask the admin port for.
func manifestAdminPaths(t *testing.T, m *manifests) []string {
	t.Helper()
	_, c := gateway(t, m)
	var paths []string
	for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Fatal("a probe without httpGet; the probes check says which")
		}
		paths = append(paths, p.HTTPGet.Path)
	}
	for _, sm := range m.serviceMonitors {
		for _, ep := range sm.Spec.Endpoints {
			paths = append(paths, ep.Path)
		}
	}
	return paths
}

func writePolicyFromConfigMap(t *testing.T, m *manifests) string {
	t.Helper()
	for name, cm := range m.configMaps {
		if data, ok := cm.Data["policy.yaml"]; ok {
			path := filepath.Join(t.TempDir(), name+".yaml")
			if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}
	}
	t.Fatal("no ConfigMap holds policy.yaml")
	return ""
}

// serveGateway wires and serves the gateway as cmd/gateway does; stop ends its context and
// returns what Serve returned.
func serveGateway(t *testing.T, cfg *config.Config, d *demo.Demo) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := app.New(ctx, cfg, app.Options{HTTPClient: d.HTTPClient()})
	if err != nil {
		cancel()
		t.Fatalf("app.New: %v", err)
	}
	api, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	admin, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		cancel()
		_ = api.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Serve(ctx, api, admin) }()

	var stopped bool
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(cfg.Requests.DrainTimeout + 5*time.Second):
			return errors.New("Serve did not return within the drain timeout")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + admin.Addr().String(), stop
}

// pollStatus asks url until it answers 200 or the time is up, and returns the last status
// (0 when nothing answered).
func pollStatus(client *http.Client, url string, within time.Duration) int {
	deadline := time.Now().Add(within)
	status := 0
	for {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			status = resp.StatusCode
		}
		if status == http.StatusOK || time.Now().After(deadline) {
			return status
		}
		time.Sleep(100 * time.Millisecond)
	}
}
