package callers_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/graphsim"
	"tunnelgateway/internal/policy"
)

// agentKey is the API key of the "agent" caller in testPolicy.
const agentKey = "3e1f0c8b9a7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f"

// testPolicy grants the portal app renames and reads everywhere, and the agent key status
// reports on the default site only.
var testPolicy = `callers:
- name: portal
  appId: ` + graphsim.PortalClientID + `
  read: true
  properties: [displayName]
- name: agent
  apiKeySha256: ` + callers.HashAPIKey(agentKey) + `
  properties: [tunnelServerHealthStatus]
  sites: [` + graphsim.DefaultSiteID + `]
`

// harness is a simulator, an Authenticator trusting it, a policy file and a tiny gateway over
// real HTTP that authenticates and authorizes the way the real handlers do.
type harness struct {
	sim        *graphsim.Simulator
	auth       *callers.Authenticator
	store      *policy.Store
	policyPath string
	gateway    *httptest.Server
}

func startSim(t *testing.T) *graphsim.Simulator {
	t.Helper()
	sim, err := graphsim.Start(graphsim.Options{})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

func entraConfig(sim *graphsim.Simulator) callers.Config {
	return callers.Config{
		TenantID:      sim.TenantID(),
		AuthorityHost: sim.AuthorityHost(),
		Audiences:     []string{graphsim.GatewayAppID, graphsim.GatewayAppIDURI},
		HTTPClient:    sim.Client(),
		HTTPTimeout:   5 * time.Second,
	}
}

func newHarness(t *testing.T, cfg func(*callers.Config)) *harness {
	t.Helper()
	h := &harness{sim: startSim(t)}
	h.policyPath = filepath.Join(t.TempDir(), "policy.yaml")
	h.writePolicy(t, testPolicy)
	store, err := policy.Load(h.policyPath)
	if err != nil {
		t.Fatalf("load policy: %v", err)
	}
	h.store = store

	c := entraConfig(h.sim)
	if cfg != nil {
		cfg(&c)
	}
	h.auth, err = callers.New(t.Context(), c, store, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.gateway = httptest.NewServer(gatewayHandler(h.auth, h.store))
	t.Cleanup(h.gateway.Close)
	return h
}

func (h *harness) writePolicy(t *testing.T, doc string) {
	t.Helper()
	if err := os.WriteFile(h.policyPath, []byte(doc), 0o600); err != nil {
		t.Fatalf("write policy: %v", err)
	}
}

// gatewayHandler serves /sites/{site}/servers/{server}: GET needs a read grant, PATCH a grant
// for every top-level member of the JSON body. Errors are written as the handlers package
// does: status, challenge and a JSON body with the reason.
func gatewayHandler(auth *callers.Authenticator, store *policy.Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/sites/{site}/servers/{server}", func(w http.ResponseWriter, r *http.Request) {
		caller, err := auth.Authenticate(r)
		if err != nil {
			writeError(w, err)
			return
		}
		site := r.PathValue("site")
		switch r.Method {
		case http.MethodGet:
			err = store.AuthorizeRead(caller, site)
		case http.MethodPatch:
			var body map[string]any
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				http.Error(w, "bad body", http.StatusBadRequest)
				return
			}
			properties := make([]string, 0, len(body))
			for name := range body {
				properties = append(properties, name)
			}
			err = store.AuthorizeWrite(caller, site, properties)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"kind": caller.Kind, "id": caller.ID})
	})
	return mux
}

func writeError(w http.ResponseWriter, err error) {
	var authErr *callers.Error
	var denied *policy.Denied
	switch {
	case errors.As(err, &authErr):
		w.Header().Set("WWW-Authenticate", authErr.Challenge())
		writeJSON(w, authErr.Status, map[string]string{
			"reason": authErr.Reason, "detail": authErr.Detail})
	case errors.As(err, &denied):
		writeJSON(w, http.StatusForbidden, map[string]string{
			"reason": denied.Reason, "detail": denied.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"detail": err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// request describes one call to the test gateway.
type request struct {
	method    string // default GET
	site      string // default graphsim.DefaultSiteID
	body      string // PATCH body
	bearer    string // Authorization: Bearer value, if set
	apiKey    string // X-Api-Key value, if set
	rawHeader string // Authorization value as is, if set
}

// answer is what the test gateway said.
type answer struct {
	status    int
	reason    string
	detail    string
	callerID  string
	challenge string
	raw       string
}

func (h *harness) call(t *testing.T, rq request) answer {
	t.Helper()
	method, site := rq.method, rq.site
	if method == "" {
		method = http.MethodGet
	}
	if site == "" {
		site = graphsim.DefaultSiteID
	}
	url := h.gateway.URL + "/sites/" + site + "/servers/" + graphsim.ExampleServerID
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(rq.body))
	if err != nil {
		t.Fatal(err)
	}
	if rq.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+rq.bearer)
	}
	if rq.rawHeader != "" {
		req.Header.Set("Authorization", rq.rawHeader)
	}
	if rq.apiKey != "" {
		req.Header.Set("X-Api-Key", rq.apiKey)
	}
	resp, err := h.gateway.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]string
	_ = json.Unmarshal(raw, &body)
	return answer{status: resp.StatusCode, reason: body["reason"], detail: body["detail"],
		callerID: body["id"], challenge: resp.Header.Get("WWW-Authenticate"), raw: string(raw)}
}

// realToken gets an access token for the gateway from the simulator's token endpoint, as a
// caller's azidentity would.
func realToken(t *testing.T, sim *graphsim.Simulator, clientID, secret string) string {
	t.Helper()
	return realTokenFor(t, sim, clientID, secret, graphsim.GatewayAppIDURI+"/.default")
}

// realTokenFor gets an access token for scope from the simulator's token endpoint.
func realTokenFor(t *testing.T, sim *graphsim.Simulator, clientID, secret,
	scope string) string {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(sim.TenantID(), clientID, secret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions: azcore.ClientOptions{
				Cloud: cloud.Configuration{
					ActiveDirectoryAuthorityHost: sim.AuthorityHost(),
				},
				Transport: sim.Client(),
			},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatalf("credential: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tok, err := cred.GetToken(ctx, azpolicy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		t.Fatalf("get token: %v", err)
	}
	return tok.Token
}

// mint signs the portal's usual claims, changed by edit, as opts asks.
func mint(t *testing.T, sim *graphsim.Simulator, edit func(map[string]any),
	opts graphsim.MintOptions) string {
	t.Helper()
	claims, err := sim.TokenClaims(graphsim.PortalClientID, graphsim.GatewayAppID)
	if err != nil {
		t.Fatalf("token claims: %v", err)
	}
	if edit != nil {
		edit(claims)
	}
	tok, err := sim.MintToken(claims, opts)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

// check compares an answer with the status and reason wanted, and makes sure the credential
// sent is never echoed.
func check(t *testing.T, got answer, rq request, wantStatus int, wantReason string) {
	t.Helper()
	if got.status != wantStatus || got.reason != wantReason {
		t.Errorf("got %d %q, want %d %q: %s", got.status, got.reason, wantStatus, wantReason,
			got.raw)
	}
	if wantStatus == http.StatusUnauthorized && !strings.HasPrefix(got.challenge,
		`Bearer realm="tunnel-gateway"`) {
		t.Errorf("WWW-Authenticate: got %q, want a Bearer challenge", got.challenge)
	}
	for _, secret := range []string{rq.bearer, rq.apiKey, rq.rawHeader} {
		// Short values such as "Bearer" are words the details use.
		if len(secret) > 10 && (strings.Contains(got.raw, secret) ||
			strings.Contains(got.challenge, secret)) {
			t.Errorf("response echoes the credential sent: %s %s", got.challenge, got.raw)
		}
	}
}
