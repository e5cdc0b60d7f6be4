// Package demo runs the gateway without a tenant: it starts the Graph and Entra ID simulator
// in-process, points the configuration at it, and writes a caller policy that lets a demo API
// key and the simulator's portal app change tunnel servers.
package demo

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/config"
	"tunnelgateway/internal/graphsim"
)

// Demo is a running simulator and the configuration pointed at it.
type Demo struct {
	Sim    *graphsim.Simulator
	APIKey string
	dir    string
}

// Start starts the simulator and rewrites cfg to use it. An empty apiKey gets a random one.
func Start(cfg *config.Config, apiKey string) (*Demo, error) {
	if apiKey == "" {
		key, _, err := callers.GenerateAPIKey()
		if err != nil {
			return nil, err
		}
		apiKey = key
	}
	sim, err := graphsim.Start(graphsim.Options{})
	if err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	d := &Demo{Sim: sim, APIKey: apiKey}

	dir, err := os.MkdirTemp("", "tunnelgateway-demo-")
	if err != nil {
		_ = sim.Close()
		return nil, fmt.Errorf("make demo directory: %w", err)
	}
	d.dir = dir
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(Policy(apiKey)), 0o600); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("write demo policy: %w", err)
	}

	Configure(cfg, sim)
	cfg.Callers.PolicyFile = policyPath
	return d, nil
}

// Configure points cfg's Graph and caller settings at sim, as a real deployment would point
// them at a tenant.
func Configure(cfg *config.Config, sim *graphsim.Simulator) {
	cfg.Graph.BaseURL = sim.GraphBaseURL()
	cfg.Graph.AuthorityHost = sim.AuthorityHost()
	cfg.Graph.DisableInstanceDiscovery = true
	cfg.Graph.TenantID = sim.TenantID()
	cfg.Graph.ClientID = graphsim.DefaultClientID
	cfg.Graph.ClientSecret = graphsim.DefaultClientSecret
	cfg.Graph.CertificatePath = ""
	cfg.Graph.FederatedTokenFile = ""
	cfg.Graph.ManagedIdentity = false
	cfg.Callers.TenantID = sim.TenantID()
	cfg.Callers.AuthorityHost = sim.AuthorityHost()
	cfg.Callers.Audiences = []string{graphsim.GatewayAppID, graphsim.GatewayAppIDURI}
}

// Policy is the demo's caller policy: the API key may read and change everything, the
// simulator's portal app may read and rename.
func Policy(apiKey string) string {
	return fmt.Sprintf(`callers:
  - name: demo
    apiKeySha256: %s
    read: true
    properties: [displayName, tunnelServerHealthStatus, lastCheckinDateTime,
                 agentImageDigest, serverImageDigest]
  - name: portal
    appId: %s
    read: true
    properties: [displayName]
`, callers.HashAPIKey(apiKey), graphsim.PortalClientID)
}

// HTTPClient trusts the simulator's certificate; Graph, Entra ID and discovery go through it.
func (d *Demo) HTTPClient() *http.Client { return d.Sim.Client() }

// Close stops the simulator and removes the demo's files.
func (d *Demo) Close() error {
	if d.dir != "" {
		_ = os.RemoveAll(d.dir)
	}
	return d.Sim.Close()
}
