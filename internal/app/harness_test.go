package app_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"tunnelgateway/internal/app"
	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/config"
	"tunnelgateway/internal/demo"
	"tunnelgateway/internal/graphsim"
)

// testAPIKey is the API key the harness's policy grants everything to.
const testAPIKey = "test-key-0123456789abcdef"

// stack is a gateway running against its own simulator, both on loopback.
type stack struct {
	sim        *graphsim.Simulator
	gw         *app.Gateway
	url        string // the callers' listener
	adminURL   string
	auditPath  string
	policyPath string
	registry   *prometheus.Registry
	client     *http.Client
}

type stackOptions struct {
	sim       graphsim.Options
	policy    string // YAML; default demo.Policy(testAPIKey)
	configure func(*config.Config)
	auditSink audit.Sink
	logger    *zap.Logger
	// httpClient reaches Graph and Entra ID; default the simulator's client.
	httpClient *http.Client
}

// startStack starts a simulator and a gateway wired to it, and stops both when the test ends.
func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	sim, err := graphsim.Start(o.sim)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return startStackOn(t, sim, o)
}

// startStackOn starts a gateway wired to sim, which the caller started (o.sim is not used), and
// stops it when the test ends.
func startStackOn(t *testing.T, sim *graphsim.Simulator, o stackOptions) *stack {
	t.Helper()
	cfg := testConfig(t, sim, o.policy)
	policyPath := cfg.Callers.PolicyFile
	if o.configure != nil {
		o.configure(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration: %v", err)
	}

	logger := o.logger
	if logger == nil {
		logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	httpClient := o.httpClient
	if httpClient == nil {
		httpClient = sim.Client()
	}
	registry := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := app.New(ctx, cfg, app.Options{Logger: logger, HTTPClient: httpClient,
		Registry: registry, AuditSink: o.auditSink})
	if err != nil {
		cancel()
		t.Fatalf("start gateway: %v", err)
	}
	api := listen(t)
	admin := listen(t)
	done := make(chan error, 1)
	go func() { done <- gw.Serve(ctx, api, admin) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway stopped with: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("gateway did not stop within 10s")
		}
	})

	return &stack{
		sim:        sim,
		gw:         gw,
		url:        "http://" + api.Addr().String(),
		adminURL:   "http://" + admin.Addr().String(),
		auditPath:  cfg.Audit.Path,
		policyPath: policyPath,
		registry:   registry,
		client:     &http.Client{Timeout: 20 * time.Second},
	}
}

// testConfig is the configuration every test gateway starts from: sim as Graph and Entra ID,
// policyText (default: demo.Policy(testAPIKey)) as the policy, an audit file and short
// timeouts, all in a fresh directory.
func testConfig(t *testing.T, sim *graphsim.Simulator, policyText string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if policyText == "" {
		policyText = demo.Policy(testAPIKey)
	}
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(policyText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.FromEnv(nil)
	if err != nil {
		t.Fatal(err)
	}
	demo.Configure(cfg, sim)
	cfg.Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Callers.PolicyFile = policyPath
	cfg.Audit.Path = filepath.Join(dir, "audit.log")
	cfg.Requests.Timeout = 15 * time.Second
	cfg.Requests.UpstreamTimeout = 5 * time.Second
	cfg.Requests.DrainTimeout = 5 * time.Second
	return cfg
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// request is one call to the gateway.
type request struct {
	method  string
	path    string
	body    string
	headers map[string]string
	// noKey leaves out the harness's API key.
	noKey bool
}

type response struct {
	status int
	header http.Header
	body   string
}

func (s *stack) do(t *testing.T, r request) response {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, s.url+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if !r.noKey {
		req.Header.Set("X-Api-Key", testAPIKey)
	}
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

func v1Server(site, server string) string {
	return "/v1/tunnel-sites/" + site + "/servers/" + server
}

func graphServer(site, server string) string {
	return "/beta/deviceManagement/microsoftTunnelSites/" + site + "/microsoftTunnelServers/" + server
}
