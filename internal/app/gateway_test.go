package app_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"tunnelgateway/internal/config"
	"tunnelgateway/internal/graphsim"
)

const (
	site   = graphsim.DefaultSiteID
	server = graphsim.ExampleServerID
	// examplePatch is the Graph page's example request body.
	examplePatch = `{
  "@odata.type": "#microsoft.graph.microsoftTunnelServer",
  "displayName": "Display Name value",
  "tunnelServerHealthStatus": "healthy",
  "lastCheckinDateTime": "2017-01-01T00:02:46.0431416-08:00",
  "agentImageDigest": "Agent Image Digest value",
  "serverImageDigest": "Server Image Digest value"
}`
)

// TestExampleRequestBothRoutes sends the Graph page's example through both routes and checks
// the answer and what the simulator then holds.
func TestExampleRequestBothRoutes(t *testing.T) {
	t.Parallel()
	v1Body := strings.Replace(examplePatch,
		`"@odata.type": "#microsoft.graph.microsoftTunnelServer",`, "", 1)
	for _, tc := range []struct {
		name string
		path string
		body string
		// noContent switches the simulator to answer 204, as Intune endpoints often do.
		noContent bool
	}{
		{name: "graph route", path: graphServer(site, server), body: examplePatch},
		{name: "v1 route", path: v1Server(site, server), body: v1Body},
		{name: "graph route, graph answers 204", path: graphServer(site, server),
			body: examplePatch, noContent: true},
		{name: "v1 route, graph answers 204", path: v1Server(site, server), body: v1Body,
			noContent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startStack(t, stackOptions{sim: graphsim.Options{PatchNoContent: tc.noContent}})
			got := s.do(t, request{method: http.MethodPatch, path: tc.path, body: tc.body})
			if tc.noContent {
				if got.status != http.StatusNoContent || got.body != "" {
					t.Fatalf("status = %d with body %q, want 204 and no body", got.status, got.body)
				}
			} else {
				if got.status != http.StatusOK {
					t.Fatalf("status = %d, want 200; body %s", got.status, got.body)
				}
				var answer map[string]any
				if err := json.Unmarshal([]byte(got.body), &answer); err != nil {
					t.Fatalf("answer is not JSON: %v", err)
				}
				if answer["id"] != server || answer["displayName"] != "Display Name value" {
					t.Errorf("answer = %v, want the example server with the new name", answer)
				}
			}
			if got.header.Get("X-Request-Id") == "" || got.header.Get("Graph-Request-Id") == "" {
				t.Errorf("headers = %v, want X-Request-Id and Graph-Request-Id", got.header)
			}

			stored, ok := s.sim.Server(site, server)
			if !ok {
				t.Fatal("simulator lost the example server")
			}
			want := map[string]any{
				"displayName":              "Display Name value",
				"tunnelServerHealthStatus": "healthy",
				"lastCheckinDateTime":      "2017-01-01T00:02:46.0431416-08:00",
				"agentImageDigest":         "Agent Image Digest value",
				"serverImageDigest":        "Server Image Digest value",
			}
			for k, v := range want {
				if stored[k] != v {
					t.Errorf("simulator holds %s = %v, want %v", k, stored[k], v)
				}
			}
		})
	}
}

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestBodyRules sends bad bodies over HTTP, one rule each, and checks the status and the field
// the answer names. The shared cases cover more; these are the rules they leave out.
func TestBodyRules(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	bomb := gzipped(t, `{"displayName":"`+strings.Repeat("a", 200_000)+`"}`)
	for _, tc := range []struct {
		name     string
		path     string
		body     string
		headers  map[string]string
		status   int
		mentions []string
	}{
		{name: "gzip body on the graph route", path: graphServer(site, server),
			body: gzipped(t, `{"displayName":"zipped"}`), headers: map[string]string{"Content-Encoding": "gzip"},
			status: http.StatusOK},
		{name: "gzip bomb over the limit after decoding", path: graphServer(site, server), body: bomb,
			headers: map[string]string{"Content-Encoding": "gzip"}, status: http.StatusRequestEntityTooLarge},
		{name: "unknown content encoding", path: v1Server(site, server), body: `{"displayName":"x"}`,
			headers: map[string]string{"Content-Encoding": "br"}, status: http.StatusUnsupportedMediaType},
		{name: "name differs only in case", path: v1Server(site, server), body: `{"DisplayName":"x"}`,
			status: http.StatusBadRequest, mentions: []string{"DisplayName"}},
		{name: "duplicate key", path: v1Server(site, server),
			body: `{"displayName":"a","displayName":"b"}`, status: http.StatusBadRequest,
			mentions: []string{"displayName", "duplicate"}},
		{name: "invalid UTF-8", path: v1Server(site, server), body: "{\"displayName\":\"\xff\xfe\"}",
			status: http.StatusBadRequest},
		{name: "blank name", path: v1Server(site, server), body: `{"displayName":"   "}`,
			status: http.StatusBadRequest, mentions: []string{"displayName"}},
		{name: "not a calendar date", path: v1Server(site, server),
			body: `{"lastCheckinDateTime":"2023-02-30T10:00:00Z"}`, status: http.StatusBadRequest,
			mentions: []string{"lastCheckinDateTime"}},
		{name: "eight fractional digits", path: v1Server(site, server),
			body: `{"lastCheckinDateTime":"2023-02-03T10:00:00.12345678Z"}`, status: http.StatusBadRequest,
			mentions: []string{"lastCheckinDateTime"}},
		{name: "null digest", path: v1Server(site, server), body: `{"agentImageDigest":null}`,
			status: http.StatusBadRequest, mentions: []string{"agentImageDigest"}},
		{name: "digest over 1024 characters", path: v1Server(site, server),
			body:   `{"agentImageDigest":"` + strings.Repeat("f", 1025) + `"}`,
			status: http.StatusBadRequest, mentions: []string{"/agentImageDigest", "max_length"}},
		{name: "digest of 1024 characters", path: v1Server(site, server),
			body:   `{"serverImageDigest":"` + strings.Repeat("f", 1024) + `"}`,
			status: http.StatusOK},
		{name: "nesting deeper than the bound", path: v1Server(site, server),
			body:   `{"displayName":` + strings.Repeat("[", 17) + strings.Repeat("]", 17) + `}`,
			status: http.StatusBadRequest, mentions: []string{"depth"}},
		{name: "every problem at once", path: v1Server(site, server),
			body:   `{"displayName":"","tunnelServerHealthStatus":"Healthy","colour":"blue"}`,
			status: http.StatusBadRequest, mentions: []string{"displayName", "tunnelServerHealthStatus", "colour"}},
		{name: "enum answer lists the allowed values", path: v1Server(site, server),
			body: `{"tunnelServerHealthStatus":"fine"}`, status: http.StatusBadRequest,
			mentions: []string{"upgradeInProgress", "upgradeFailed"}},
		{name: "site id not a GUID", path: v1Server("not-a-guid", server), body: `{"displayName":"x"}`,
			status: http.StatusBadRequest, mentions: []string{"siteId"}},
		{name: "encoded slash in an id stays in its segment", path: v1Server(site, "..%2Fusers"),
			body: `{"displayName":"x"}`, status: http.StatusBadRequest, mentions: []string{"serverId"}},
		{name: "query options are refused, not ignored", path: v1Server(site, server) + "?$select=id",
			body: `{"displayName":"x"}`, status: http.StatusBadRequest, mentions: []string{"$select"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.do(t, request{method: http.MethodPatch, path: tc.path, body: tc.body,
				headers: tc.headers})
			if got.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", got.status, tc.status, got.body)
			}
			for _, m := range tc.mentions {
				if !strings.Contains(got.body, m) {
					t.Errorf("answer does not mention %q: %s", m, got.body)
				}
			}
		})
	}

	// Failures without a field are labelled by kind, in the rules' snake_case.
	resp, err := http.Get(s.adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metricsText, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, series := range []string{
		`tunnelgateway_validation_failures_total{field="(root)",rule="too_large"}`,
		`tunnelgateway_validation_failures_total{field="(root)",rule="media_type"}`,
	} {
		if !strings.Contains(string(metricsText), series) {
			t.Errorf("/metrics has no %s", series)
		}
	}
}

// TestErrorShapes checks that /v1 answers RFC 9457 problems and the Graph route answers in
// Graph's error shape, both carrying the request id.
func TestErrorShapes(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})

	v1 := s.do(t, request{method: http.MethodPatch, path: v1Server(site, server),
		body: `{"displayName":""}`})
	if ct := v1.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("v1 content type = %q, want application/problem+json", ct)
	}
	var problem struct {
		Status    int    `json:"status"`
		RequestID string `json:"request_id"`
		Errors    []struct {
			Pointer, Rule string
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(v1.body), &problem); err != nil {
		t.Fatalf("v1 problem: %v", err)
	}
	if problem.Status != 400 || problem.RequestID != v1.header.Get("X-Request-Id") ||
		len(problem.Errors) == 0 || problem.Errors[0].Pointer != "/displayName" {
		t.Errorf("v1 problem = %+v, want status 400, the request id and /displayName", problem)
	}

	graph := s.do(t, request{method: http.MethodPatch, path: graphServer(site, server),
		body: `{"displayName":""}`})
	var ge struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			Details    []struct{ Target string }
			InnerError map[string]string `json:"innerError"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(graph.body), &ge); err != nil {
		t.Fatalf("graph error: %v", err)
	}
	if ge.Error.Code == "" || ge.Error.Message == "" || len(ge.Error.Details) == 0 ||
		ge.Error.Details[0].Target != "/displayName" || ge.Error.InnerError["request-id"] == "" {
		t.Errorf("graph error = %+v, want code, message, a detail for /displayName, innerError", ge)
	}
}

// TestUpstreamErrorMapping checks the one mapping from Graph's answers to the caller's.
func TestUpstreamErrorMapping(t *testing.T) {
	t.Parallel()
	unknownServer := "0f0f0f0f-0000-4000-8000-000000000000"
	for _, tc := range []struct {
		name      string
		sim       graphsim.Options
		configure func(*config.Config)
		path      string
		status    int
		mentions  []string
	}{
		{name: "graph 404 passes through with graph's code", path: v1Server(site, unknownServer),
			status: http.StatusNotFound, mentions: []string{"ResourceNotFound"}},
		{name: "intune's json-in-message is unwrapped", sim: graphsim.Options{IntuneErrors: true},
			path: v1Server(site, unknownServer), status: http.StatusNotFound,
			mentions: []string{`"code":"ResourceNotFound"`, "Operation ID"}},
		{name: "graph 403 for the gateway's own credentials becomes 502",
			configure: func(c *config.Config) {
				c.Graph.ClientID, c.Graph.ClientSecret = graphsim.ReadOnlyClientID, graphsim.ReadOnlyClientSecret
			},
			path: v1Server(site, server), status: http.StatusBadGateway,
			mentions: []string{"gateway's own credentials", "DeviceManagementConfiguration.ReadWrite.All"}},
		{name: "graph 500 becomes 502", sim: graphsim.Options{Faults: graphsim.Faults{
			Methods: []string{http.MethodPatch}, Sequence: []string{"500"}}},
			path: v1Server(site, server), status: http.StatusBadGateway, mentions: []string{"upstream"}},
		{name: "graph 500 after applying the change says a repeat is safe",
			sim: graphsim.Options{Faults: graphsim.Faults{Methods: []string{http.MethodPatch},
				Sequence: []string{"applied-500"}}},
			path: v1Server(site, server), status: http.StatusBadGateway,
			mentions: []string{"may have been applied", "repeating the same request is safe"}},
		{name: "a wrong client secret means no token: 503",
			configure: func(c *config.Config) { c.Graph.ClientSecret = "wrong" },
			path:      v1Server(site, server), status: http.StatusServiceUnavailable,
			mentions: []string{"Graph token"}},
		{name: "graph stalls past the deadline: 504",
			sim: graphsim.Options{Faults: graphsim.Faults{Methods: []string{http.MethodPatch},
				StallRate: 1, StallFor: 10 * time.Second}},
			configure: func(c *config.Config) {
				c.Requests.Timeout = 700 * time.Millisecond
				c.Requests.UpstreamTimeout = 500 * time.Millisecond
			},
			path: v1Server(site, server), status: http.StatusGatewayTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startStack(t, stackOptions{sim: tc.sim, configure: tc.configure})
			got := s.do(t, request{method: http.MethodPatch, path: tc.path,
				body: `{"displayName":"x"}`})
			if got.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", got.status, tc.status, got.body)
			}
			for _, m := range tc.mentions {
				if !strings.Contains(got.body, m) {
					t.Errorf("answer does not mention %q: %s", m, got.body)
				}
			}
		})
	}
}

// TestClientRequestIDReachesGraph checks that Graph sees the gateway's request id as
// client-request-id: the simulator echoes it inside its error body.
func TestClientRequestIDReachesGraph(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	got := s.do(t, request{method: http.MethodGet,
		path: graphServer(site, "0f0f0f0f-0000-4000-8000-000000000000")})
	if got.status != http.StatusNotFound {
		t.Fatalf("status = %d, want 404; body %s", got.status, got.body)
	}
	var ge struct {
		Error struct {
			InnerError map[string]string `json:"innerError"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(got.body), &ge); err != nil {
		t.Fatal(err)
	}
	if id := got.header.Get("X-Request-Id"); ge.Error.InnerError["client-request-id"] != id {
		t.Errorf("graph saw client-request-id %q, want the gateway's request id %q",
			ge.Error.InnerError["client-request-id"], id)
	}
	if ge.Error.InnerError["request-id"] != got.header.Get("Graph-Request-Id") {
		t.Errorf("Graph-Request-Id %q differs from graph's request-id %q",
			got.header.Get("Graph-Request-Id"), ge.Error.InnerError["request-id"])
	}
}

// TestReadThrough lists and reads through both route families, following every page.
func TestReadThrough(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{sim: graphsim.Options{PageSize: 1}})
	want := len(graphsim.DefaultSeed())
	var servers int
	for _, st := range graphsim.DefaultSeed() {
		if st.ID == site {
			servers = len(st.Servers)
		}
	}

	for _, tc := range []struct {
		name        string
		path        string
		count       int
		wantContext bool
	}{
		{"v1 sites", "/v1/tunnel-sites", want, false},
		{"graph sites", "/beta/deviceManagement/microsoftTunnelSites", want, true},
		{"v1 servers", "/v1/tunnel-sites/" + site + "/servers", servers, false},
		{"graph servers", "/beta/deviceManagement/microsoftTunnelSites/" + site +
			"/microsoftTunnelServers", servers, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.do(t, request{method: http.MethodGet, path: tc.path})
			if got.status != http.StatusOK {
				t.Fatalf("status = %d; body %s", got.status, got.body)
			}
			var list struct {
				Context string            `json:"@odata.context"`
				Value   []json.RawMessage `json:"value"`
			}
			if err := json.Unmarshal([]byte(got.body), &list); err != nil {
				t.Fatal(err)
			}
			if len(list.Value) != tc.count {
				t.Errorf("got %d items, want %d (every page followed)", len(list.Value), tc.count)
			}
			if (list.Context != "") != tc.wantContext {
				t.Errorf("@odata.context = %q, want present: %v", list.Context, tc.wantContext)
			}
		})
	}

	got := s.do(t, request{method: http.MethodGet, path: v1Server(site, server)})
	if got.status != http.StatusOK || !strings.Contains(got.body, server) {
		t.Errorf("GET one server: %d %s", got.status, got.body)
	}
}

// TestListBound refuses a list longer than the page bound rather than truncating it.
func TestListBound(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{sim: graphsim.Options{PageSize: 1},
		configure: func(c *config.Config) { c.Requests.MaxListPages = 1 }})
	got := s.do(t, request{method: http.MethodGet, path: "/v1/tunnel-sites"})
	if got.status != http.StatusBadGateway || !strings.Contains(got.body, "GATEWAY_MAX_LIST_PAGES") {
		t.Errorf("status = %d, body %s; want 502 naming GATEWAY_MAX_LIST_PAGES", got.status, got.body)
	}
}

// TestStartupWarnsOfMissingWriteRole reads the roles of the gateway's first Graph token and
// says clearly when the permission a PATCH needs is missing.
func TestStartupWarnsOfMissingWriteRole(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.InfoLevel)
	startStack(t, stackOptions{logger: zap.New(core), configure: func(c *config.Config) {
		c.Graph.ClientID, c.Graph.ClientSecret = graphsim.ReadOnlyClientID, graphsim.ReadOnlyClientSecret
	}})
	found := logs.FilterField(zap.String("missing_role", "DeviceManagementConfiguration.ReadWrite.All"))
	if found.Len() != 1 || found.All()[0].Level != zap.ErrorLevel {
		t.Errorf("want one error naming the missing role; log: %v", logs.All())
	}
}
