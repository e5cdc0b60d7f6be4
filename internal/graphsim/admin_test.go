package graphsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func adminCall(t *testing.T, sim *Simulator, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, sim.URL()+"/_simulator"+path, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	return do(t, sim, req)
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)

	// Faults: PUT then GET round-trips, and the faults take effect.
	resp, body := adminCall(t, sim, http.MethodPut, "/faults",
		`{"latency":"10ms","sequence":["503"],"methods":["GET"]}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT faults: got %d: %s", resp.StatusCode, body)
	}
	_, body = adminCall(t, sim, http.MethodGet, "/faults", "")
	var f Faults
	if err := json.Unmarshal(body, &f); err != nil || f.Latency != 10*time.Millisecond ||
		len(f.Sequence) != 1 {
		t.Errorf("GET faults: got %s (%v)", body, err)
	}
	if resp, _ := graphRequest(t, sim, http.MethodGet, serverPath(DefaultSiteID, ExampleServerID),
		tok, nil, nil); resp.StatusCode != 503 {
		t.Errorf("GET after PUT faults: got %d, want 503", resp.StatusCode)
	}

	// Limits: window as a duration string, zero fields take defaults (200 is Intune's tenant
	// write limit, written out so that a changed default cannot pass unnoticed).
	resp, body = adminCall(t, sim, http.MethodPut, "/limits", `{"appRequests":5,"window":"2s"}`)
	var l Limits
	if err := json.Unmarshal(body, &l); err != nil || resp.StatusCode != 200 ||
		l.AppRequests != 5 || l.Window != 2*time.Second || l.TenantWrites != 200 {
		t.Errorf("PUT limits: got %d %s (%v)", resp.StatusCode, body, err)
	}

	// Counters: read, then reset.
	_, body = adminCall(t, sim, http.MethodGet, "/counters", "")
	var c Counters
	if err := json.Unmarshal(body, &c); err != nil || c.TokenRequests != 1 ||
		c.Count(http.MethodGet, RouteServer, 503) != 1 {
		t.Errorf("GET counters: got %s (%v)", body, err)
	}
	if resp, _ := adminCall(t, sim, http.MethodDelete, "/counters", ""); resp.StatusCode != 204 {
		t.Errorf("DELETE counters: got %d, want 204", resp.StatusCode)
	}
	if got := sim.Counters(); got.TokenRequests != 0 || len(got.Requests) != 0 {
		t.Errorf("counters after reset: got %+v, want zero", got)
	}

	// Key rotation publishes two keys.
	resp, body = adminCall(t, sim, http.MethodPost, "/keys/rotate", "")
	var set struct{ Keys []jwk }
	if err := json.Unmarshal(body, &set); err != nil || resp.StatusCode != 200 || len(set.Keys) != 2 {
		t.Errorf("rotate: got %d %s (%v), want two keys", resp.StatusCode, body, err)
	}

	// Stored object, and bad input.
	if resp, _ := adminCall(t, sim, http.MethodGet, "/sites/"+DefaultSiteID+"/servers/"+
		ExampleServerID, ""); resp.StatusCode != 200 {
		t.Errorf("GET stored server: got %d, want 200", resp.StatusCode)
	}
	for _, bad := range []struct{ path, body string }{
		{"/faults", `{"errorRate":2}`},
		{"/faults", `{"latency":"soon"}`},
		{"/faults", `{"colour":"blue"}`},
		{"/limits", `{"window":"-1s"}`},
	} {
		if resp, body := adminCall(t, sim, http.MethodPut, bad.path, bad.body); resp.StatusCode != 400 {
			t.Errorf("PUT %s %s: got %d %s, want 400", bad.path, bad.body, resp.StatusCode, body)
		}
	}
	if got := sim.Counters(); len(got.Requests) != 0 {
		t.Errorf("admin requests were counted: %v", got.Requests)
	}
}

// TestResponseOptionsOverHTTP switches each answer form on and off again through the admin API
// and watches a Graph request change with it.
func TestResponseOptionsOverHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		on   string // the PUT body that switches the form on
		want ResponseOptions
		// switchedOn sends Graph requests and reports whether they show the form.
		switchedOn func(t *testing.T, sim *Simulator, tok string) bool
	}{
		{"patch no content", `{"patchNoContent":true}`, ResponseOptions{PatchNoContent: true},
			func(t *testing.T, sim *Simulator, tok string) bool {
				resp, body := graphRequest(t, sim, http.MethodPatch,
					serverPath(DefaultSiteID, ExampleServerID), tok, []byte(`{"displayName":"x"}`),
					nil)
				if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
					t.Fatalf("PATCH: got %d, want 200 or 204: %s", resp.StatusCode, body)
				}
				return resp.StatusCode == http.StatusNoContent && len(body) == 0
			}},
		{"intune errors", `{"intuneErrors":true}`, ResponseOptions{IntuneErrors: true},
			func(t *testing.T, sim *Simulator, tok string) bool {
				resp, body := graphRequest(t, sim, http.MethodGet,
					serverPath(DefaultSiteID, "00000000-0000-0000-0000-000000000009"), tok, nil, nil)
				if resp.StatusCode != http.StatusNotFound {
					t.Fatalf("GET unknown server: got %d, want 404", resp.StatusCode)
				}
				return json.Valid([]byte(graphErrorOf(t, body).Message))
			}},
		{"omit retry-after", `{"omitRetryAfter":true}`, ResponseOptions{OmitRetryAfter: true},
			func(t *testing.T, sim *Simulator, tok string) bool {
				// Setting limits empties the windows, so each call starts from a fresh budget.
				if err := sim.SetLimits(Limits{AppRequests: 1, Window: time.Minute}); err != nil {
					t.Fatal(err)
				}
				var resp *http.Response
				for range 2 {
					resp, _ = graphRequest(t, sim, http.MethodGet,
						serverPath(DefaultSiteID, ExampleServerID), tok, nil, nil)
				}
				if resp.StatusCode != http.StatusTooManyRequests {
					t.Fatalf("second GET: got %d, want 429", resp.StatusCode)
				}
				return resp.Header.Get("Retry-After") == ""
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, Options{})
			tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
			put := func(body string, want ResponseOptions) {
				t.Helper()
				resp, answer := adminCall(t, sim, http.MethodPut, "/options", body)
				var got ResponseOptions
				if err := json.Unmarshal(answer, &got); err != nil || resp.StatusCode != 200 ||
					got != want {
					t.Fatalf("PUT options %s: got %d %s (%v), want 200 and %+v", body,
						resp.StatusCode, answer, err, want)
				}
			}

			if tt.switchedOn(t, sim, tok) {
				t.Fatal("before the switch: got the switched form, want the default one")
			}
			put(tt.on, tt.want)
			_, body := adminCall(t, sim, http.MethodGet, "/options", "")
			var got ResponseOptions
			if err := json.Unmarshal(body, &got); err != nil || got != tt.want {
				t.Errorf("GET options: got %s (%v), want %+v", body, err, tt.want)
			}
			if !tt.switchedOn(t, sim, tok) {
				t.Error("after switching on: got the default form, want the switched one")
			}
			put(`{}`, ResponseOptions{})
			if tt.switchedOn(t, sim, tok) {
				t.Error("after switching off: got the switched form, want the default one")
			}
		})
	}
}

func TestResponseOptionsStartValuesAndBadInput(t *testing.T) {
	t.Parallel()
	started := ResponseOptions{PatchNoContent: true, IntuneErrors: true, OmitRetryAfter: true}
	sim := startSim(t, Options{PatchNoContent: true, IntuneErrors: true, OmitRetryAfter: true})
	tests := []struct {
		name       string
		body       string
		wantStatus int
	}{
		{"unknown switch", `{"intuneErrors":false,"colour":"blue"}`, http.StatusBadRequest},
		{"not a boolean", `{"intuneErrors":"no"}`, http.StatusBadRequest},
		{"not an object", `[]`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: each case checks that the shared simulator kept its options.
			resp, body := adminCall(t, sim, http.MethodPut, "/options", tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("PUT %s: got %d %s, want %d", tt.body, resp.StatusCode, body,
					tt.wantStatus)
			}
			_, body = adminCall(t, sim, http.MethodGet, "/options", "")
			var got ResponseOptions
			if err := json.Unmarshal(body, &got); err != nil || got != started {
				t.Errorf("GET options after a rejected PUT: got %s (%v), want the starting %+v",
					body, err, started)
			}
		})
	}
}
