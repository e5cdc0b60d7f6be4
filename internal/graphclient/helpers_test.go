package graphclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/google/uuid"

	"tunnelgateway/internal/config"
	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/graphsim"
)

// Ids of the simulator's default seed.
var (
	siteID   = graphsim.DefaultSiteID
	serverID = graphsim.ExampleServerID
)

const graphScope = graphsim.GraphResource + "/.default"

// patchRoute is the simulator's counter key route for a server PATCH or GET.
const patchRoute = graphsim.RouteServer

// startSim starts a simulator for one test and closes it when the test ends.
func startSim(t *testing.T, opts graphsim.Options) *graphsim.Simulator {
	t.Helper()
	sim, err := graphsim.Start(opts)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// clientSetup is what a test may change about the client it builds.
type clientSetup struct {
	// baseURL defaults to the simulator's Graph base; httpClient to the simulator's client.
	baseURL    string
	httpClient *http.Client
	configure  func(*graphclient.Options)
}

// newClient builds a Graph client with the real ClientSecretCredential against sim. Retries
// back off briefly by default so that tests stay fast.
func newClient(t *testing.T, sim *graphsim.Simulator, setup clientSetup) *graphclient.Client {
	t.Helper()
	opts := graphclient.Options{
		BaseURL:    sim.GraphBaseURL(),
		Scope:      graphScope,
		Credential: credentialFor(t, sim, graphsim.DefaultClientID, graphsim.DefaultClientSecret),
		HTTPClient: sim.Client(),
		TryTimeout: 5 * time.Second,
		RetryDelay: 20 * time.Millisecond,
	}
	if setup.baseURL != "" {
		opts.BaseURL = setup.baseURL
	}
	if setup.httpClient != nil {
		opts.HTTPClient = setup.httpClient
	}
	if setup.configure != nil {
		setup.configure(&opts)
	}
	c, err := graphclient.New(opts)
	if err != nil {
		t.Fatalf("build graph client: %v", err)
	}
	return c
}

// credentialFor is the real client secret credential of an app registered in sim.
func credentialFor(t *testing.T, sim *graphsim.Simulator,
	clientID, secret string) azcore.TokenCredential {
	t.Helper()
	cred, err := graphclient.NewCredential(config.GraphConfig{
		TenantID:                 sim.TenantID(),
		ClientID:                 clientID,
		ClientSecret:             secret,
		AuthorityHost:            sim.AuthorityHost(),
		DisableInstanceDiscovery: true,
	}, sim.Client())
	if err != nil {
		t.Fatalf("build credential: %v", err)
	}
	return cred
}

// testContext is a context that ends with the test, bounded so nothing hangs.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// seenRequest is what the front server received.
type seenRequest struct {
	method           string
	path             string
	header           http.Header
	contentLength    int64
	transferEncoding []string
}

// front is a TLS server in front of the simulator: it records what reaches it and can change
// the simulator's answers, so tests see the headers Graph would receive.
type front struct {
	server *httptest.Server
	mu     sync.Mutex
	seen   []seenRequest
}

// startFront proxies to sim; modify, when set, may change each answer.
func startFront(t *testing.T, sim *graphsim.Simulator, modify func(*http.Response) error) *front {
	t.Helper()
	target, err := url.Parse(sim.URL())
	if err != nil {
		t.Fatal(err)
	}
	f := &front{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
		},
		Transport:      sim.Client().Transport,
		ModifyResponse: modify,
	}
	f.server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, seenRequest{method: r.Method, path: r.URL.Path,
			header: r.Header.Clone(), contentLength: r.ContentLength,
			transferEncoding: r.TransferEncoding})
		f.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(f.server.Close)
	return f
}

// graphBase is the front's Graph base URL.
func (f *front) graphBase() string { return f.server.URL + "/beta" }

// requests returns what the front received so far.
func (f *front) requests() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.seen...)
}

// setFaults changes the simulator's faults or fails the test.
func setFaults(t *testing.T, sim *graphsim.Simulator, f graphsim.Faults) {
	t.Helper()
	if err := sim.SetFaults(f); err != nil {
		t.Fatalf("set faults: %v", err)
	}
}

// newID is a fresh client-request-id.
func newID() string { return uuid.NewString() }

// patchBody is a valid update of the example server.
func patchBody(name string) []byte {
	return []byte(`{"displayName":"` + name + `"}`)
}

// countPatches is how many PATCHes of a server the simulator answered with status.
func countPatches(sim *graphsim.Simulator, status int) int64 {
	return sim.Counters().Count(http.MethodPatch, patchRoute, status)
}
