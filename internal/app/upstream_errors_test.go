package app_test

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"tunnelgateway/internal/config"
	"tunnelgateway/internal/graphsim"
	"tunnelgateway/internal/shared"
)

// graphAnswer is what a canned Graph answers to every PATCH: a status, its Retry-After (empty
// for none) and an error body, with or without the request-id header real Graph sends.
type graphAnswer struct {
	status          int
	retryAfter      string
	body            []byte
	noRequestHeader bool
}

const cannedRequestID = "11111111-1111-1111-1111-111111111111"

// startCannedGraph serves answer for Graph's PATCH on TLS and returns a client that trusts both
// it and the simulator, which still issues the gateway's tokens.
func startCannedGraph(t *testing.T, sim *graphsim.Simulator, answer graphAnswer) (string, *http.Client) {
	t.Helper()
	front := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPatch {
			http.Error(w, "only PATCH is canned", http.StatusMethodNotAllowed)
			return
		}
		if !answer.noRequestHeader {
			w.Header().Set("request-id", cannedRequestID)
		}
		if answer.retryAfter != "" {
			w.Header().Set("Retry-After", answer.retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(answer.status)
		_, _ = w.Write(answer.body)
	}))
	t.Cleanup(front.Close)

	pool := sim.CertPool()
	pool.AddCert(front.Certificate())
	transport := sim.Client().Transport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	t.Cleanup(transport.CloseIdleConnections)
	return front.URL + "/beta", &http.Client{Transport: transport}
}

// sharedGraphError reads one of the real error bodies in ../shared/cases/graph-errors.
func sharedGraphError(t *testing.T, name string) []byte {
	t.Helper()
	path, err := shared.File("cases/graph-errors/" + name)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return body
}

// TestGraphErrorAnswers sends a PATCH through both routes to a Graph that answers with each
// real error body of ../shared/cases/graph-errors (and two Graph-shaped ones the samples lack),
// and checks the caller's answer: the mapped status, Graph's code, a readable message (Intune's
// JSON-inside-message unwrapped), Graph's request id, and a truthful Retry-After.
func TestGraphErrorAnswers(t *testing.T) {
	t.Parallel()
	conflict := []byte(`{"error":{"code":"Conflict","message":"The server is being upgraded.",` +
		`"innerError":{"date":"2024-01-26T10:01:56","request-id":"` + cannedRequestID + `"}}}`)
	expired := []byte(`{"error":{"code":"InvalidAuthenticationToken",` +
		`"message":"Access token has expired or is not yet valid.",` +
		`"innerError":{"date":"2024-01-26T10:01:56","request-id":"` + cannedRequestID + `"}}}`)
	tests := []struct {
		name   string
		answer graphAnswer
		// status is the caller's status on both routes; code and message what /v1 reports of
		// Graph's answer.
		status     int
		code       string
		message    string
		retryAfter string
		// passThrough: the Graph route answers Graph's body byte for byte.
		passThrough bool
	}{
		{name: "400 zoneless date", answer: graphAnswer{status: 400,
			body: sharedGraphError(t, "error-400-graph-invalidrequest-datetimeoffset-zoneless.json")},
			status: 400, code: "invalidRequest", message: "Cannot convert the literal",
			passThrough: true},
		{name: "400 null display name", answer: graphAnswer{status: 400,
			body: sharedGraphError(t, "error-400-modelvalidationfailure-null-displayname.json")},
			status: 400, code: "ModelValidationFailure", message: "A null value was found",
			passThrough: true},
		{name: "404 intune json in message", answer: graphAnswer{status: 404,
			body: sharedGraphError(t, "error-404-intune-resourcenotfound-jsoninmessage.json")},
			status: 404, code: "ResourceNotFound", message: "An error has occurred - Operation ID",
			passThrough: true},
		{name: "409 conflict", answer: graphAnswer{status: 409, body: conflict},
			status: 409, code: "Conflict", message: "The server is being upgraded.",
			passThrough: true},
		{name: "429 with retry-after", answer: graphAnswer{status: 429, retryAfter: "7",
			body: sharedGraphError(t, "error-429-graph-toomanyrequests-plain.json")},
			status: 429, code: "TooManyRequests", message: "Too many requests.", retryAfter: "7",
			passThrough: true},
		{name: "429 intune without retry-after", answer: graphAnswer{status: 429,
			body: sharedGraphError(t,
				"error-429-intune-toomanyrequests-jsoninmessage-no-retry-after.json")},
			status: 429, code: "TooManyRequests", message: "An error has occurred - Operation ID",
			retryAfter: "20", passThrough: true},
		{name: "503 intune service timeout", answer: graphAnswer{status: 503,
			body: sharedGraphError(t, "error-503-intune-cancelledonservicetimeout.json")},
			status: 502, code: "CancelledOnServiceTimeout", message: "ScenarioTimeout=15000ms"},
		{name: "401 for the gateway's token", answer: graphAnswer{status: 401, body: expired},
			status: 502, code: "InvalidAuthenticationToken", message: "Access token has expired"},
		{name: "request id only in the body", answer: graphAnswer{status: 404,
			noRequestHeader: true,
			body:            sharedGraphError(t, "error-404-intune-resourcenotfound-jsoninmessage.json")},
			status: 404, code: "ResourceNotFound", message: "An error has occurred - Operation ID",
			passThrough: true},
	}
	for _, tt := range tests {
		for _, route := range []string{"v1", "graph"} {
			t.Run(tt.name+"/"+route, func(t *testing.T) {
				t.Parallel()
				// A stack of its own per route: a Graph 429 holds the write budget for its
				// Retry-After, which would stall the second route's request.
				sim, err := graphsim.Start(graphsim.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = sim.Close() })
				base, client := startCannedGraph(t, sim, tt.answer)
				s := startStackOn(t, sim, stackOptions{httpClient: client,
					configure: func(c *config.Config) {
						c.Graph.BaseURL = base
						c.Requests.MaxRetries = 0
					}})

				path := v1Server(site, server)
				if route == "graph" {
					path = graphServer(site, server)
				}
				got := s.do(t, request{method: http.MethodPatch, path: path,
					body: `{"displayName":"tunnel-eu-west-01"}`})
				if got.status != tt.status {
					t.Fatalf("status = %d, want %d; body %s", got.status, tt.status, got.body)
				}
				if ra := got.header.Get("Retry-After"); tt.retryAfter != "" && ra != tt.retryAfter {
					t.Errorf("Retry-After = %q, want %q", ra, tt.retryAfter)
				}
				if id := got.header.Get("Graph-Request-Id"); id != cannedRequestID {
					t.Errorf("Graph-Request-Id = %q, want %q", id, cannedRequestID)
				}
				if route == "v1" {
					checkUpstreamProblem(t, got, tt.code, tt.message)
					return
				}
				if tt.passThrough {
					if got.body != string(tt.answer.body) {
						t.Errorf("graph route body = %s, want Graph's own body %s", got.body,
							tt.answer.body)
					}
					return
				}
				checkGraphShapedError(t, got, tt.message)
			})
		}
	}
}

// checkUpstreamProblem checks a /v1 problem that reports Graph's answer.
func checkUpstreamProblem(t *testing.T, got response, code, message string) {
	t.Helper()
	if ct := got.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type = %q, want application/problem+json", ct)
	}
	var p struct {
		RequestID string `json:"request_id"`
		Upstream  struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"upstream"`
	}
	if err := json.Unmarshal([]byte(got.body), &p); err != nil {
		t.Fatalf("problem: %v; body %s", err, got.body)
	}
	if p.RequestID == "" || p.RequestID != got.header.Get("X-Request-Id") {
		t.Errorf("request_id = %q, want the X-Request-Id %q", p.RequestID,
			got.header.Get("X-Request-Id"))
	}
	if p.Upstream.Code != code || p.Upstream.RequestID != cannedRequestID {
		t.Errorf("upstream = %+v, want code %q and request id %q", p.Upstream, code,
			cannedRequestID)
	}
	msg := p.Upstream.Message
	if !strings.Contains(msg, message) || strings.HasPrefix(strings.TrimSpace(msg), "{") ||
		strings.Contains(msg, "_version") {
		t.Errorf("upstream message = %q, want a plain message containing %q", msg, message)
	}
}

// checkGraphShapedError checks an error the gateway wrote in Graph's shape for Graph's failure.
func checkGraphShapedError(t *testing.T, got response, message string) {
	t.Helper()
	var ge struct {
		Error struct {
			Code       string            `json:"code"`
			Message    string            `json:"message"`
			InnerError map[string]string `json:"innerError"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(got.body), &ge); err != nil {
		t.Fatalf("graph error: %v; body %s", err, got.body)
	}
	if ge.Error.Code == "" || !strings.Contains(ge.Error.Message, message) ||
		strings.Contains(ge.Error.Message, "_version") ||
		ge.Error.InnerError["request-id"] != cannedRequestID {
		t.Errorf("graph error = %+v, want a code, a plain message containing %q and request-id %s",
			ge.Error, message, cannedRequestID)
	}
}
