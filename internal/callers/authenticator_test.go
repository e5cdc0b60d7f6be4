package callers_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/graphsim"
)

// TestBearerTokens sends each kind of good and bad token through the test gateway.
func TestBearerTokens(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	sim := h.sim
	now := time.Now()
	set := func(kv ...any) func(map[string]any) {
		return func(c map[string]any) {
			for i := 0; i < len(kv); i += 2 {
				if kv[i+1] == nil {
					delete(c, kv[i].(string))
					continue
				}
				c[kv[i].(string)] = kv[i+1]
			}
		}
	}
	current := graphsim.MintOptions{}
	portalToken := realToken(t, sim, graphsim.PortalClientID, graphsim.PortalClientSecret)
	noRoleToken := realToken(t, sim, graphsim.NoGatewayRoleClientID,
		graphsim.NoGatewayRoleClientSecret)
	// The mistake a caller makes most: asking its credential for a Graph token.
	graphToken := realTokenFor(t, sim, graphsim.PortalClientID, graphsim.PortalClientSecret,
		graphsim.GraphResource+"/.default")
	v1Issuer := "https://sts.windows.net/" + sim.TenantID() + "/"
	const otherTenant = "00000000-0000-0000-0000-000000000001"
	wantScope := "request a token for scope " + graphsim.GatewayAppIDURI + "/.default"

	tests := []struct {
		name       string
		rq         request
		wantStatus int
		wantReason string
		wantDetail []string // each must appear in the detail
	}{
		{name: "real portal token", rq: request{bearer: portalToken},
			wantStatus: http.StatusOK},
		{name: "app id uri audience", rq: request{bearer: mint(t, sim,
			set("aud", graphsim.GatewayAppIDURI), current)}, wantStatus: http.StatusOK},
		{name: "v1 appid without azp", rq: request{bearer: mint(t, sim,
			set("azp", nil), current)}, wantStatus: http.StatusOK},
		{name: "expired within leeway", rq: request{bearer: mint(t, sim,
			set("exp", now.Add(-30*time.Second).Unix()), current)}, wantStatus: http.StatusOK},
		{name: "no credentials", rq: request{},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonMissingCredentials},
		{name: "basic scheme", rq: request{rawHeader: "Basic cG9ydGFsOnNlY3JldA=="},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonMalformedHeader},
		{name: "bearer without token", rq: request{rawHeader: "Bearer"},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonMalformedHeader},
		{name: "bearer with two tokens", rq: request{rawHeader: "Bearer abc def"},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonMalformedHeader},
		{name: "not a jwt", rq: request{bearer: "not-a-jwt"},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonInvalidToken},
		{name: "token at the length limit", rq: request{bearer: strings.Repeat("a", 16384)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonInvalidToken,
			wantDetail: []string{"token is not a well-formed JWT"}},
		{name: "token over the length limit", rq: request{bearer: strings.Repeat("a", 16385)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonInvalidToken,
			wantDetail: []string{"token too long (limit 16384 characters)"}},
		{name: "token and api key", rq: request{bearer: portalToken, apiKey: agentKey},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonAmbiguousCredentials},
		{name: "wrong audience", rq: request{bearer: mint(t, sim,
			set("aud", "api://some-other-api"), current)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonWrongAudience},
		{name: "graph audience", rq: request{bearer: mint(t, sim,
			set("aud", graphsim.GraphResource), current)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonWrongAudience,
			wantDetail: []string{`token is for audience "https://graph.microsoft.com"`,
				wantScope}},
		{name: "real graph token from the tenant", rq: request{bearer: graphToken},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonWrongAudience,
			wantDetail: []string{`token is for audience "https://graph.microsoft.com"`,
				`want "` + graphsim.GatewayAppID + `" or "` + graphsim.GatewayAppIDURI + `"`,
				"it is a v1.0 token and the gateway accepts only v2.0 tokens", wantScope}},
		{name: "v1 token for the gateway", rq: request{bearer: mint(t, sim,
			set("iss", v1Issuer, "ver", "1.0", "aud", graphsim.GatewayAppIDURI), current)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonWrongIssuer,
			wantDetail: []string{"v1.0 endpoint", "requestedAccessTokenVersion to 2"}},
		// Claims are explained only once the signature holds: a forged token is just forged.
		{name: "graph token signed with an unpublished key", rq: request{bearer: mint(t, sim,
			set("iss", v1Issuer, "ver", "1.0", "aud", graphsim.GraphResource),
			graphsim.MintOptions{Mode: graphsim.SignUnregisteredKey})},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonInvalidToken,
			wantDetail: []string{"token signature is invalid"}},
		{name: "graph token from another tenant", rq: request{bearer: mint(t, sim,
			set("iss", "https://sts.windows.net/"+otherTenant+"/", "tid", otherTenant,
				"ver", "1.0", "aud", graphsim.GraphResource), current)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonWrongIssuer,
			wantDetail: []string{"token was not issued by the tenant"}},
		{name: "wrong issuer", rq: request{bearer: mint(t, sim,
			set("iss", v1Issuer), current)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonWrongIssuer,
			wantDetail: []string{"token was not issued by the tenant"}},
		{name: "wrong tenant", rq: request{bearer: mint(t, sim, set("tid", otherTenant),
			current)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonWrongTenant},
		{name: "expired", rq: request{bearer: mint(t, sim,
			set("exp", now.Add(-2*time.Minute).Unix(), "nbf", now.Add(-time.Hour).Unix(),
				"iat", now.Add(-time.Hour).Unix()), current)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonExpired},
		{name: "no exp", rq: request{bearer: mint(t, sim, set("exp", nil), current)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonInvalidToken},
		{name: "not yet valid", rq: request{bearer: mint(t, sim,
			set("nbf", now.Add(5*time.Minute).Unix()), current)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonNotYetValid},
		{name: "issued in the future", rq: request{bearer: mint(t, sim,
			set("iat", now.Add(5*time.Minute).Unix()), current)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonNotYetValid},
		{name: "alg none", rq: request{bearer: mint(t, sim, nil,
			graphsim.MintOptions{Mode: graphsim.SignNone})},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonDisallowedAlgorithm},
		{name: "hs256 keyed with the public key", rq: request{bearer: mint(t, sim, nil,
			graphsim.MintOptions{Mode: graphsim.SignHS256PublicKey})},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonDisallowedAlgorithm},
		{name: "unpublished key under a published kid", rq: request{bearer: mint(t, sim, nil,
			graphsim.MintOptions{Mode: graphsim.SignUnregisteredKey})},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonInvalidToken},
		{name: "no kid", rq: request{bearer: mint(t, sim, nil,
			graphsim.MintOptions{Header: map[string]any{"kid": nil}})},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonInvalidToken},
		{name: "no client id", rq: request{bearer: mint(t, sim,
			set("azp", nil, "appid", nil), current)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonMissingIdentity},
		{name: "missing role", rq: request{bearer: noRoleToken},
			wantStatus: http.StatusForbidden, wantReason: callers.ReasonMissingRole},
		{name: "other role only", rq: request{bearer: mint(t, sim,
			set("roles", []string{"TunnelServers.Read"}), current)},
			wantStatus: http.StatusForbidden, wantReason: callers.ReasonMissingRole},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := h.call(t, tt.rq)
			check(t, got, tt.rq, tt.wantStatus, tt.wantReason)
			for _, want := range tt.wantDetail {
				if !strings.Contains(got.detail, want) {
					t.Errorf("detail: got %q, want it to contain %q", got.detail, want)
				}
			}
			if tt.wantStatus == http.StatusOK && got.callerID != graphsim.PortalClientID {
				t.Errorf("caller id: got %q, want %q", got.callerID, graphsim.PortalClientID)
			}
		})
	}
}

func TestChallenges(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	noRole := realToken(t, h.sim, graphsim.NoGatewayRoleClientID,
		graphsim.NoGatewayRoleClientSecret)
	tests := []struct {
		name string
		rq   request
		want string
	}{
		{name: "no credentials", rq: request{}, want: `Bearer realm="tunnel-gateway"`},
		{name: "malformed", rq: request{rawHeader: "Token x"},
			want: `Bearer realm="tunnel-gateway", error="invalid_request", ` +
				`error_description="Authorization must use the Bearer scheme"`},
		{name: "bad token", rq: request{bearer: "a.b.c"},
			want: `Bearer realm="tunnel-gateway", error="invalid_token", ` +
				`error_description="token is not a well-formed JWT"`},
		{name: "missing role", rq: request{bearer: noRole},
			want: `Bearer realm="tunnel-gateway", error="insufficient_scope", ` +
				`error_description="the calling application lacks the app role ` +
				`TunnelServers.Write on the gateway"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := h.call(t, tt.rq).challenge; got != tt.want {
				t.Errorf("WWW-Authenticate:\ngot  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestUnknownKID checks that a token naming an unpublished kid is refused after one refresh,
// and that further such tokens are refused at once instead of waiting for the refresh budget.
func TestUnknownKID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	for i := range 3 {
		rq := request{bearer: mint(t, h.sim, nil,
			graphsim.MintOptions{Mode: graphsim.SignUnknownKID})}
		start := time.Now()
		got := h.call(t, rq)
		check(t, got, rq, http.StatusUnauthorized, callers.ReasonUnknownKey)
		if elapsed := time.Since(start); elapsed > 4*time.Second {
			t.Errorf("unknown kid %d: took %s, want an answer without waiting", i, elapsed)
		}
	}
	// One fetch at start, one refresh for the first unknown kid, none for the others.
	if got, want := jwksFetches(h.sim), int64(2); got != want {
		t.Errorf("JWKS fetches: got %d, want %d", got, want)
	}
	// Good tokens are unaffected.
	rq := request{bearer: mint(t, h.sim, nil, graphsim.MintOptions{})}
	check(t, h.call(t, rq), rq, http.StatusOK, "")
}

func jwksFetches(sim *graphsim.Simulator) int64 {
	return sim.Counters().Count(http.MethodGet, graphsim.RouteKeys, http.StatusOK)
}

// TestKeyRotation rotates the tenant's signing key while the gateway runs: a token signed with
// the new key is accepted without a restart, and one signed with the previous key still is
// while the tenant publishes it.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	before := realToken(t, h.sim, graphsim.PortalClientID, graphsim.PortalClientSecret)
	check(t, h.call(t, request{bearer: before}), request{bearer: before}, http.StatusOK, "")

	if err := h.sim.RotateSigningKey(); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	tests := []struct {
		name string
		opts graphsim.MintOptions
	}{
		{name: "new key", opts: graphsim.MintOptions{Mode: graphsim.SignCurrent}},
		{name: "previous key", opts: graphsim.MintOptions{Mode: graphsim.SignPrevious}},
	}
	for _, tt := range tests {
		rq := request{bearer: mint(t, h.sim, nil, tt.opts)}
		got := h.call(t, rq)
		if got.status != http.StatusOK {
			t.Errorf("%s: got %d %s, want 200", tt.name, got.status, got.raw)
		}
	}
	// The new kid was fetched on demand: once at start, once after the rotation.
	if got, want := jwksFetches(h.sim), int64(2); got != want {
		t.Errorf("JWKS fetches: got %d, want %d", got, want)
	}
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tests := []struct {
		name       string
		rq         request
		wantStatus int
		wantReason string
		wantDetail string
	}{
		{name: "known key", rq: request{method: http.MethodPatch, apiKey: agentKey,
			body: `{"tunnelServerHealthStatus":"healthy"}`}, wantStatus: http.StatusOK},
		{name: "unknown key", rq: request{apiKey: strings.Repeat("0", 64)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonUnknownAPIKey},
		{name: "the hash is not the key", rq: request{apiKey: callers.HashAPIKey(agentKey)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonUnknownAPIKey},
		{name: "key with a trailing character", rq: request{apiKey: agentKey + "0"},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonUnknownAPIKey},
		{name: "oversized key", rq: request{apiKey: strings.Repeat("k", 2048)},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonMalformedHeader,
			wantDetail: "X-Api-Key is too long (limit 1024 characters)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := h.call(t, tt.rq)
			check(t, got, tt.rq, tt.wantStatus, tt.wantReason)
			if !strings.Contains(got.detail, tt.wantDetail) {
				t.Errorf("detail: got %q, want it to say %q", got.detail, tt.wantDetail)
			}
			if tt.wantStatus == http.StatusOK && got.callerID != "agent" {
				t.Errorf("caller id: got %q, want %q", got.callerID, "agent")
			}
		})
	}
}

func TestRepeatedHeaders(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tests := []struct {
		name   string
		header string
	}{
		{name: "two api keys", header: "X-Api-Key"},
		{name: "two authorization headers", header: "Authorization"},
		{name: "empty api key", header: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
				h.gateway.URL+"/sites/"+graphsim.DefaultSiteID+"/servers/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header == "" {
				req.Header["X-Api-Key"] = []string{""}
			} else {
				req.Header.Add(tt.header, "Bearer "+agentKey)
				req.Header.Add(tt.header, "Bearer "+agentKey)
			}
			resp, err := h.gateway.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got, want := resp.StatusCode, http.StatusUnauthorized; got != want {
				t.Errorf("status: got %d, want %d", got, want)
			}
		})
	}
}
