package graphsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Limits are the throttling limits. The defaults are Intune's documented limits for Microsoft
// Tunnel: per app per tenant 100 writes and 1000 requests, per tenant 200 writes and 2000
// requests, each per 20 seconds. A zero field takes its default; a negative one means no limit.
type Limits struct {
	AppWrites      int           `json:"appWrites"`
	AppRequests    int           `json:"appRequests"`
	TenantWrites   int           `json:"tenantWrites"`
	TenantRequests int           `json:"tenantRequests"`
	Window         time.Duration `json:"-"`
	// Disabled turns throttling off entirely.
	Disabled bool `json:"disabled"`
}

// Default limits (Microsoft Tunnel).
const (
	DefaultAppWrites      = 100
	DefaultAppRequests    = 1000
	DefaultTenantWrites   = 200
	DefaultTenantRequests = 2000
	DefaultWindow         = 20 * time.Second
)

func (l Limits) withDefaults() Limits {
	orDefault := func(v, d int) int {
		if v == 0 {
			return d
		}
		return v
	}
	l.AppWrites = orDefault(l.AppWrites, DefaultAppWrites)
	l.AppRequests = orDefault(l.AppRequests, DefaultAppRequests)
	l.TenantWrites = orDefault(l.TenantWrites, DefaultTenantWrites)
	l.TenantRequests = orDefault(l.TenantRequests, DefaultTenantRequests)
	if l.Window == 0 {
		l.Window = DefaultWindow
	}
	return l
}

func (l Limits) validate() error {
	if l.Window < 0 {
		return fmt.Errorf("limits window %s: must be positive", l.Window)
	}
	return nil
}

// limitsJSON is Limits on the admin API, with the window as a Go duration string.
type limitsJSON struct {
	AppWrites      int    `json:"appWrites"`
	AppRequests    int    `json:"appRequests"`
	TenantWrites   int    `json:"tenantWrites"`
	TenantRequests int    `json:"tenantRequests"`
	Window         string `json:"window"`
	Disabled       bool   `json:"disabled"`
}

// MarshalJSON writes the window as a duration string such as "20s".
func (l Limits) MarshalJSON() ([]byte, error) {
	return json.Marshal(limitsJSON{l.AppWrites, l.AppRequests, l.TenantWrites, l.TenantRequests,
		l.Window.String(), l.Disabled})
}

// UnmarshalJSON reads the window as a duration string.
func (l *Limits) UnmarshalJSON(data []byte) error {
	var doc limitsJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return err
	}
	window, err := parseOptionalDuration(doc.Window)
	if err != nil {
		return fmt.Errorf("window: %w", err)
	}
	*l = Limits{doc.AppWrites, doc.AppRequests, doc.TenantWrites, doc.TenantRequests, window,
		doc.Disabled}
	return nil
}

func parseOptionalDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("not a duration like 250ms or 20s")
	}
	return d, nil
}

// throttler keeps a sliding log of admitted request times per counting key.
type throttler struct {
	mu     sync.Mutex
	limits Limits
	logs   map[string][]time.Time
}

func newThrottler(l Limits) *throttler {
	return &throttler{limits: l, logs: make(map[string][]time.Time)}
}

func (t *throttler) set(l Limits) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.limits = l
	t.logs = make(map[string][]time.Time)
}

func (t *throttler) get() Limits {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.limits
}

// admit records a request of app in tenant when every applicable limit has room; otherwise
// it records nothing and returns how long until the fullest window frees a slot.
func (t *throttler) admit(tenant, app string, write bool, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.limits.Disabled {
		return 0, true
	}
	type bucket struct {
		key   string
		limit int
	}
	buckets := []bucket{
		{"app-requests/" + tenant + "/" + app, t.limits.AppRequests},
		{"tenant-requests/" + tenant, t.limits.TenantRequests},
	}
	if write {
		buckets = append(buckets,
			bucket{"app-writes/" + tenant + "/" + app, t.limits.AppWrites},
			bucket{"tenant-writes/" + tenant, t.limits.TenantWrites})
	}
	var wait time.Duration
	for _, b := range buckets {
		log := t.prune(b.key, now)
		if b.limit > 0 && len(log) >= b.limit {
			wait = max(wait, log[len(log)-b.limit].Add(t.limits.Window).Sub(now))
		}
	}
	if wait > 0 {
		return wait, false
	}
	for _, b := range buckets {
		t.logs[b.key] = append(t.logs[b.key], now)
	}
	return 0, true
}

// prune drops the times that left the window and returns what is left.
func (t *throttler) prune(key string, now time.Time) []time.Time {
	log := t.logs[key]
	cut := 0
	for cut < len(log) && !log[cut].After(now.Add(-t.limits.Window)) {
		cut++
	}
	log = log[cut:]
	t.logs[key] = log
	return log
}
