package graphsim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFaultSequence(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{Faults: Faults{
		Sequence: []string{"503", "ok", "500", "502", "504", "applied-500"},
		Methods:  []string{"PATCH"},
	}})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	var got []int
	for i := range 7 {
		resp, body := graphRequest(t, sim, http.MethodPatch, serverPath(DefaultSiteID, ExampleServerID),
			tok, []byte(`{"displayName":"attempt `+itoa(i)+`"}`), nil)
		got = append(got, resp.StatusCode)
		if resp.StatusCode >= 500 {
			graphErrorOf(t, body)
		}
		// GETs are outside Methods: they neither fail nor consume the sequence.
		if resp, _ := graphRequest(t, sim, http.MethodGet, serverPath(DefaultSiteID, ExampleServerID),
			tok, nil, nil); resp.StatusCode != 200 {
			t.Errorf("GET between PATCHes: got %d, want 200", resp.StatusCode)
		}
	}
	want := []int{503, 200, 500, 502, 504, 500, 200}
	if !equalInts(got, want) {
		t.Errorf("statuses: got %v, want %v", got, want)
	}
	// attempt 5 was applied although it answered 500; attempt 6 then overwrote it.
	c := sim.Counters()
	if c.PatchesApplied != 3 || c.FaultsInjected != 5 {
		t.Errorf("counters: got applied=%d faults=%d, want 3 and 5", c.PatchesApplied, c.FaultsInjected)
	}
}

func TestAppliedButFailed(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{Faults: Faults{AppliedErrorRate: 1}})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	resp, body := graphRequest(t, sim, http.MethodPatch, serverPath(DefaultSiteID, ExampleServerID),
		tok, []byte(`{"displayName":"applied anyway"}`), nil)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status: got %d, want 500: %s", resp.StatusCode, body)
	}
	if got, _ := sim.Server(DefaultSiteID, ExampleServerID); got["displayName"] != "applied anyway" {
		t.Errorf("stored displayName: got %v, want the applied value", got["displayName"])
	}
}

func TestFaultRates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		faults     Faults
		wantStatus int
	}{
		{"error rate default status", Faults{ErrorRate: 1}, 503},
		{"error rate chosen status", Faults{ErrorRate: 1, ErrorStatus: 502}, 502},
		{"zero rates", Faults{}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, Options{Faults: tt.faults})
			tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
			for range 5 {
				resp, _ := graphRequest(t, sim, http.MethodGet,
					serverPath(DefaultSiteID, ExampleServerID), tok, nil, nil)
				if resp.StatusCode != tt.wantStatus {
					t.Fatalf("status: got %d, want %d", resp.StatusCode, tt.wantStatus)
				}
			}
		})
	}
}

func TestConnectionReset(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{Faults: Faults{Sequence: []string{"reset"}}})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	// PATCH, because Go's transport retries an idempotent request on a reused connection.
	req, _ := http.NewRequest(http.MethodPatch, sim.GraphBaseURL()+serverPath(DefaultSiteID,
		ExampleServerID), strings.NewReader(`{"displayName":"never answered"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := sim.Client().Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want a connection error", resp.StatusCode)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Logf("error is not ECONNRESET (acceptable, platform dependent): %v", err)
	}
	// The handler counts the request after it has closed the connection, so the client may
	// see the reset first: wait a bounded moment for the count.
	var got int64
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		if got = sim.Counters().Count(http.MethodPatch, RouteServer, 0); got == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got != 1 {
		t.Errorf("reset requests counted with status 0: got %d, want 1", got)
	}
}

func TestStallAndLatency(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{Faults: Faults{Sequence: []string{"stall"}, StallFor: time.Minute}})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	get := func(timeout time.Duration) (int, time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
			sim.GraphBaseURL()+serverPath(DefaultSiteID, ExampleServerID), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		start := time.Now()
		resp, err := sim.Client().Do(req)
		if err != nil {
			return 0, time.Since(start), err
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(start), nil
	}
	if _, elapsed, err := get(300 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled request: got err %v after %s, want the client's deadline", err, elapsed)
	}

	if err := sim.SetFaults(Faults{Latency: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	status, elapsed, err := get(5 * time.Second)
	if err != nil || status != 200 || elapsed < 200*time.Millisecond {
		t.Errorf("with latency: got %d after %s (%v), want 200 after at least 200ms",
			status, elapsed, err)
	}
}

func TestStallEndsWithGatewayTimeout(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{Faults: Faults{StallRate: 1, StallFor: 100 * time.Millisecond}})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	resp, body := graphRequest(t, sim, http.MethodGet, serverPath(DefaultSiteID, ExampleServerID),
		tok, nil, nil)
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status: got %d, want 504: %s", resp.StatusCode, body)
	}
}

func TestFaultsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults Faults
	}{
		{"rate above one", Faults{ErrorRate: 1.5}},
		{"negative rate", Faults{ResetRate: -0.1}},
		{"bad status", Faults{ErrorStatus: 418}},
		{"bad sequence entry", Faults{Sequence: []string{"ok", "teapot"}}},
		{"code after a kind that is not a status", Faults{Sequence: []string{"reset:Closed"}}},
		{"code after an unsupported status", Faults{Sequence: []string{"418:Teapot"}}},
		{"empty code", Faults{Sequence: []string{"503:"}}},
		{"code with a space", Faults{Sequence: []string{"503:Cancelled On"}}},
		{"error code with punctuation", Faults{ErrorRate: 1, ErrorCode: "Cancelled!"}},
		{"negative latency", Faults{Latency: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.faults.validate(); err == nil {
				t.Errorf("validate(%+v): got nil, want an error", tt.faults)
			}
			if _, err := Start(Options{Faults: tt.faults}); err == nil {
				t.Errorf("Start with %+v: got nil error", tt.faults)
			}
		})
	}
}

// TestFaultErrorCodes sets faults through the admin API, as a script or a demo user would,
// and checks the code and the message form of the injected error.
func TestFaultErrorCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		faults        string // PUT /_simulator/faults body
		intune        bool
		wantStatus    int
		wantCode      string
		wantInMessage string
		wantPhrase    string // CustomApiErrorPhrase of the Intune form
	}{
		{"scripted status keeps its usual code", `{"sequence":["503"]}`, false, 503,
			"ServiceUnavailable", "temporarily unavailable", ""},
		{"scripted code, plain message", `{"sequence":["503:CancelledOnServiceTimeout"]}`,
			false, 503, "CancelledOnServiceTimeout", "CancelOnTimeout", ""},
		{"scripted code, Intune form", `{"sequence":["503:CancelledOnServiceTimeout"]}`,
			true, 503, "CancelledOnServiceTimeout", "CancelOnTimeout",
			"CancelOnTimeout4EndExecuteAction"},
		{"code at a rate", `{"errorRate":1,"errorCode":"CancelledOnServiceTimeout"}`, true, 503,
			"CancelledOnServiceTimeout", "ScenarioTimeout=", "CancelOnTimeout4EndExecuteAction"},
		{"unknown code keeps the status's message", `{"errorRate":1,"errorStatus":500,` +
			`"errorCode":"UnknownError"}`, true, 500, "UnknownError", "internal server error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, Options{IntuneErrors: tt.intune})
			tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
			resp, body := adminCall(t, sim, http.MethodPut, "/faults", tt.faults)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("PUT faults: got %d %s, want 200", resp.StatusCode, body)
			}

			resp, body = graphRequest(t, sim, http.MethodGet,
				serverPath(DefaultSiteID, ExampleServerID), tok, nil, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			e := graphErrorOf(t, body)
			if e.Code != tt.wantCode {
				t.Errorf("code: got %q, want %q", e.Code, tt.wantCode)
			}
			message := e.Message
			var doc intuneMessage
			if err := json.Unmarshal([]byte(e.Message), &doc); (err == nil) != tt.intune {
				t.Fatalf("message: got %q, want the Intune JSON form: %v", e.Message, tt.intune)
			}
			if tt.intune {
				message = doc.Message
				if doc.CustomAPIErrorPhrase != tt.wantPhrase {
					t.Errorf("CustomApiErrorPhrase: got %q, want %q", doc.CustomAPIErrorPhrase,
						tt.wantPhrase)
				}
				if (doc.ErrorSourceService != "") != (tt.wantPhrase != "") {
					t.Errorf("ErrorSourceService: got %q, want one only with a phrase",
						doc.ErrorSourceService)
				}
			}
			if !strings.Contains(message, tt.wantInMessage) {
				t.Errorf("message: got %q, want it to mention %q", message, tt.wantInMessage)
			}
		})
	}
}

func TestFaultErrorCodeRoundTrip(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	const body = `{"sequence":["503:CancelledOnServiceTimeout","ok"],"errorRate":0.5,` +
		`"errorCode":"CancelledOnServiceTimeout"}`
	if resp, answer := adminCall(t, sim, http.MethodPut, "/faults", body); resp.StatusCode != 200 {
		t.Fatalf("PUT faults: got %d %s, want 200", resp.StatusCode, answer)
	}
	_, answer := adminCall(t, sim, http.MethodGet, "/faults", "")
	if got := string(answer); got != body {
		t.Errorf("GET faults: got %s, want %s", got, body)
	}
}
