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

// TestCredentialsAndTokenReuse runs the whole gateway with a client secret and with a
// certificate credential (AZURE_CLIENT_CERTIFICATE_PATH; the simulator verifies the assertion
// azidentity signs against the registered certificate) and checks that the token fetched at
// start-up serves every later call: one token request in all.
func TestCredentialsAndTokenReuse(t *testing.T) {
	t.Parallel()
	certApp, key, err := graphsim.NewCertificateApp(graphsim.CertificateClientID,
		[]string{graphsim.RoleReadWriteAll})
	if err != nil {
		t.Fatal(err)
	}
	pemPath := writeCertificatePEM(t, certApp.Certificate, key)

	tests := []struct {
		name      string
		clientID  string
		configure func(*config.Config)
	}{
		{name: "client secret", clientID: graphsim.DefaultClientID},
		{name: "client certificate", clientID: graphsim.CertificateClientID,
			configure: func(c *config.Config) {
				c.Graph.ClientID = graphsim.CertificateClientID
				c.Graph.ClientSecret = ""
				c.Graph.CertificatePath = pemPath
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startStack(t, stackOptions{
				sim:       graphsim.Options{Apps: append(graphsim.DefaultApps(), certApp)},
				configure: tt.configure,
			})
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
