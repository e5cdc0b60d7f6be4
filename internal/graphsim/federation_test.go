package graphsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// unreachableIssuer is an issuer a federated credential may name but nobody serves: port 1 on
// loopback refuses connections.
const unreachableIssuer = "https://127.0.0.1:1/unreachable/"

// startFederationSim registers the workload identity app (Read.All on Graph) with a second
// credential whose issuer cannot be reached, beside the default apps.
func startFederationSim(t *testing.T) *Simulator {
	t.Helper()
	app := NewWorkloadIdentityApp(WorkloadIdentityClientID, []string{RoleReadAll})
	app.FederatedCredentials = append(app.FederatedCredentials, FederatedCredential{
		Name: "unreachable", Issuer: unreachableIssuer, Subject: GatewayServiceAccountSubject})
	return startSim(t, Options{Apps: append(DefaultApps(), app)})
}

func TestServiceAccountIssuerDocuments(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	issuer := sim.ServiceAccountIssuer()
	if !strings.HasSuffix(issuer, "/") {
		t.Errorf("issuer: got %q, want a trailing slash as AKS issuers have", issuer)
	}

	req, _ := http.NewRequest(http.MethodGet, issuer+".well-known/openid-configuration", nil)
	resp, body := do(t, sim, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery status: got %d, want 200: %s", resp.StatusCode, body)
	}
	doc := decodeObject(t, body)
	jwksURI, _ := doc["jwks_uri"].(string)
	if got, want := doc["issuer"], issuer; got != want {
		t.Errorf("discovery issuer: got %v, want %v", got, want)
	}
	if got, want := jwksURI, issuer+"openid/v1/jwks"; got != want {
		t.Errorf("jwks_uri: got %v, want %v", got, want)
	}

	// A minted token verifies against the published keys, as Entra verifies it.
	raw, err := sim.MintServiceAccountToken(ServiceAccountTokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest(http.MethodGet, jwksURI, nil)
	resp, body = do(t, sim, req)
	var set struct{ Keys []jwk }
	if err := json.Unmarshal(body, &set); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("jwks: got %d %s (%v), want 200 and a key set", resp.StatusCode, body, err)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(raw, claims, func(tok *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid == tok.Header["kid"] {
				return k.rsaPublicKey()
			}
		}
		return nil, errFederatedKeyNotFound
	}, jwt.WithValidMethods([]string{"RS256"}))
	if err != nil {
		t.Fatalf("verify minted token through the JWKS: %v", err)
	}
	aud, _ := claims.GetAudience()
	if len(aud) != 1 || aud[0] != DefaultFederatedAudience {
		t.Errorf("aud: got %v, want [%s]", aud, DefaultFederatedAudience)
	}
	for k, want := range map[string]any{"iss": issuer, "sub": GatewayServiceAccountSubject} {
		if claims[k] != want {
			t.Errorf("%s: got %v, want %v", k, claims[k], want)
		}
	}
	k8s, _ := claims["kubernetes.io"].(map[string]any)
	if got, want := k8s["namespace"], "tunnel-gateway"; got != want {
		t.Errorf("kubernetes.io namespace: got %v, want %v", got, want)
	}

	req, _ = http.NewRequest(http.MethodGet,
		sim.URL()+"/oidc/kubernetes/other-cluster/openid/v1/jwks", nil)
	if resp, _ := do(t, sim, req); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another cluster's jwks: got %d, want 404", resp.StatusCode)
	}
}

func TestFederatedAssertion(t *testing.T) {
	t.Parallel()
	sim := startFederationSim(t)
	issuer := sim.ServiceAccountIssuer()
	tests := []struct {
		name     string
		clientID string // default WorkloadIdentityClientID
		token    ServiceAccountTokenOptions
		raw      string // sent instead of a minted token when set
		// wantCode 0 means a token is issued.
		wantStatus int
		wantError  string
		wantCode   int
	}{
		{name: "valid", wantStatus: 200},
		{name: "valid, issued four minutes ahead (within the skew)",
			token:      ServiceAccountTokenOptions{IssuedAt: time.Now().Add(4 * time.Minute)},
			wantStatus: 200},
		{name: "app without federated credential", clientID: DefaultClientID,
			wantStatus: 401, wantError: "invalid_client", wantCode: 70021},
		{name: "wrong issuer",
			token:      ServiceAccountTokenOptions{Issuer: "https://oidc.prod-aks.example/other/"},
			wantStatus: 401, wantError: "invalid_client", wantCode: 700211},
		{name: "issuer without its trailing slash",
			token:      ServiceAccountTokenOptions{Issuer: strings.TrimSuffix(issuer, "/")},
			wantStatus: 401, wantError: "invalid_client", wantCode: 700211},
		{name: "issuer in another case",
			token: ServiceAccountTokenOptions{
				Issuer: strings.Replace(issuer, "/kubernetes/", "/Kubernetes/", 1)},
			wantStatus: 401, wantError: "invalid_client", wantCode: 700211},
		{name: "issuer unreachable",
			token:      ServiceAccountTokenOptions{Issuer: unreachableIssuer},
			wantStatus: 400, wantError: "invalid_request", wantCode: 50166},
		{name: "unknown kid",
			token:      ServiceAccountTokenOptions{Signing: MintOptions{Mode: SignUnknownKID}},
			wantStatus: 401, wantError: "invalid_client", wantCode: 7000272},
		{name: "signed by an unpublished key",
			token: ServiceAccountTokenOptions{
				Signing: MintOptions{Mode: SignUnregisteredKey}},
			wantStatus: 401, wantError: "invalid_client", wantCode: 7000274},
		{name: "alg none",
			token:      ServiceAccountTokenOptions{Signing: MintOptions{Mode: SignNone}},
			wantStatus: 401, wantError: "invalid_client", wantCode: 7000274},
		{name: "expired",
			token: ServiceAccountTokenOptions{IssuedAt: time.Now().Add(-2 * time.Hour),
				Lifetime: time.Hour},
			wantStatus: 401, wantError: "invalid_client", wantCode: 700024},
		{name: "not yet valid",
			token:      ServiceAccountTokenOptions{IssuedAt: time.Now().Add(time.Hour)},
			wantStatus: 401, wantError: "invalid_client", wantCode: 700024},
		{name: "wrong subject",
			token: ServiceAccountTokenOptions{
				Subject: "system:serviceaccount:default:workload-identity-sa"},
			wantStatus: 401, wantError: "invalid_client", wantCode: 700213},
		{name: "subject in another case",
			token: ServiceAccountTokenOptions{
				Subject: strings.ToUpper(GatewayServiceAccountSubject)},
			wantStatus: 401, wantError: "invalid_client", wantCode: 700213},
		{name: "wrong audience",
			token:      ServiceAccountTokenOptions{Audience: "api://AzureADTokenExchangeChina"},
			wantStatus: 401, wantError: "invalid_client", wantCode: 700212},
		{name: "header type not JWT",
			token: ServiceAccountTokenOptions{
				Signing: MintOptions{Header: map[string]any{"typ": "at+jwt"}}},
			wantStatus: 400, wantError: "invalid_request", wantCode: 5002727},
		{name: "not a JWT", raw: "not-a-jwt",
			wantStatus: 400, wantError: "invalid_request", wantCode: 50027},
		{name: "certificate-style assertion without a certificate",
			raw: signedBy(t, sim, jwt.MapClaims{"iss": WorkloadIdentityClientID,
				"sub": WorkloadIdentityClientID, "aud": sim.URL() + "/" + sim.TenantID() +
					"/oauth2/v2.0/token", "exp": time.Now().Add(time.Minute).Unix()}),
			wantStatus: 401, wantError: "invalid_client", wantCode: 700027},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clientID := tt.clientID
			if clientID == "" {
				clientID = WorkloadIdentityClientID
			}
			assertion := tt.raw
			if assertion == "" {
				var err error
				if assertion, err = sim.MintServiceAccountToken(tt.token); err != nil {
					t.Fatal(err)
				}
			}
			resp, body := postForm(t, sim, sim.TenantID(), map[string]string{
				"grant_type": "client_credentials", "client_id": clientID,
				"client_assertion_type": jwtBearerAssertionType,
				"client_assertion":      assertion, "scope": GraphResource + "/.default"})
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status: got %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantCode == 0 {
				checkFederatedAccessToken(t, body, clientID)
				return
			}
			var e entraErrorBody
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			if e.Error != tt.wantError {
				t.Errorf("error: got %q, want %q", e.Error, tt.wantError)
			}
			if len(e.ErrorCodes) != 1 || e.ErrorCodes[0] != tt.wantCode {
				t.Errorf("error_codes: got %v, want [%d]", e.ErrorCodes, tt.wantCode)
			}
			if prefix := "AADSTS" + itoa(tt.wantCode) + ": "; !strings.HasPrefix(
				e.ErrorDescription, prefix) {
				t.Errorf("error_description: got %q, want prefix %q", e.ErrorDescription, prefix)
			}
		})
	}
}

// TestFederatedAssertionFetchesIssuerKeys checks that the token endpoint reads the issuer's
// documents over HTTP, as Entra does, rather than trusting its own key in memory.
func TestFederatedAssertionFetchesIssuerKeys(t *testing.T) {
	t.Parallel()
	sim := startFederationSim(t)
	assertion, err := sim.MintServiceAccountToken(ServiceAccountTokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := postForm(t, sim, sim.TenantID(), map[string]string{
		"grant_type": "client_credentials", "client_id": WorkloadIdentityClientID,
		"client_assertion_type": jwtBearerAssertionType, "client_assertion": assertion,
		"scope": GraphResource + "/.default"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200: %s", resp.StatusCode, body)
	}
	c := sim.Counters()
	for _, route := range []string{RouteServiceAccountDiscovery, RouteServiceAccountKeys} {
		if got, want := c.Count(http.MethodGet, route, http.StatusOK), int64(1); got != want {
			t.Errorf("GET %s: got %d, want %d", route, got, want)
		}
	}
}

// checkFederatedAccessToken reads the issued Graph token: it speaks for the app and says the
// app authenticated with an assertion (appidacr 2).
func checkFederatedAccessToken(t *testing.T, body []byte, clientID string) {
	t.Helper()
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token response: got %s (%v), want an access token", body, err)
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tr.AccessToken, claims); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"appid": clientID, "appidacr": "2", "aud": GraphResource} {
		if claims[k] != want {
			t.Errorf("access token %s: got %v, want %v", k, claims[k], want)
		}
	}
}

// signedBy signs claims with the simulated cluster's key; used for an assertion shaped like a
// certificate credential (iss = sub = client id) that no certificate can verify.
func signedBy(t *testing.T, sim *Simulator, claims jwt.MapClaims) string {
	t.Helper()
	raw, err := sim.saKeys.mint(claims, MintOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestFederatedCredentialRegistration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		app     App
		wantErr string // empty: Start succeeds
	}{
		{name: "federated credential only", app: NewWorkloadIdentityApp("wi", nil)},
		{name: "subject missing", app: App{ClientID: "wi",
			FederatedCredentials: []FederatedCredential{{Name: "no-subject"}}},
			wantErr: "subject is empty"},
		{name: "no credential at all", app: App{ClientID: "wi"},
			wantErr: "needs a secret, a certificate or a federated credential"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, err := Start(Options{Apps: []App{tt.app}})
			if err == nil {
				defer sim.Close()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Start: got %v, want no error", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Start: got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
