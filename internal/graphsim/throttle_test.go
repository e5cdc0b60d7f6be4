package graphsim

import (
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
