package callers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/policy"
)

// TestNewFailures checks that New fails clearly, and promptly, when discovery cannot work.
func TestNewFailures(t *testing.T) {
	t.Parallel()
	sim := startSim(t)

	// A TLS server that never answers, to prove discovery gives up after HTTPTimeout.
	stuck := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(stuck.Close)
	// A listener that is closed, so connections are refused.
	closed := httptest.NewTLSServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name string
		edit func(*callers.Config)
		want string
	}{
		{name: "unknown tenant", edit: func(c *callers.Config) {
			c.TenantID = "00000000-0000-0000-0000-0000000000aa"
		}, want: "status 400, want 200 (is the tenant id right?)"},
		{name: "untrusted certificate", edit: func(c *callers.Config) {
			c.HTTPClient = &http.Client{}
		}, want: "certificate"},
		{name: "authority does not answer", edit: func(c *callers.Config) {
			c.AuthorityHost, c.HTTPClient = stuck.URL, stuck.Client()
			c.HTTPTimeout = 300 * time.Millisecond
		}, want: "context deadline exceeded"},
		{name: "connection refused", edit: func(c *callers.Config) {
			c.AuthorityHost = closedURL
		}, want: "connection refused"},
		{name: "invalid config reported together", edit: func(c *callers.Config) {
			c.TenantID, c.AuthorityHost, c.Audiences = "contoso.onmicrosoft.com", "http://x", nil
		}, want: `TenantID="contoso.onmicrosoft.com": must be the tenant's directory id GUID` +
			`, not a domain name
callers config AuthorityHost="http://x": must be an https URL
callers config Audiences="": at least one is required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := entraConfig(sim)
			tt.edit(&cfg)
			start := time.Now()
			_, err := callers.New(t.Context(), cfg, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: got %v, want an error containing %q", err, tt.want)
			}
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("New took %s, want it bounded by the HTTP timeout", elapsed)
			}
		})
	}
}

func TestNewWithoutAnyMethod(t *testing.T) {
	t.Parallel()
	_, err := callers.New(context.Background(), callers.Config{}, nil, nil)
	if err == nil {
		t.Fatal("New with neither tenant nor keys: got nil error, want one")
	}
}

// TestAPIKeysOnly runs the gateway without a tenant: keys work, bearer tokens are refused
// without any network access.
func TestAPIKeysOnly(t *testing.T) {
	t.Parallel()
	store, err := policy.Load("../policy/testdata/policy.yaml")
	if err != nil {
		t.Fatalf("load policy: %v", err)
	}
	auth, err := callers.New(t.Context(), callers.Config{}, store, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	gateway := httptest.NewServer(gatewayHandler(auth, store))
	t.Cleanup(gateway.Close)
	h := &harness{gateway: gateway}
	tests := []struct {
		name       string
		rq         request
		wantStatus int
		wantReason string
	}{
		{name: "dashboard reads", rq: request{apiKey: "dashboard-key"},
			wantStatus: http.StatusOK},
		{name: "bearer refused", rq: request{bearer: "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"},
			wantStatus: http.StatusUnauthorized, wantReason: callers.ReasonBearerNotAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check(t, h.call(t, tt.rq), tt.rq, tt.wantStatus, tt.wantReason)
		})
	}
}

func TestGenerateAPIKey(t *testing.T) {
	t.Parallel()
	key, hash, err := callers.GenerateAPIKey()
	if err != nil {
		t.Fatalf("GenerateAPIKey: %v", err)
	}
	if got, want := len(key), 64; got != want {
		t.Errorf("key length: got %d, want %d", got, want)
	}
	if got, want := hash, callers.HashAPIKey(key); got != want {
		t.Errorf("hash: got %s, want %s", got, want)
	}
	// The digest of "abc" from FIPS 180-2, as sha256sum prints it.
	if got, want := callers.HashAPIKey("abc"),
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("HashAPIKey(abc): got %s, want %s", got, want)
	}
}
