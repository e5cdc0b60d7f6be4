package graphclient_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/graphsim"
)

// TestRetriesByOutcome scripts what the simulator answers and checks which outcomes are tried
// again: throttling, 503, 504 and a reset connection are; 500 and the caller's own 400 are not.
func TestRetriesByOutcome(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		sequence []string
		body     []byte
		// want is the final status (0: a transport error), attempts the tries made.
		want     int
		attempts int
	}{
		{name: "503 then success", sequence: []string{"503", "ok"}, want: 200, attempts: 2},
		{name: "504 twice then success", sequence: []string{"504", "504", "ok"}, want: 200,
			attempts: 3},
		{name: "connection reset then success", sequence: []string{"reset", "ok"}, want: 200,
			attempts: 2},
		{name: "500 is not retried", sequence: []string{"500", "ok"}, want: 500, attempts: 1},
		{name: "502 is not retried", sequence: []string{"502", "ok"}, want: 502, attempts: 1},
		{name: "400 is not retried", body: []byte(`{"tunnelServerHealthStatus":"sunny"}`),
			want: 400, attempts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, graphsim.Options{})
			setFaults(t, sim, graphsim.Faults{Sequence: tt.sequence, Methods: []string{"PATCH"}})
			c := newClient(t, sim, clientSetup{})
			body := tt.body
			if body == nil {
				body = patchBody("retried")
			}

			resp, err := c.PatchServer(testContext(t, 20*time.Second), siteID, serverID, body,
				"11111111-2222-4333-8444-555555555555")
			got, attempts := outcome(t, resp, err)
			if got != tt.want {
				t.Fatalf("status: got %d, want %d (err %v)", got, tt.want, err)
			}
			if attempts != tt.attempts {
				t.Errorf("attempts: got %d, want %d", attempts, tt.attempts)
			}
			received := int64(0)
			for key, n := range sim.Counters().Requests {
				if strings.HasPrefix(key, http.MethodPatch+" ") {
					received += n
				}
			}
			if want := int64(tt.attempts); received != want {
				t.Errorf("PATCHes the simulator received: got %d, want %d", received, want)
			}
		})
	}
}

// outcome is the status and attempts of a call's result, failing on any other error.
func outcome(t *testing.T, resp *graphclient.Response, err error) (status, attempts int) {
	t.Helper()
	var ge *graphclient.GraphError
	switch {
	case err == nil:
		return resp.Status, resp.Attempts
	case errors.As(err, &ge):
		return ge.Status, ge.Attempts
	}
	t.Fatalf("unexpected error: %v", err)
	return 0, 0
}

// TestRetryAttemptHeaders checks, at a server in front of the simulator, that every attempt
// carries the same client-request-id and that retries are numbered 1, 2, … in Retry-Attempt.
func TestRetryAttemptHeaders(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	setFaults(t, sim, graphsim.Faults{Sequence: []string{"503", "504", "ok"}})
	f := startFront(t, sim, nil)
	c := newClient(t, sim, clientSetup{baseURL: f.graphBase(), httpClient: f.server.Client()})

	const requestID = "0f0e0d0c-0b0a-4908-8706-050403020100"
	resp, err := c.PatchServer(testContext(t, 20*time.Second), siteID, serverID,
		patchBody("numbered"), requestID)
	if err != nil {
		t.Fatalf("PatchServer: %v", err)
	}
	if got, want := resp.Attempts, 3; got != want {
		t.Fatalf("attempts: got %d, want %d", got, want)
	}

	seen := f.requests()
	if got, want := len(seen), 3; got != want {
		t.Fatalf("requests at the front: got %d, want %d", got, want)
	}
	for i, r := range seen {
		if got := r.header.Get("client-request-id"); got != requestID {
			t.Errorf("attempt %d client-request-id: got %q, want %q", i+1, got, requestID)
		}
		want := ""
		if i > 0 {
			want = strconv.Itoa(i)
		}
		if got := r.header.Get("Retry-Attempt"); got != want {
			t.Errorf("attempt %d Retry-Attempt: got %q, want %q", i+1, got, want)
		}
		if r.header.Get("Authorization") == "" {
			t.Errorf("attempt %d carries no Authorization header", i+1)
		}
	}
}

// TestRetryAfterHonoured throttles the second write and checks that the client waits for
// Graph's Retry-After, given as seconds or as an HTTP date, before trying again.
func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// asDate rewrites the simulator's Retry-After seconds into an HTTP date.
		asDate bool
	}{
		{name: "seconds"},
		{name: "HTTP date", asDate: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, graphsim.Options{
				Limits: graphsim.Limits{AppWrites: 1, TenantWrites: 1, Window: time.Second}})
			var modify func(*http.Response) error
			if tt.asDate {
				modify = retryAfterAsDate
			}
			f := startFront(t, sim, modify)
			c := newClient(t, sim, clientSetup{baseURL: f.graphBase(), httpClient: f.server.Client()})
			ctx := testContext(t, 20*time.Second)

			if _, err := c.PatchServer(ctx, siteID, serverID, patchBody("first"), newID()); err != nil {
				t.Fatalf("first PatchServer: %v", err)
			}
			start := time.Now()
			resp, err := c.PatchServer(ctx, siteID, serverID, patchBody("second"), newID())
			if err != nil {
				t.Fatalf("second PatchServer: %v", err)
			}
			if resp.Attempts < 2 {
				t.Errorf("attempts: got %d, want at least 2 (the first was throttled)", resp.Attempts)
			}
			// The simulator's window frees 1s after the first write; an earlier retry is a 429.
			if got := sim.Counters().Throttled; got != int64(resp.Attempts-1) {
				t.Errorf("429s sent: got %d, want %d", got, resp.Attempts-1)
			}
			if elapsed := time.Since(start); elapsed < 500*time.Millisecond {
				t.Errorf("retried after %s; want a wait for Retry-After", elapsed)
			}
		})
	}
}

// retryAfterAsDate replaces a Retry-After in seconds by the HTTP date it stands for, rounded up
// to the next whole second as the header's format demands.
func retryAfterAsDate(resp *http.Response) error {
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil {
		return nil
	}
	at := time.Now().Add(time.Duration(secs)*time.Second + time.Second).Truncate(time.Second)
	resp.Header.Set("Retry-After", at.UTC().Format(http.TimeFormat))
	return nil
}

// TestNoRetryPastDeadline checks that a 429 whose Retry-After lies past the caller's deadline
// is answered at once, with Graph's Retry-After kept for the caller.
func TestNoRetryPastDeadline(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{
		Limits: graphsim.Limits{AppWrites: 1, TenantWrites: 1, Window: 30 * time.Second}})
	c := newClient(t, sim, clientSetup{})

	if _, err := c.PatchServer(testContext(t, 10*time.Second), siteID, serverID,
		patchBody("first"), newID()); err != nil {
		t.Fatalf("first PatchServer: %v", err)
	}
	start := time.Now()
	_, err := c.PatchServer(testContext(t, 5*time.Second), siteID, serverID, patchBody("second"),
		newID())
	elapsed := time.Since(start)

	var ge *graphclient.GraphError
	if !errors.As(err, &ge) || ge.Status != http.StatusTooManyRequests {
		t.Fatalf("error: got %v, want a Graph 429", err)
	}
	if ge.Attempts != 1 {
		t.Errorf("attempts: got %d, want 1", ge.Attempts)
	}
	if ge.RetryAfter < 20*time.Second {
		t.Errorf("RetryAfter: got %s, want Graph's (about 30s)", ge.RetryAfter)
	}
	if elapsed > 4*time.Second {
		t.Errorf("answered after %s; want at once, well before the 5s deadline", elapsed)
	}
}

// TestMaxAttempts checks that a failure that persists is tried MaxRetries+1 times, no more.
func TestMaxAttempts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		maxRetries int
		want       int
	}{
		{name: "two retries", maxRetries: 2, want: 3},
		{name: "no retries", maxRetries: -1, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, graphsim.Options{})
			setFaults(t, sim, graphsim.Faults{ErrorRate: 1, ErrorStatus: 503})
			c := newClient(t, sim, clientSetup{configure: func(o *graphclient.Options) {
				o.MaxRetries = tt.maxRetries
			}})

			_, err := c.PatchServer(testContext(t, 20*time.Second), siteID, serverID,
				patchBody("never"), newID())
			var ge *graphclient.GraphError
			if !errors.As(err, &ge) || ge.Status != http.StatusServiceUnavailable {
				t.Fatalf("error: got %v, want a Graph 503", err)
			}
			if ge.Attempts != tt.want {
				t.Errorf("attempts: got %d, want %d", ge.Attempts, tt.want)
			}
			if got := countPatches(sim, 503); got != int64(tt.want) {
				t.Errorf("PATCHes the simulator answered 503: got %d, want %d", got, tt.want)
			}
		})
	}
}

// TestBackoffWithoutRetryAfter checks that without Retry-After the client backs off
// exponentially from RetryDelay: azcore waits (2^n - 1) × RetryDelay × [0.8, 1.3) before the
// n-th retry, so two retries take at least 0.8 × (1 + 3) × RetryDelay.
func TestBackoffWithoutRetryAfter(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	const delay = 200 * time.Millisecond
	c := newClient(t, sim, clientSetup{configure: func(o *graphclient.Options) {
		o.RetryDelay = delay
	}})
	// A first read gets the token, so that only the retries are timed.
	if _, err := c.GetServer(testContext(t, 10*time.Second), siteID, serverID, newID()); err != nil {
		t.Fatalf("GetServer: %v", err)
	}
	setFaults(t, sim, graphsim.Faults{Sequence: []string{"503", "503", "ok"}})

	start := time.Now()
	resp, err := c.PatchServer(testContext(t, 20*time.Second), siteID, serverID,
		patchBody("backed off"), newID())
	if err != nil {
		t.Fatalf("PatchServer: %v", err)
	}
	if got, want := resp.Attempts, 3; got != want {
		t.Errorf("attempts: got %d, want %d", got, want)
	}
	if elapsed, least := time.Since(start), 4*delay*8/10; elapsed < least {
		t.Errorf("took %s; want at least %s of backoff", elapsed, least)
	}
}

// TestThrottledWithoutRetryAfter is Intune's 429 without Retry-After: the client backs off on
// its own, and when the throttling outlasts the retries the caller learns Graph gave no time.
func TestThrottledWithoutRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		maxRetries int
		wantErr    bool
	}{
		{name: "backoff outlasts the window", maxRetries: 4},
		{name: "no retries left", maxRetries: -1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, graphsim.Options{OmitRetryAfter: true,
				Limits: graphsim.Limits{AppWrites: 1, TenantWrites: 1, Window: time.Second}})
			c := newClient(t, sim, clientSetup{configure: func(o *graphclient.Options) {
				o.MaxRetries = tt.maxRetries
				o.RetryDelay = 300 * time.Millisecond
			}})
			ctx := testContext(t, 20*time.Second)
			if _, err := c.PatchServer(ctx, siteID, serverID, patchBody("first"), newID()); err != nil {
				t.Fatalf("first PatchServer: %v", err)
			}

			resp, err := c.PatchServer(ctx, siteID, serverID, patchBody("second"), newID())
			if tt.wantErr {
				var ge *graphclient.GraphError
				if !errors.As(err, &ge) || ge.Status != http.StatusTooManyRequests {
					t.Fatalf("error: got %v, want a Graph 429", err)
				}
				if ge.RetryAfter != 0 {
					t.Errorf("RetryAfter: got %s, want 0 (Graph sent none)", ge.RetryAfter)
				}
				return
			}
			if err != nil {
				t.Fatalf("second PatchServer: %v", err)
			}
			if resp.Attempts < 2 {
				t.Errorf("attempts: got %d, want at least 2", resp.Attempts)
			}
			if sim.Counters().Throttled < 1 {
				t.Error("the simulator sent no 429; the test did not exercise throttling")
			}
		})
	}
}

// TestBodyFraming checks how each attempt's body reaches Graph: with its length and never
// chunked, a retry included, and an empty body as no body at all.
func TestBodyFraming(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   []byte
		faults []string
	}{
		{name: "body", body: patchBody("framed")},
		{name: "body on a retry", body: patchBody("framed again"), faults: []string{"503", "ok"}},
		{name: "empty body", body: []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, graphsim.Options{})
			if tt.faults != nil {
				setFaults(t, sim, graphsim.Faults{Sequence: tt.faults})
			}
			f := startFront(t, sim, nil)
			c := newClient(t, sim, clientSetup{baseURL: f.graphBase(),
				httpClient: f.server.Client()})
			// An empty body is refused by Graph; only what reached it matters here.
			_, _ = c.PatchServer(testContext(t, 20*time.Second), siteID, serverID, tt.body,
				newID())

			seen := f.requests()
			if got, want := len(seen), len(tt.faults); want > 0 && got != want {
				t.Fatalf("attempts at the front: got %d, want %d", got, want)
			}
			if len(seen) == 0 {
				t.Fatal("no attempt reached the front")
			}
			for i, r := range seen {
				if got, want := r.contentLength, int64(len(tt.body)); got != want {
					t.Errorf("attempt %d Content-Length: got %d, want %d", i+1, got, want)
				}
				if r.transferEncoding != nil {
					t.Errorf("attempt %d Transfer-Encoding: got %q, want none", i+1,
						r.transferEncoding)
				}
			}
		})
	}
}
