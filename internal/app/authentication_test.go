package app_test

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/demo"
	"tunnelgateway/internal/graphsim"
)

// revocableKey is an API key the test policy lists until a case revokes it.
const revocableKey = "revocable-key-0123456789abcdef"

// mintCaller signs the portal's usual claims for the gateway, changed by edit, as opts asks.
func mintCaller(t *testing.T, sim *graphsim.Simulator, edit func(map[string]any),
	opts graphsim.MintOptions) string {
	t.Helper()
	claims, err := sim.TokenClaims(graphsim.PortalClientID, graphsim.GatewayAppID)
	must(t, err)
	if edit != nil {
		edit(claims)
	}
	token, err := sim.MintToken(claims, opts)
	must(t, err)
	return token
}

// TestAuthenticationFailures sends every way a credential can fail through the real router,
// so the statuses, challenges and problem types are the ones the gateway's own error mapping
// gives, not a test handler's; each request must leave an audit event. The cases run in
// order on one gateway, since some change what it trusts: the tenant's signing key rotates,
// and a key is revoked by a policy reload.
func TestAuthenticationFailures(t *testing.T) {
	t.Parallel()
	policyText := demo.Policy(testAPIKey) + "  - name: revocable\n" +
		"    apiKeySha256: " + callers.HashAPIKey(revocableKey) + "\n    read: true\n"
	s := startStack(t, stackOptions{policy: policyText})

	now := time.Now()
	edit := func(kv ...any) func(map[string]any) {
		return func(claims map[string]any) {
			for i := 0; i < len(kv); i += 2 {
				claims[kv[i].(string)] = kv[i+1]
			}
		}
	}
	current := graphsim.MintOptions{}
	mint := func(e func(map[string]any), opts graphsim.MintOptions) string {
		return mintCaller(t, s.sim, e, opts)
	}
	// Filled in by the rotation case, with a token signed by the tenant's new key.
	afterRotation := map[string]string{}
	noRole := callerToken(t, s.sim, graphsim.NoGatewayRoleClientID,
		graphsim.NoGatewayRoleClientSecret)
	bearer := func(token string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + token}
	}

	tests := []struct {
		name    string
		headers map[string]string
		// prepare runs just before the request.
		prepare    func(t *testing.T)
		wantStatus int
		wantReason string
		// wantChallenge is the start of the WWW-Authenticate header.
		wantChallenge string
		wantAppID     string
	}{
		{name: "no credentials", wantStatus: http.StatusUnauthorized,
			wantReason:    callers.ReasonMissingCredentials,
			wantChallenge: `Bearer realm="tunnel-gateway"`},
		{name: "malformed header",
			headers:    map[string]string{"Authorization": "Basic cG9ydGFsOnNlY3JldA=="},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonMalformedHeader,
			wantChallenge: `Bearer realm="tunnel-gateway", error="invalid_request"`},
		{name: "wrong audience",
			headers:    bearer(mint(edit("aud", "api://some-other-api"), current)),
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonWrongAudience,
			wantChallenge: `Bearer realm="tunnel-gateway", error="invalid_token"`},
		{name: "wrong issuer",
			headers: bearer(mint(edit("iss", "https://login.example.com/"+s.sim.TenantID()+
				"/v2.0"), current)),
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonWrongIssuer,
			wantChallenge: `Bearer realm="tunnel-gateway", error="invalid_token"`},
		{name: "expired",
			headers: bearer(mint(edit("exp", now.Add(-2*time.Minute).Unix(),
				"nbf", now.Add(-time.Hour).Unix(), "iat", now.Add(-time.Hour).Unix()), current)),
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonExpired,
			wantChallenge: `Bearer realm="tunnel-gateway", error="invalid_token"`},
		{name: "not yet valid",
			headers:    bearer(mint(edit("nbf", now.Add(5*time.Minute).Unix()), current)),
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonNotYetValid,
			wantChallenge: `Bearer realm="tunnel-gateway", error="invalid_token"`},
		{name: "alg none",
			headers:    bearer(mint(nil, graphsim.MintOptions{Mode: graphsim.SignNone})),
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonDisallowedAlgorithm,
			wantChallenge: `Bearer realm="tunnel-gateway", error="invalid_token"`},
		{name: "hs256 signed with the public key",
			headers: bearer(mint(nil,
				graphsim.MintOptions{Mode: graphsim.SignHS256PublicKey})),
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonDisallowedAlgorithm,
			wantChallenge: `Bearer realm="tunnel-gateway", error="invalid_token"`},
		// Not a failure: the new key is fetched on demand, without a restart. It runs before
		// the unknown kid, whose refresh would otherwise hold the next one back a minute.
		{name: "token signed with a rotated key", headers: afterRotation,
			prepare: func(t *testing.T) {
				must(t, s.sim.RotateSigningKey())
				afterRotation["Authorization"] = "Bearer " + mint(nil, current)
			},
			wantStatus: http.StatusOK, wantAppID: graphsim.PortalClientID},
		{name: "unknown kid",
			headers:    bearer(mint(nil, graphsim.MintOptions{Mode: graphsim.SignUnknownKID})),
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonUnknownKey,
			wantChallenge: `Bearer realm="tunnel-gateway", error="invalid_token"`},
		{name: "missing role", headers: bearer(noRole),
			wantStatus: http.StatusForbidden, wantReason: callers.ReasonMissingRole,
			wantChallenge: `Bearer realm="tunnel-gateway", error="insufficient_scope"`,
			wantAppID:     graphsim.NoGatewayRoleClientID},
		{name: "unknown api key", headers: map[string]string{"X-Api-Key": "nobody-knows-me"},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonUnknownAPIKey,
			wantChallenge: `Bearer realm="tunnel-gateway", error="invalid_token"`},
		{name: "revoked api key", headers: map[string]string{"X-Api-Key": revocableKey},
			prepare: func(t *testing.T) {
				revocable := request{method: http.MethodGet, path: v1Server(site, server),
					noKey: true, headers: map[string]string{"X-Api-Key": revocableKey}}
				if got := s.do(t, revocable); got.status != http.StatusOK {
					t.Fatalf("before revocation: got %d %s, want 200", got.status, got.body)
				}
				must(t, os.WriteFile(s.policyPath, []byte(demo.Policy(testAPIKey)), 0o600))
				must(t, s.gw.ReloadPolicy())
			},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonUnknownAPIKey,
			wantChallenge: `Bearer realm="tunnel-gateway", error="invalid_token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prepare != nil {
				tt.prepare(t)
			}
			got := s.do(t, request{method: http.MethodGet, path: v1Server(site, server),
				noKey: true, headers: tt.headers})
			if tt.wantStatus == http.StatusOK {
				if got.status != http.StatusOK {
					t.Errorf("status: got %d, want 200; body %s", got.status, got.body)
				}
			} else {
				checkRefusal(t, got, tt.wantStatus, tt.wantReason, tt.wantChallenge)
			}

			id := got.header.Get("X-Request-Id")
			events := waitForEvents(t, s.auditPath, func(events []audit.Event) bool {
				_, ok := eventsFor(events, id)[audit.StageResponseComplete]
				return ok
			})
			done := eventsFor(events, id)[audit.StageResponseComplete]
			if done.ResponseStatus == nil || done.ResponseStatus.Code != tt.wantStatus ||
				done.ResponseStatus.Reason != tt.wantReason {
				t.Errorf("audit responseStatus: got %+v, want %d %s", done.ResponseStatus,
					tt.wantStatus, tt.wantReason)
			}
			if refused := done.Annotations[audit.AnnotationRefused] != ""; refused !=
				(tt.wantStatus != http.StatusOK) {
				t.Errorf("audit annotations: got %v, want %s: %v", done.Annotations,
					audit.AnnotationRefused, !refused)
			}
			if done.User.AppID != tt.wantAppID {
				t.Errorf("audit user.appId: got %q, want %q", done.User.AppID, tt.wantAppID)
			}
		})
	}
}

// checkRefusal checks a refusal's status, challenge and problem document.
func checkRefusal(t *testing.T, got response, wantStatus int, wantReason, wantChallenge string) {
	t.Helper()
	if got.status != wantStatus {
		t.Errorf("status: got %d, want %d; body %s", got.status, wantStatus, got.body)
	}
	if challenge := got.header.Get("WWW-Authenticate"); !strings.HasPrefix(challenge,
		wantChallenge) {
		t.Errorf("WWW-Authenticate: got %q, want it to start with %q", challenge,
			wantChallenge)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type: got %q, want application/problem+json", ct)
	}
	var problem struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal([]byte(got.body), &problem); err != nil {
		t.Fatalf("problem document %s: %v", got.body, err)
	}
	if want := "urn:tunnelgateway:problem:" + wantReason; problem.Type != want {
		t.Errorf("problem type: got %q, want %q", problem.Type, want)
	}
	if problem.Status != wantStatus {
		t.Errorf("problem status: got %d, want %d", problem.Status, wantStatus)
	}
}
