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
