package app_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/demo"
	"tunnelgateway/internal/graphsim"
)

// callerToken gets a real Entra token for the gateway's API, as a portal would.
func callerToken(t *testing.T, sim *graphsim.Simulator, clientID, secret string) string {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(sim.TenantID(), clientID, secret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions: azcore.ClientOptions{
				Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: sim.AuthorityHost()},
				Transport: sim.Client(),
			},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(),
		policy.TokenRequestOptions{Scopes: []string{graphsim.GatewayAppIDURI + "/.default"}})
	if err != nil {
		t.Fatalf("caller token: %v", err)
	}
	return tok.Token
}

// TestEntraCallerAndPolicyReload sends a portal's real Entra token through the gateway: the
// policy lets it rename but not report health, until a reload grants that too. A bad reload
// keeps the policy in force.
func TestEntraCallerAndPolicyReload(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	policyPath := s.policyPath

	token := callerToken(t, s.sim, graphsim.PortalClientID, graphsim.PortalClientSecret)
	bearer := map[string]string{"Authorization": "Bearer " + token}
	patch := func(body string) response {
		return s.do(t, request{method: http.MethodPatch, path: v1Server(site, server), body: body,
			headers: bearer, noKey: true})
	}

	if got := patch(`{"displayName":"from-portal"}`); got.status != http.StatusOK {
		t.Fatalf("portal rename: %d %s", got.status, got.body)
	}
	refused := patch(`{"tunnelServerHealthStatus":"warning"}`)
	if refused.status != http.StatusForbidden || !strings.Contains(refused.body, "tunnelServerHealthStatus") {
		t.Fatalf("portal health report: %d %s, want 403 naming the property", refused.status, refused.body)
	}

	// A bad file is refused and the old policy stays.
	must(t, os.WriteFile(policyPath, []byte("callers: [{name: broken}]\n"), 0o600))
	if err := s.gw.ReloadPolicy(); err == nil {
		t.Error("a policy without identity or grants was accepted")
	}
	if got := patch(`{"displayName":"still-allowed"}`); got.status != http.StatusOK {
		t.Errorf("after a bad reload the portal lost its grant: %d %s", got.status, got.body)
	}

	// A good file takes effect without a restart.
	granted := strings.Replace(demo.Policy(testAPIKey), "properties: [displayName]\n",
		"properties: [displayName, tunnelServerHealthStatus]\n", 1)
	must(t, os.WriteFile(policyPath, []byte(granted), 0o600))
	if err := s.gw.ReloadPolicy(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if got := patch(`{"tunnelServerHealthStatus":"warning"}`); got.status != http.StatusOK {
		t.Errorf("after the reload: %d %s, want 200", got.status, got.body)
	}

	// A caller without the gateway's app role is refused before the policy is asked.
	other := callerToken(t, s.sim, graphsim.NoGatewayRoleClientID, graphsim.NoGatewayRoleClientSecret)
	got := s.do(t, request{method: http.MethodPatch, path: v1Server(site, server), noKey: true,
		body: `{"displayName":"x"}`, headers: map[string]string{"Authorization": "Bearer " + other}})
	if got.status != http.StatusForbidden || got.header.Get("WWW-Authenticate") == "" {
		t.Errorf("caller without the role: %d %s (WWW-Authenticate %q)", got.status, got.body,
			got.header.Get("WWW-Authenticate"))
	}
}

// TestEntraCallerNamedByPolicy checks that a caller presenting a token is shown under its
// policy name in answers, the access log and the audit trail, as API-key callers are, and that
// an application the policy does not list is refused with its appId named.
func TestEntraCallerNamedByPolicy(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.InfoLevel)
	// The name differs from the demo's so that it can only have come from this file.
	named := strings.Replace(demo.Policy(testAPIKey), "name: portal", "name: contoso-portal", 1) +
		"  - name: roleless-app\n    appId: " + graphsim.NoGatewayRoleClientID + "\n" +
		"    properties: [displayName]\n"
	s := startStack(t, stackOptions{policy: named, logger: zap.New(core)})

	portal := callerToken(t, s.sim, graphsim.PortalClientID, graphsim.PortalClientSecret)
	roleless := callerToken(t, s.sim, graphsim.NoGatewayRoleClientID,
		graphsim.NoGatewayRoleClientSecret)
	claims, err := s.sim.TokenClaims(graphsim.DefaultClientID, graphsim.GatewayAppID)
	must(t, err)
	claims["roles"] = []string{graphsim.GatewayRoleWrite}
	unlisted, err := s.sim.MintToken(claims, graphsim.MintOptions{})
	must(t, err)

	tests := []struct {
		name       string
		bearer     string // "" sends the harness's API key
		body       string
		wantStatus int
		wantDetail string
		wantCaller string
		wantUser   audit.User
	}{
		{name: "listed app allowed", bearer: portal, body: `{"displayName":"named"}`,
			wantStatus: http.StatusOK, wantCaller: "entra:contoso-portal",
			wantUser: audit.User{Kind: audit.UserKindEntra, Name: "contoso-portal",
				AppID: graphsim.PortalClientID}},
		{name: "listed app refused a property", bearer: portal,
			body: `{"tunnelServerHealthStatus":"warning"}`, wantStatus: http.StatusForbidden,
			wantDetail: "caller entra:contoso-portal may not change property " +
				"tunnelServerHealthStatus",
			wantCaller: "entra:contoso-portal",
			wantUser: audit.User{Kind: audit.UserKindEntra, Name: "contoso-portal",
				AppID: graphsim.PortalClientID}},
		{name: "unlisted app refused by its appId", bearer: unlisted,
			body: `{"displayName":"x"}`, wantStatus: http.StatusForbidden,
			wantDetail: "caller entra:" + graphsim.DefaultClientID +
				" is not in the policy: no entry has this appId",
			wantCaller: "entra:" + graphsim.DefaultClientID,
			wantUser:   audit.User{Kind: audit.UserKindEntra, AppID: graphsim.DefaultClientID}},
		// Refused before the policy is asked, yet still known by its policy name.
		{name: "listed app without the gateway role", bearer: roleless,
			body: `{"displayName":"x"}`, wantStatus: http.StatusForbidden,
			wantDetail: "lacks the app role", wantCaller: "entra:roleless-app",
			wantUser: audit.User{Kind: audit.UserKindEntra, Name: "roleless-app",
				AppID: graphsim.NoGatewayRoleClientID}},
		{name: "api key caller", body: `{"displayName":"by-key"}`, wantStatus: http.StatusOK,
			wantCaller: "apikey:demo",
			wantUser:   audit.User{Kind: audit.UserKindAPIKey, Name: "demo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := request{method: http.MethodPatch, path: v1Server(site, server), body: tt.body}
			if tt.bearer != "" {
				rq.noKey = true
				rq.headers = map[string]string{"Authorization": "Bearer " + tt.bearer}
			}
			got := s.do(t, rq)
			if got.status != tt.wantStatus || !strings.Contains(got.body, tt.wantDetail) {
				t.Errorf("answer: got %d %s, want %d containing %q", got.status, got.body,
					tt.wantStatus, tt.wantDetail)
			}
			requestID := got.header.Get("X-Request-Id")

			events := waitForEvents(t, s.auditPath, func(events []audit.Event) bool {
				_, ok := eventsFor(events, requestID)[audit.StageResponseComplete]
				return ok
			})
			if user := eventsFor(events, requestID)[audit.StageResponseComplete].User; user !=
				tt.wantUser {
				t.Errorf("audit user: got %+v, want %+v", user, tt.wantUser)
			}

			lines := logs.FilterMessage("request").
				FilterField(zap.String("request_id", requestID)).All()
			if len(lines) != 1 {
				t.Fatalf("access log lines for the request: got %d, want 1", len(lines))
			}
			if caller := lines[0].ContextMap()["caller"]; caller != tt.wantCaller {
				t.Errorf("access log caller: got %v, want %q", caller, tt.wantCaller)
			}
		})
	}
}
