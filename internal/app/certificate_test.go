package app_test

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"tunnelgateway/internal/config"
	"tunnelgateway/internal/graphsim"
)

// TestCredentialsAndTokenReuse runs the whole gateway with each Graph credential it can
// select: a client secret, a certificate (AZURE_CLIENT_CERTIFICATE_PATH; the simulator verifies
// the assertion azidentity signs against the registered certificate) and workload identity
// (AZURE_FEDERATED_TOKEN_FILE holding a projected token of the simulator's Kubernetes issuer,
// which the simulator checks against the app's federated credential). Each must fetch one token
// at start-up that serves every later call: one token request in all.
func TestCredentialsAndTokenReuse(t *testing.T) {
	t.Parallel()
	certApp, key, err := graphsim.NewCertificateApp(graphsim.CertificateClientID,
		[]string{graphsim.RoleReadWriteAll})
	if err != nil {
		t.Fatal(err)
	}
	pemPath := writeCertificatePEM(t, certApp.Certificate, key)
	federatedApp := graphsim.NewWorkloadIdentityApp(graphsim.WorkloadIdentityClientID,
		[]string{graphsim.RoleReadWriteAll})

	tests := []struct {
		name     string
		clientID string
		// configure may use the simulator, which is started before the gateway.
		configure func(*testing.T, *graphsim.Simulator, *config.Config)
	}{
		{name: "client secret", clientID: graphsim.DefaultClientID},
		{name: "client certificate", clientID: graphsim.CertificateClientID,
			configure: func(_ *testing.T, _ *graphsim.Simulator, c *config.Config) {
				c.Graph.ClientID = graphsim.CertificateClientID
				c.Graph.ClientSecret = ""
				c.Graph.CertificatePath = pemPath
			}},
		{name: "workload identity", clientID: graphsim.WorkloadIdentityClientID,
			configure: func(t *testing.T, sim *graphsim.Simulator, c *config.Config) {
				// A secret or a certificate would win over the token file (config's order).
				c.Graph.ClientID = graphsim.WorkloadIdentityClientID
				c.Graph.ClientSecret = ""
				c.Graph.CertificatePath = ""
				c.Graph.FederatedTokenFile = writeServiceAccountToken(t, sim)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, err := graphsim.Start(graphsim.Options{
				Apps: append(graphsim.DefaultApps(), certApp, federatedApp)})
			if err != nil {
				t.Fatalf("start simulator: %v", err)
			}
			t.Cleanup(func() { _ = sim.Close() })
			var configure func(*config.Config)
			if tt.configure != nil {
				configure = func(c *config.Config) { tt.configure(t, sim, c) }
			}
			s := startStackOn(t, sim, stackOptions{configure: configure})
			for i := range 5 {
				got := s.do(t, request{method: http.MethodPatch, path: v1Server(site, server),
					body: `{"displayName":"` + tt.name + `"}`})
				if got.status != http.StatusOK {
					t.Fatalf("call %d: status = %d, want 200; body %s", i, got.status, got.body)
				}
			}

			if stored, _ := s.sim.Server(site, server); stored["displayName"] != tt.name {
				t.Errorf("simulator holds displayName %v, want %q", stored["displayName"], tt.name)
			}
			counters := s.sim.Counters()
			if got := counters.TokenRequests; got != 1 {
				t.Errorf("token requests = %d, want 1 (start-up's token reused by every call)", got)
			}
			if got := counters.TokenRequestsByClient[tt.clientID]; got != 1 {
				t.Errorf("token requests by %s = %d, want 1", tt.clientID, got)
			}
		})
	}
}

// writeServiceAccountToken writes a projected token of the simulator's cluster for the
// gateway's ServiceAccount, where the AKS webhook would mount it.
func writeServiceAccountToken(t *testing.T, sim *graphsim.Simulator) string {
	t.Helper()
	token, err := sim.MintServiceAccountToken(graphsim.ServiceAccountTokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeCertificatePEM(t *testing.T, cert *x509.Certificate, key any) string {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	path := filepath.Join(t.TempDir(), "gateway.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
