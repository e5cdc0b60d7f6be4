package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	tunnelgateway "tunnelgateway"
	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/handlers"
	"tunnelgateway/internal/metrics"
	"tunnelgateway/internal/policy"
	"tunnelgateway/internal/validation"
)

const (
	benchAPIKey   = "bench-key-0123456789abcdef0123456789"
	benchToken    = "bench-graph-token"
	benchSiteID   = "2a7c1b9e-4d3f-4e8a-9b6c-5d4e3f2a1b0c"
	benchServerID = "b5cf0aee-0aee-b5cf-ee0a-cfb5ee0acfb5"
	benchGraphReq = "0d7c8a46-5f2b-4c1e-9a3d-6b8e2f4c1a70"
)

// benchBody is the request body of the Graph page's example.
var benchBody = []byte(`{
  "@odata.type": "#microsoft.graph.microsoftTunnelServer",
  "displayName": "Display Name value",
  "tunnelServerHealthStatus": "healthy",
  "lastCheckinDateTime": "2017-01-01T00:02:46.0431416-08:00",
  "agentImageDigest": "Agent Image Digest value",
  "serverImageDigest": "Server Image Digest value"
}`)

var benchPath = "/beta/deviceManagement/microsoftTunnelSites/" + benchSiteID +
	"/microsoftTunnelServers/" + benchServerID

// benchCredential hands out one fixed token: the upstream is faked, so is its authority.
type benchCredential struct{}

func (benchCredential) GetToken(context.Context,
	azpolicy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: benchToken, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// benchStack is the whole handler wired to real parts, and a bare reverse proxy, both in front
// of one in-process upstream that answers PATCH as Graph does.
type benchStack struct {
	gateway  http.Handler
	bare     http.Handler
	auditLog *audit.Log
}

func newBenchStack(tb testing.TB) *benchStack {
	tb.Helper()
	upstream := httptest.NewTLSServer(http.HandlerFunc(benchGraphPatch))
	tb.Cleanup(upstream.Close)
	// Both paths get the same pooled transport, so neither pays for new TLS connections.
	transport := upstream.Client().Transport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 256
	tb.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport}

	registry := prometheus.NewRegistry()
	m := metrics.New(registry)
	auditLog, err := audit.Open(audit.Config{Path: filepath.Join(tb.TempDir(), "audit.log")},
		zap.NewNop(), audit.WithObserver(m.AuditObserver()))
	if err != nil {
		tb.Fatalf("open audit trail: %v", err)
	}
	tb.Cleanup(func() { _ = auditLog.Close(context.Background()) })

	return &benchStack{
		gateway:  newBenchGateway(tb, upstream.URL, client, m, auditLog),
		bare:     newBenchBareProxy(tb, upstream.URL, transport),
		auditLog: auditLog,
	}
}

func newBenchGateway(tb testing.TB, upstreamURL string, client *http.Client,
	m *metrics.Metrics, auditLog *audit.Log) http.Handler {
	tb.Helper()
	graph, err := graphclient.New(graphclient.Options{
		BaseURL:    upstreamURL + "/beta",
		Scope:      "https://graph.microsoft.com/.default",
		Credential: benchCredential{},
		HTTPClient: client,
		Observer:   m.UpstreamObserver(),
	})
	if err != nil {
		tb.Fatalf("build graph client: %v", err)
	}
	validator, err := validation.New()
	if err != nil {
		tb.Fatalf("build validator: %v", err)
	}
	grants, err := policy.Parse([]byte(`callers:
  - name: bench
    apiKeySha256: ` + callers.HashAPIKey(benchAPIKey) + `
    read: true
    properties: [` + strings.Join(policy.UpdatableProperties, ", ") + `]
`))
	if err != nil {
		tb.Fatalf("parse policy: %v", err)
	}
	store := policy.NewStore(grants)
	auth, err := callers.New(context.Background(), callers.Config{}, store, nil)
	if err != nil {
		tb.Fatalf("build authenticator: %v", err)
	}
	return handlers.New(handlers.Deps{
		Graph:          graph,
		Validator:      validator,
		Auth:           auth,
		Policy:         store,
		Audit:          auditLog,
		Metrics:        m,
		Logger:         benchLogger(),
		OpenAPI:        tunnelgateway.OpenAPI,
		MaxBodyBytes:   64 << 10,
		RequestTimeout: 30 * time.Second,
	})
}

// benchLogger encodes every access-log line as production does, then discards it.
func benchLogger() *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zapcore.InfoLevel))
}

// newBenchBareProxy forwards as it is, only swapping the caller's key for the Graph token.
func newBenchBareProxy(tb testing.TB, upstreamURL string,
	transport http.RoundTripper) http.Handler {
	tb.Helper()
	target, err := url.Parse(upstreamURL)
	if err != nil {
		tb.Fatal(err)
	}
	return &httputil.ReverseProxy{
		Transport: transport,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Header.Del("X-Api-Key")
			r.Out.Header.Set("Authorization", "Bearer "+benchToken)
		},
	}
}

// benchGraphPatch answers a PATCH of the example server as Graph does: 200 with the object.
func benchGraphPatch(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+benchToken {
		http.Error(w, `{"error":{"code":"InvalidAuthenticationToken"}}`, http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPatch || r.URL.Path != benchPath {
		http.Error(w, `{"error":{"code":"BadRequest"}}`, http.StatusBadRequest)
		return
	}
	var props map[string]any
	if err := json.NewDecoder(r.Body).Decode(&props); err != nil {
		http.Error(w, `{"error":{"code":"BadRequest"}}`, http.StatusBadRequest)
		return
	}
	props["id"] = benchServerID
	props["@odata.context"] = "https://graph.microsoft.com/beta/$metadata#" +
		"deviceManagement/microsoftTunnelSites('" + benchSiteID + "')/microsoftTunnelServers/$entity"
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", benchGraphReq)
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(props)
}

// sendBenchPatch sends the example PATCH through h and returns the recorded answer.
func sendBenchPatch(h http.Handler) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPatch, benchPath, bytes.NewReader(benchBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", benchAPIKey)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestBenchStackForwardsPatch keeps the benchmark's setup honest: both paths must reach the
// fake upstream with its token and bring its answer back, and the gateway must audit.
func TestBenchStackForwardsPatch(t *testing.T) {
	t.Parallel()
	s := newBenchStack(t)
	tests := []struct {
		name    string
		handler http.Handler
	}{
		{"gateway", s.gateway},
		{"bare proxy", s.bare},
	}
	for _, tt := range tests {
		rec := sendBenchPatch(tt.handler)
		if got, want := rec.Code, http.StatusOK; got != want {
			t.Fatalf("%s: status %d, want %d; body %s", tt.name, got, want, rec.Body)
		}
		if got, want := rec.Header().Get("Graph-Request-Id"), benchGraphReq; tt.name == "gateway" &&
			got != want {
			t.Errorf("%s: Graph-Request-Id %q, want %q", tt.name, got, want)
		}
	}
	// ResponseComplete is written without waiting; Flush waits for it.
	if err := s.auditLog.Flush(context.Background()); err != nil {
		t.Fatalf("flush audit trail: %v", err)
	}
	if got, want := s.auditLog.Stats().Events, uint64(2); got != want {
		t.Errorf("audit events after one gateway PATCH: %d, want %d", got, want)
	}
}

// BenchmarkPatch sends the Graph page's example PATCH through the whole gateway handler
// (API key, validation, policy, durable audit with fsync, metrics, azcore pipeline) and,
// for comparison, through a bare httputil.ReverseProxy, both to one in-process upstream.
// allocs/op counts the whole process, the fake upstream included; the difference between the
// two is what the gateway itself allocates. Serial runs pay one audit fsync per request;
// parallel runs share fsyncs (group commit), as under load.
func BenchmarkPatch(b *testing.B) {
	s := newBenchStack(b)
	benchmarks := []struct {
		name     string
		handler  http.Handler
		parallel bool
	}{
		{"gateway/serial", s.gateway, false},
		{"gateway/parallel", s.gateway, true},
		{"bare-proxy/serial", s.bare, false},
		{"bare-proxy/parallel", s.bare, true},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			if !bm.parallel {
				for b.Loop() {
					if rec := sendBenchPatch(bm.handler); rec.Code != http.StatusOK {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
				return
			}
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if rec := sendBenchPatch(bm.handler); rec.Code != http.StatusOK {
						b.Errorf("status %d: %s", rec.Code, rec.Body)
						return
					}
				}
			})
		})
	}
}
