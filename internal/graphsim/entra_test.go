package graphsim

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

func TestDiscoveryDocument(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	req, _ := http.NewRequest(http.MethodGet,
		sim.URL()+"/"+sim.TenantID()+"/v2.0/.well-known/openid-configuration", nil)
	resp, body := do(t, sim, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200", resp.StatusCode)
	}
	doc := decodeObject(t, body)
	for k, want := range map[string]string{
		"issuer":                 sim.Issuer(),
		"token_endpoint":         sim.URL() + "/" + sim.TenantID() + "/oauth2/v2.0/token",
		"authorization_endpoint": sim.URL() + "/" + sim.TenantID() + "/oauth2/v2.0/authorize",
		"jwks_uri":               sim.URL() + "/" + sim.TenantID() + "/discovery/v2.0/keys",
	} {
		if doc[k] != want {
			t.Errorf("%s: got %v, want %v", k, doc[k], want)
		}
	}
	req, _ = http.NewRequest(http.MethodGet,
		sim.URL()+"/00000000-0000-0000-0000-000000000000/v2.0/.well-known/openid-configuration", nil)
	resp, body = do(t, sim, req)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "AADSTS90002") {
		t.Errorf("unknown tenant discovery: got %d %s, want 400 AADSTS90002", resp.StatusCode, body)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	graph := GraphResource + "/.default"
	tests := []struct {
		name       string
		tenant     string
		form       map[string]string
		wantStatus int
		wantError  string
		wantCode   int
	}{
		{"wrong secret", "", map[string]string{"client_id": DefaultClientID,
			"client_secret": "nope", "scope": graph}, 401, "invalid_client", 7000215},
		{"unknown client", "", map[string]string{"client_id": "00000000-0000-0000-0000-00000000dead",
			"client_secret": "x", "scope": graph}, 400, "unauthorized_client", 700016},
		{"wrong tenant", "11111111-2222-3333-4444-555555555555", map[string]string{
			"client_id": DefaultClientID, "client_secret": DefaultClientSecret, "scope": graph},
			400, "invalid_request", 90002},
		{"scope without .default", "", map[string]string{"client_id": DefaultClientID,
			"client_secret": DefaultClientSecret,
			"scope":         "https://graph.microsoft.com/DeviceManagementConfiguration.ReadWrite.All"},
			400, "invalid_scope", 1002012},
		{"missing scope", "", map[string]string{"client_id": DefaultClientID,
			"client_secret": DefaultClientSecret}, 400, "invalid_request", 900144},
		{"unknown resource", "", map[string]string{"client_id": DefaultClientID,
			"client_secret": DefaultClientSecret, "scope": "api://nothing/.default"},
			400, "invalid_resource", 500011},
		{"no credential", "", map[string]string{"client_id": DefaultClientID, "scope": graph},
			401, "invalid_client", 7000218},
		{"missing client id", "", map[string]string{"client_secret": "x", "scope": graph},
			400, "invalid_request", 900144},
		{"password grant", "", map[string]string{"grant_type": "password",
			"client_id": DefaultClientID, "client_secret": DefaultClientSecret, "scope": graph},
			400, "unsupported_grant_type", 70003},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tenant := tt.tenant
			if tenant == "" {
				tenant = sim.TenantID()
			}
			if tt.form["grant_type"] == "" {
				tt.form["grant_type"] = "client_credentials"
			}
			resp, body := postForm(t, sim, tenant, tt.form)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status: got %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			var e entraErrorBody
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if e.Error != tt.wantError {
				t.Errorf("error: got %q, want %q", e.Error, tt.wantError)
			}
			if len(e.ErrorCodes) != 1 || e.ErrorCodes[0] != tt.wantCode {
				t.Errorf("error_codes: got %v, want [%d]", e.ErrorCodes, tt.wantCode)
			}
			prefix := "AADSTS" + itoa(tt.wantCode) + ": "
			if !strings.HasPrefix(e.ErrorDescription, prefix) {
				t.Errorf("error_description: got %q, want prefix %q", e.ErrorDescription, prefix)
			}
			if e.CorrelationID == "" || e.TraceID == "" || e.Timestamp == "" {
				t.Errorf("missing correlation_id, trace_id or timestamp: %s", body)
			}
		})
	}
}

func TestTokensVerifyThroughJWKS(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	keys := jwksKeyfunc(t, sim)
	tests := []struct {
		name      string
		clientID  string
		secret    string
		scope     string
		wantAud   string
		wantIss   string
		wantVer   string
		wantRoles []any
	}{
		{"gateway on graph", DefaultClientID, DefaultClientSecret, GraphResource + "/.default",
			GraphResource, "https://sts.windows.net/" + DefaultTenantID + "/", "1.0",
			[]any{RoleReadWriteAll}},
		{"graph by app id", ReadOnlyClientID, ReadOnlyClientSecret, GraphAppID + "/.default",
			GraphResource, "https://sts.windows.net/" + DefaultTenantID + "/", "1.0",
			[]any{RoleReadAll}},
		{"portal caller on gateway", PortalClientID, PortalClientSecret,
			GatewayAppIDURI + "/.default", GatewayAppID, "", "2.0", []any{GatewayRoleWrite}},
		{"caller without gateway role", NoGatewayRoleClientID, NoGatewayRoleClientSecret,
			GatewayAppIDURI + "/.default", GatewayAppID, "", "2.0", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := token(t, sim, tt.clientID, tt.secret, tt.scope)
			claims := jwt.MapClaims{}
			if _, err := jwt.ParseWithClaims(raw, claims, keys.Keyfunc,
				jwt.WithValidMethods([]string{"RS256"})); err != nil {
				t.Fatalf("verify through JWKS: %v", err)
			}
			wantIss := tt.wantIss
			if wantIss == "" {
				wantIss = sim.Issuer()
			}
			for k, want := range map[string]any{"aud": tt.wantAud, "iss": wantIss,
				"ver": tt.wantVer, "tid": DefaultTenantID, "azp": tt.clientID,
				"appid": tt.clientID} {
				if claims[k] != want {
					t.Errorf("%s: got %v, want %v", k, claims[k], want)
				}
			}
			gotRoles, _ := claims["roles"].([]any)
			if len(gotRoles) != len(tt.wantRoles) ||
				(len(gotRoles) > 0 && gotRoles[0] != tt.wantRoles[0]) {
				t.Errorf("roles: got %v, want %v", gotRoles, tt.wantRoles)
			}
			exp, _ := claims.GetExpirationTime()
			if d := time.Until(exp.Time); d < 59*time.Minute || d > 61*time.Minute {
				t.Errorf("lifetime: got %s, want about 1h", d)
			}
		})
	}
}

// jwksKeyfunc reads the JWKS through discovery's jwks_uri with keyfunc, as callers do.
func jwksKeyfunc(t *testing.T, sim *Simulator) keyfunc.Keyfunc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	keys, err := keyfunc.NewDefaultOverrideCtx(ctx,
		[]string{sim.URL() + "/" + sim.TenantID() + "/discovery/v2.0/keys"},
		keyfuncOverride(sim))
	if err != nil {
		t.Fatalf("keyfunc: %v", err)
	}
	return keys
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	before := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	if err := sim.RotateSigningKey(); err != nil {
		t.Fatal(err)
	}
	after := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	kidOf := func(raw string) string {
		tok, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Header["kid"].(string)
	}
	if kidOf(before) == kidOf(after) {
		t.Fatalf("kid after rotation: got the old kid %s, want a new one", kidOf(after))
	}
	req, _ := http.NewRequest(http.MethodGet, sim.URL()+"/common/discovery/v2.0/keys", nil)
	_, body := do(t, sim, req)
	var set struct{ Keys []jwk }
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	if got, want := len(set.Keys), 2; got != want {
		t.Fatalf("published keys: got %d, want %d", got, want)
	}
	if set.Keys[0].Kid != kidOf(after) || set.Keys[1].Kid != kidOf(before) {
		t.Errorf("published kids: got %s, %s; want %s (current), %s (previous)",
			set.Keys[0].Kid, set.Keys[1].Kid, kidOf(after), kidOf(before))
	}
	for name, tok := range map[string]string{"before": before, "after": after} {
		resp, body := graphRequest(t, sim, http.MethodGet,
			serverPath(DefaultSiteID, ExampleServerID), tok, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("token issued %s rotation: got %d, want 200: %s", name, resp.StatusCode, body)
		}
	}
}

func TestClientAssertionRejected(t *testing.T) {
	t.Parallel()
	app, appKey, err := NewCertificateApp(CertificateClientID, []string{RoleReadAll})
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := NewCertificateApp("other", nil)
	if err != nil {
		t.Fatal(err)
	}
	sim := startSim(t, Options{Apps: append(DefaultApps(), app)})
	endpoint := sim.URL() + "/" + sim.TenantID() + "/oauth2/v2.0/token"
	thumb := map[string]any{"x5t#S256": sha256Thumbprint(app.Certificate)}
	sign := func(key any, header map[string]any, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodPS256, claims)
		for k, v := range header {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	claims := func(aud string, exp time.Duration) jwt.MapClaims {
		return jwt.MapClaims{"aud": aud, "iss": CertificateClientID, "sub": CertificateClientID,
			"exp": time.Now().Add(exp).Unix(), "jti": "x"}
	}
	tests := []struct {
		name      string
		assertion string
		wantCode  int // 0: a token is issued
	}{
		{"valid", sign(appKey, thumb, claims(endpoint, 5*time.Minute)), 0},
		{"signed by another key", sign(otherKey, thumb, claims(endpoint, 5*time.Minute)), 700027},
		{"unknown thumbprint", sign(appKey, map[string]any{"x5t#S256": "AAAA"},
			claims(endpoint, 5*time.Minute)), 700027},
		{"wrong audience", sign(appKey, thumb, claims("https://elsewhere", 5*time.Minute)), 700021},
		{"expired", sign(appKey, thumb, claims(endpoint, -time.Hour)), 700024},
		{"not a jwt", "not-a-jwt", 50027},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := postForm(t, sim, sim.TenantID(), map[string]string{
				"grant_type": "client_credentials", "client_id": CertificateClientID,
				"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
				"client_assertion":      tt.assertion, "scope": GraphResource + "/.default"})
			if tt.wantCode == 0 {
				if resp.StatusCode != http.StatusOK {
					t.Errorf("status: got %d, want 200: %s", resp.StatusCode, body)
				}
				return
			}
			var e entraErrorBody
			_ = json.Unmarshal(body, &e)
			if len(e.ErrorCodes) != 1 || e.ErrorCodes[0] != tt.wantCode {
				t.Errorf("error_codes: got %v, want [%d]: %s", e.ErrorCodes, tt.wantCode, body)
			}
		})
	}
}

func sha256Thumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func itoa(n int) string { return strconv.Itoa(n) }

func keyfuncOverride(sim *Simulator) keyfunc.Override {
	return keyfunc.Override{Client: sim.Client()}
}

// TestTokenLifetime checks that Options.TokenLifetime reaches both the token response and the
// token itself, for Graph (v1) and gateway (v2) tokens.
func TestTokenLifetime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		lifetime    time.Duration
		clientID    string
		secret      string
		scope       string
		wantSeconds int64
	}{
		{"default, graph token", 0, DefaultClientID, DefaultClientSecret,
			GraphResource + "/.default", 3600},
		{"five minutes, graph token", 5 * time.Minute, DefaultClientID, DefaultClientSecret,
			GraphResource + "/.default", 300},
		{"five minutes, gateway token", 5 * time.Minute, PortalClientID, PortalClientSecret,
			GatewayAppIDURI + "/.default", 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, Options{TokenLifetime: tt.lifetime})
			resp, body := postForm(t, sim, sim.TenantID(), map[string]string{
				"grant_type": "client_credentials", "client_id": tt.clientID,
				"client_secret": tt.secret, "scope": tt.scope,
			})
			var tr tokenResponse
			if err := json.Unmarshal(body, &tr); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("token: got %d %s (%v), want 200", resp.StatusCode, body, err)
			}
			if tr.ExpiresIn != tt.wantSeconds || tr.ExtExpiresIn != tt.wantSeconds {
				t.Errorf("expires_in, ext_expires_in: got %d, %d, want %d", tr.ExpiresIn,
					tr.ExtExpiresIn, tt.wantSeconds)
			}

			claims := jwt.MapClaims{}
			if _, err := jwt.ParseWithClaims(tr.AccessToken, claims, jwksKeyfunc(t, sim).Keyfunc,
				jwt.WithValidMethods([]string{"RS256"})); err != nil {
				t.Fatalf("verify through JWKS: %v", err)
			}
			iat, errIat := claims.GetIssuedAt()
			exp, errExp := claims.GetExpirationTime()
			if errIat != nil || errExp != nil || iat == nil || exp == nil {
				t.Fatalf("iat, exp: got %v, %v (%v, %v), want both", iat, exp, errIat, errExp)
			}
			if got := exp.Unix() - iat.Unix(); got != tt.wantSeconds {
				t.Errorf("exp - iat: got %d s, want %d s", got, tt.wantSeconds)
			}
		})
	}
}
