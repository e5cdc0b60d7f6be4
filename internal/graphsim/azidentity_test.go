package graphsim

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/golang-jwt/jwt/v5"
)

var graphScope = policy.TokenRequestOptions{Scopes: []string{GraphResource + "/.default"}}

func TestClientSecretCredentialGetsCachedToken(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	cred, err := azidentity.NewClientSecretCredential(sim.TenantID(), DefaultClientID,
		DefaultClientSecret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: clientOptions(sim), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var first string
	for i := range 50 {
		tok, err := cred.GetToken(ctx, graphScope)
		if err != nil {
			t.Fatalf("GetToken %d: %v", i, err)
		}
		if i == 0 {
			first = tok.Token
		} else if tok.Token != first {
			t.Fatalf("GetToken %d returned a different token; want the cached one", i)
		}
	}
	c := sim.Counters()
	if got, want := c.TokenRequests, int64(1); got != want {
		t.Errorf("token requests: got %d, want %d", got, want)
	}
	if got, want := c.TokenRequestsByClient[DefaultClientID], int64(1); got != want {
		t.Errorf("token requests by %s: got %d, want %d", DefaultClientID, got, want)
	}

	// The token works against Graph: PATCH the example server and read the merged object.
	body := []byte(`{"@odata.type":"#microsoft.graph.microsoftTunnelServer",` +
		`"displayName":"renamed by test","tunnelServerHealthStatus":"warning"}`)
	resp, got := graphRequest(t, sim, http.MethodPatch, serverPath(DefaultSiteID, ExampleServerID),
		first, body, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH status: got %d, want 200: %s", resp.StatusCode, got)
	}
	obj := decodeObject(t, got)
	for k, want := range map[string]any{
		"displayName": "renamed by test", "tunnelServerHealthStatus": "warning",
		"id": ExampleServerID, "@odata.type": "#microsoft.graph.microsoftTunnelServer",
		"agentImageDigest": DefaultSeed()[0].Servers[0]["agentImageDigest"],
	} {
		if obj[k] != want {
			t.Errorf("PATCH answer %s: got %v, want %v", k, obj[k], want)
		}
	}
	stored, _ := sim.Server(DefaultSiteID, ExampleServerID)
	if got, want := stored["displayName"], "renamed by test"; got != want {
		t.Errorf("stored displayName: got %v, want %v", got, want)
	}
}

func TestClientCertificateCredentialGetsToken(t *testing.T) {
	t.Parallel()
	app, key, err := NewCertificateApp(CertificateClientID, []string{RoleReadAll})
	if err != nil {
		t.Fatal(err)
	}
	sim := startSim(t, Options{Apps: append(DefaultApps(), app)})
	cred, err := azidentity.NewClientCertificateCredential(sim.TenantID(), CertificateClientID,
		[]*x509.Certificate{app.Certificate}, key, &azidentity.ClientCertificateCredentialOptions{
			ClientOptions: clientOptions(sim), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := cred.GetToken(ctx, graphScope)
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok.Token, claims); err != nil {
		t.Fatal(err)
	}
	if got, want := claims["appidacr"], "2"; got != want {
		t.Errorf("appidacr: got %v, want %v", got, want)
	}
	resp, body := graphRequest(t, sim, http.MethodGet, serverPath(DefaultSiteID, ExampleServerID),
		tok.Token, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET status: got %d, want 200: %s", resp.StatusCode, body)
	}
	var obj map[string]any
	_ = json.Unmarshal(body, &obj)
	if obj["@odata.context"] == nil {
		t.Errorf("GET answer lacks @odata.context: %s", body)
	}
}

// TestWorkloadIdentityCredential runs azidentity's WorkloadIdentityCredential, which reads the
// projected token from a file as it does on AKS, against the simulator's federation.
func TestWorkloadIdentityCredential(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{Apps: append(DefaultApps(),
		NewWorkloadIdentityApp(WorkloadIdentityClientID, []string{RoleReadWriteAll}))})
	tests := []struct {
		name     string
		token    ServiceAccountTokenOptions
		wantCode string // empty: a token is issued
	}{
		{name: "projected token", token: ServiceAccountTokenOptions{}},
		{name: "expired projected token", token: ServiceAccountTokenOptions{
			IssuedAt: time.Now().Add(-2 * time.Hour), Lifetime: time.Hour},
			wantCode: "AADSTS700024"},
		{name: "token of another service account", token: ServiceAccountTokenOptions{
			Subject: "system:serviceaccount:default:default"}, wantCode: "AADSTS700213"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw, err := sim.MintServiceAccountToken(tt.token)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "azure-identity-token")
			if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
				t.Fatal(err)
			}
			cred, err := azidentity.NewWorkloadIdentityCredential(
				&azidentity.WorkloadIdentityCredentialOptions{
					ClientOptions: clientOptions(sim), ClientID: WorkloadIdentityClientID,
					TenantID: sim.TenantID(), TokenFilePath: path,
					DisableInstanceDiscovery: true})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tok, err := cred.GetToken(ctx, graphScope)
			if tt.wantCode != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantCode) {
					t.Fatalf("GetToken error: got %v, want one naming %s", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetToken: %v", err)
			}

			// The token PATCHes like any other: federation changes only how the app proves
			// who it is.
			body := []byte(`{"displayName":"renamed through workload identity"}`)
			resp, got := graphRequest(t, sim, http.MethodPatch,
				serverPath(DefaultSiteID, ExampleServerID), tok.Token, body, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("PATCH status: got %d, want 200: %s", resp.StatusCode, got)
			}
		})
	}
}
