package graphsim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestThrottlerWindows(t *testing.T) {
	t.Parallel()
	start := time.Unix(1_700_000_000, 0)
	limits := Limits{AppWrites: 2, AppRequests: 3, TenantWrites: 3, TenantRequests: 100,
		Window: 10 * time.Second}
	type call struct {
		app      string
		write    bool
		at       time.Duration
		wantOK   bool
		wantWait time.Duration
	}
	tests := []struct {
		name  string
		calls []call
	}{
		{"app writes", []call{
			{"a", true, 0, true, 0},
			{"a", true, time.Second, true, 0},
			{"a", true, 2 * time.Second, false, 8 * time.Second},
			{"a", true, 10 * time.Second, true, 0}, // first write left the window
		}},
		{"app requests count writes too", []call{
			{"a", true, 0, true, 0},
			{"a", false, 0, true, 0},
			{"a", false, 4 * time.Second, true, 0},
			{"a", false, 5 * time.Second, false, 5 * time.Second},
			{"b", false, 5 * time.Second, true, 0},
		}},
		{"tenant writes across apps", []call{
			{"a", true, 0, true, 0},
			{"b", true, 0, true, 0},
			{"c", true, 3 * time.Second, true, 0},
			{"d", true, 4 * time.Second, false, 6 * time.Second},
			{"d", false, 4 * time.Second, true, 0}, // reads are still admitted
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			th := newThrottler(limits.withDefaults())
			for i, c := range tt.calls {
				wait, ok := th.admit("tenant", c.app, c.write, start.Add(c.at))
				if ok != c.wantOK || wait != c.wantWait {
					t.Errorf("call %d: got ok=%v wait=%s, want ok=%v wait=%s", i, ok, wait,
						c.wantOK, c.wantWait)
				}
			}
		})
	}
	disabled := newThrottler(Limits{Disabled: true}.withDefaults())
	for i := range 5000 {
		if _, ok := disabled.admit("tenant", "a", true, start); !ok {
			t.Fatalf("disabled throttler refused call %d", i)
		}
	}
}

func TestThrottlingOverHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		omitRetryAfter bool
		intune         bool
	}{
		{"with retry-after", false, false},
		{"without retry-after, intune form", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, Options{Limits: Limits{AppWrites: 2, Window: 30 * time.Second},
				OmitRetryAfter: tt.omitRetryAfter, IntuneErrors: tt.intune})
			tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
			patch := func() (*http.Response, []byte) {
				return graphRequest(t, sim, http.MethodPatch,
					serverPath(DefaultSiteID, ExampleServerID), tok, []byte(`{"displayName":"t"}`), nil)
			}
			for i := range 2 {
				if resp, body := patch(); resp.StatusCode != http.StatusOK {
					t.Fatalf("write %d: got %d, want 200: %s", i, resp.StatusCode, body)
				}
			}
			resp, body := patch()
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("third write: got %d, want 429", resp.StatusCode)
			}
			if e := graphErrorOf(t, body); e.Code != "TooManyRequests" {
				t.Errorf("code: got %q, want TooManyRequests", e.Code)
			}
			retry := resp.Header.Get("Retry-After")
			if tt.omitRetryAfter {
				if retry != "" {
					t.Errorf("Retry-After: got %q, want none", retry)
				}
			} else if n, err := strconv.Atoi(retry); err != nil || n < 29 || n > 30 {
				t.Errorf("Retry-After: got %q, want whole seconds near 30", retry)
			}
			// Reads have their own, larger budget.
			if resp, _ := graphRequest(t, sim, http.MethodGet,
				serverPath(DefaultSiteID, ExampleServerID), tok, nil, nil); resp.StatusCode != 200 {
				t.Errorf("read after write throttling: got %d, want 200", resp.StatusCode)
			}
			c := sim.Counters()
			if c.Throttled != 1 || c.PatchesApplied != 2 {
				t.Errorf("counters: got throttled=%d applied=%d, want 1 and 2", c.Throttled,
					c.PatchesApplied)
			}
			if got := c.Count(http.MethodPatch, RouteServer, 429); got != 1 {
				t.Errorf("PATCH 429 count: got %d, want 1", got)
			}
		})
	}
}

func TestSetLimitsAppliesAtOnce(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	if err := sim.SetLimits(Limits{AppRequests: 1, Window: time.Minute}); err != nil {
		t.Fatal(err)
	}
	codes := []int{}
	for range 2 {
		resp, _ := graphRequest(t, sim, http.MethodGet, serverPath(DefaultSiteID, ExampleServerID),
			tok, nil, nil)
		codes = append(codes, resp.StatusCode)
	}
	if codes[0] != 200 || codes[1] != 429 {
		t.Errorf("statuses: got %v, want [200 429]", codes)
	}
	if err := sim.SetLimits(Limits{Window: -time.Second}); err == nil {
		t.Error("SetLimits with a negative window: got nil error")
	}
}

// TestDefaultLimits pins the defaults to Intune's published Microsoft Tunnel limits. The
// numbers are written out rather than taken from the Default constants, so that changing a
// constant makes this test fail.
func TestDefaultLimits(t *testing.T) {
	t.Parallel()
	want := Limits{AppWrites: 100, AppRequests: 1000, TenantWrites: 200, TenantRequests: 2000,
		Window: 20 * time.Second}
	tests := []struct {
		name string
		got  func(t *testing.T) Limits
	}{
		{"zero Limits", func(*testing.T) Limits { return Limits{}.withDefaults() }},
		{"simulator started without limits", func(t *testing.T) Limits {
			return startSim(t, Options{}).throttle.get()
		}},
		{"admin API of a simulator started without limits", func(t *testing.T) Limits {
			resp, body := adminCall(t, startSim(t, Options{}), http.MethodGet, "/limits", "")
			var l Limits
			if err := json.Unmarshal(body, &l); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET limits: got %d %s (%v)", resp.StatusCode, body, err)
			}
			return l
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.got(t); got != want {
				t.Errorf("limits: got %+v, want %+v", got, want)
			}
		})
	}
}

// TestDefaultAppWriteLimitOverHTTP sends one app's writes until the default limit of 100 per
// 20 s is spent. Loopback PATCHes take milliseconds, so all 101 fall within one window.
func TestDefaultAppWriteLimitOverHTTP(t *testing.T) {
	t.Parallel()
	sim := startSim(t, Options{})
	tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
	patch := func(i int) (*http.Response, []byte) {
		return graphRequest(t, sim, http.MethodPatch, serverPath(DefaultSiteID, ExampleServerID),
			tok, []byte(`{"displayName":"write `+strconv.Itoa(i)+`"}`), nil)
	}
	start := time.Now()
	for i := range 100 {
		if resp, body := patch(i); resp.StatusCode != http.StatusOK {
			t.Fatalf("write %d of 100: got %d, want 200: %s", i+1, resp.StatusCode, body)
		}
	}
	if elapsed := time.Since(start); elapsed > 15*time.Second {
		t.Fatalf("100 writes took %s: too slow to stay in one 20s window", elapsed)
	}

	resp, body := patch(100)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("write 101: got %d, want 429: %s", resp.StatusCode, body)
	}
	if e := graphErrorOf(t, body); e.Code != "TooManyRequests" {
		t.Errorf("code: got %q, want TooManyRequests", e.Code)
	}
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 || n > 20 {
		t.Errorf("Retry-After: got %q, want whole seconds within the 20s window",
			resp.Header.Get("Retry-After"))
	}
}

// TestTenantWriteLimitOverHTTP checks that writes of different apps share the tenant's budget.
func TestTenantWriteLimitOverHTTP(t *testing.T) {
	t.Parallel()
	writers := []App{
		{ClientID: "a1000000-0000-4000-8000-000000000001", Secret: "writer-one-secret",
			GraphRoles: []string{RoleReadWriteAll}},
		{ClientID: "a2000000-0000-4000-8000-000000000002", Secret: "writer-two-secret",
			GraphRoles: []string{RoleReadWriteAll}},
	}
	const gateway, one, two = 0, 1, 2 // indexes into the apps below
	type call struct {
		app        int
		write      bool
		wantStatus int
	}
	tests := []struct {
		name  string
		calls []call
	}{
		{"a third app's write", []call{
			{one, true, 200}, {two, true, 200}, {gateway, true, 429},
		}},
		{"a further write of an app under its own limit", []call{
			{one, true, 200}, {two, true, 200}, {one, true, 429},
		}},
		{"reads are not writes", []call{
			{one, true, 200}, {two, true, 200}, {gateway, false, 200}, {one, false, 200},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, Options{Apps: append(DefaultApps(), writers...),
				Limits: Limits{AppWrites: 10, TenantWrites: 2, Window: time.Minute}})
			apps := []App{{ClientID: DefaultClientID, Secret: DefaultClientSecret}, writers[0],
				writers[1]}
			tokens := make([]string, len(apps))
			for i, app := range apps {
				tokens[i] = graphToken(t, sim, app.ClientID, app.Secret)
			}
			for i, c := range tt.calls {
				method, body := http.MethodGet, []byte(nil)
				if c.write {
					method, body = http.MethodPatch, []byte(`{"displayName":"call `+itoa(i)+`"}`)
				}
				resp, answer := graphRequest(t, sim, method,
					serverPath(DefaultSiteID, ExampleServerID), tokens[c.app], body, nil)
				if resp.StatusCode != c.wantStatus {
					t.Fatalf("call %d (%s by app %d): got %d, want %d: %s", i, method, c.app,
						resp.StatusCode, c.wantStatus, answer)
				}
				if c.wantStatus == http.StatusTooManyRequests &&
					resp.Header.Get("Retry-After") == "" {
					t.Errorf("call %d: 429 without Retry-After", i)
				}
			}
		})
	}
}
