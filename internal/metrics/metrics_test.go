package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/metrics"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.golden")

// AuditObserver feeds the audit log's measurements without either package importing the
// other at run time.
var _ audit.Observer = metrics.AuditObserver{}

// The route templates as the gateway's router registers them, so that the golden file shows
// the label values operators really see; TestMetricsUseRouteTemplates in internal/app checks
// the gateway produces exactly these.
const (
	v1ServerRoute    = "/v1/tunnel-sites/:siteId/servers/:serverId"
	graphServerRoute = "/beta/deviceManagement/microsoftTunnelSites/:siteId/" +
		"microsoftTunnelServers/:serverId"
)

// exercise touches every collector once with fixed values, through the helpers where the
// gateway uses them.
func exercise(m *metrics.Metrics) {
	m.ObserveRequest(v1ServerRoute, "PATCH", 200, 250*time.Millisecond)
	m.ObserveRequest(v1ServerRoute, "PATCH", 429, 125*time.Millisecond)
	m.ObserveRequest(graphServerRoute, "GET", 200, 40*time.Millisecond)
	m.InFlight.Set(3)
	upstream := m.UpstreamObserver()
	upstream.Attempt(graphclient.OpPatchServer, 429, 100*time.Millisecond)
	upstream.Retry(graphclient.OpPatchServer)
	upstream.Attempt(graphclient.OpPatchServer, 204, 300*time.Millisecond)
	upstream.Attempt(graphclient.OpPatchServer, 0, 30*time.Second)
	upstream.Attempt(graphclient.OpGetServer, 200, 35*time.Millisecond)
	// A fixed clock keeps the lifetime, worked out at each scrape, the same on every run.
	acquired := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	m.TokenRemainingLifetime.SetClock(func() time.Time { return acquired })
	m.TokenAcquired(true, acquired.Add(3599*time.Second))
	m.TokenAcquired(false, time.Time{})
	m.ValidationFailed("/displayName", "max_length")
	m.CallerDenied("property_not_granted")
	m.WriteBudgetWait.Observe(0.02)
	auditObserver := m.AuditObserver()
	auditObserver.AuditEventsWritten(string(audit.StageRequestReceived), 2)
	auditObserver.AuditEventsFailed(1)
	auditObserver.AuditSynced(700 * time.Microsecond)
}

func TestGolden(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	exercise(m)
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}

	// The runtime families vary by Go version and platform: check they are there, and lock
	// only the gateway's own.
	var got bytes.Buffer
	runtime := map[string]bool{}
	for _, mf := range families {
		name := mf.GetName()
		switch {
		case strings.HasPrefix(name, "go_"), strings.HasPrefix(name, "process_"):
			runtime[strings.SplitN(name, "_", 2)[0]] = true
		default:
			if _, err := expfmt.MetricFamilyToText(&got, mf); err != nil {
				t.Fatalf("render %s: %v", name, err)
			}
		}
	}
	for _, prefix := range []string{"go", "process"} {
		if !runtime[prefix] {
			t.Errorf("no %s_* families registered", prefix)
		}
	}

	checkEveryFieldExercised(t, m, got.String())

	golden := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("metrics differ from %s (run with -update if intended):\ngot:\n%s", golden,
			got.String())
	}
}

// checkEveryFieldExercised fails when a collector of m is missing from the rendered text, so
// a collector added without a line in exercise cannot slip past the golden file.
func checkEveryFieldExercised(t *testing.T, m *metrics.Metrics, rendered string) {
	t.Helper()
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok {
			t.Errorf("field %s is not a prometheus.Collector", v.Type().Field(i).Name)
			continue
		}
		descs := make(chan *prometheus.Desc, 4)
		c.Describe(descs)
		close(descs)
		for d := range descs {
			name := strings.SplitN(strings.TrimPrefix(d.String(), `Desc{fqName: "`), `"`, 2)[0]
			if !strings.Contains(rendered, "# TYPE "+name+" ") {
				t.Errorf("field %s (%s) is not exercised", v.Type().Field(i).Name, name)
			}
		}
	}
}

// TestTokenLifetimeCountsDown checks that the lifetime falls as time passes after one
// acquisition (azcore asks for no new token until shortly before expiry), never goes below
// zero, and survives a failed acquisition.
func TestTokenLifetimeCountsDown(t *testing.T) {
	t.Parallel()
	acquired := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		acquire func(m *metrics.Metrics)
		elapsed time.Duration
		want    float64
	}{
		{name: "no token yet", acquire: func(*metrics.Metrics) {}, want: 0},
		{name: "just acquired", want: 3600},
		{name: "ten minutes later", elapsed: 10 * time.Minute, want: 3000},
		{name: "a failure keeps the held token", elapsed: time.Minute, want: 3540,
			acquire: func(m *metrics.Metrics) {
				m.TokenAcquired(true, acquired.Add(time.Hour))
				m.TokenAcquired(false, time.Time{})
			}},
		{name: "expired", elapsed: 2 * time.Hour, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			m := metrics.New(reg)
			now := acquired.Add(tt.elapsed)
			m.TokenRemainingLifetime.SetClock(func() time.Time { return now })
			if tt.acquire == nil {
				m.TokenAcquired(true, acquired.Add(time.Hour))
			} else {
				tt.acquire(m)
			}
			got := testutil.ToFloat64(m.TokenRemainingLifetime)
			if got != tt.want {
				t.Errorf("token_remaining_lifetime_seconds: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewPanicsOnDuplicateRegistration(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	metrics.New(reg)
	// A second set of gateway collectors on the same registry is a programming error.
	defer func() {
		if recover() == nil {
			t.Error("second New on one registry: got no panic, want one")
		}
	}()
	metrics.New(reg)
}

func TestNewOnRegistryWithRuntimeCollectors(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	m := metrics.New(reg)
	m.InFlight.Inc()
	if _, err := reg.Gather(); err != nil {
		t.Errorf("Gather: %v", err)
	}
}

func TestFieldLabel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pointer string
		want    string
	}{
		{"root", "", metrics.FieldRoot},
		{"known property", "/displayName", "/displayName"},
		{"below a known property", "/displayName/0", "/displayName"},
		{"odata type", "/@odata.type", "/@odata.type"},
		{"unknown property", "/attackerChosen123", metrics.FieldUnknown},
		{"case differs", "/DisplayName", metrics.FieldUnknown},
		{"not a pointer", "displayName", metrics.FieldUnknown},
		{"empty property", "/", metrics.FieldUnknown},
		{"escaped slash", "/display~1Name", metrics.FieldUnknown},
		{"site id in the path", "/path/siteId", "/path/siteId"},
		{"server id in the path", "/path/serverId", "/path/serverId"},
		{"other path segment", "/path/attackerChosen", metrics.FieldUnknown},
		{"a query parameter", "/query/attackerChosen", "/query"},
		{"the query string", "/query", "/query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := metrics.FieldLabel(tt.pointer); got != tt.want {
				t.Errorf("FieldLabel(%q): got %q, want %q", tt.pointer, got, tt.want)
			}
		})
	}
}

func TestValidationFailureBoundsCardinality(t *testing.T) {
	t.Parallel()
	m := metrics.New(prometheus.NewRegistry())
	for _, p := range []string{"/a", "/b", "/c", "/displayName", "/displayName"} {
		m.ValidationFailed(p, "unknown_property")
	}
	if got, want := testutil.CollectAndCount(m.ValidationFailures), 2; got != want {
		t.Errorf("validation failure series: got %d, want %d", got, want)
	}
	got := testutil.ToFloat64(m.ValidationFailures.WithLabelValues(metrics.FieldUnknown,
		"unknown_property"))
	if got != 3 {
		t.Errorf("unknown field count: got %v, want 3", got)
	}
}

// TestAuditObserver runs a real audit log, on a file that starts failing, with Metrics as its
// observer.
func TestAuditObserver(t *testing.T) {
	t.Parallel()
	m := metrics.New(prometheus.NewRegistry())
	f, err := os.Create(filepath.Join(t.TempDir(), "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	l := audit.New(f, nil, audit.WithObserver(m.AuditObserver()))
	defer l.Close(context.Background())
	ctx := context.Background()

	for _, id := range []string{"a", "b"} {
		if err := l.RequestReceived(ctx, &audit.Event{AuditID: id}); err != nil {
			t.Fatalf("RequestReceived: %v", err)
		}
	}
	_ = f.Close()
	var auditErr *audit.Error
	if err := l.RequestReceived(ctx, &audit.Event{AuditID: "c"}); !errors.As(err, &auditErr) {
		t.Fatalf("RequestReceived on a closed file: got %v, want *audit.Error", err)
	}

	stage := string(audit.StageRequestReceived)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"audit_events_total", testutil.ToFloat64(m.AuditEvents.WithLabelValues(stage)), 2},
		{"audit_failures_total", testutil.ToFloat64(m.AuditFailures), 1},
		{"audit_syncs_total", testutil.ToFloat64(m.AuditSyncs), 2},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestMethodLabelIsBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, method, want string }{
		{"defined method", "PATCH", "PATCH"},
		{"made-up method", "FROBNICATE", metrics.MethodOther},
		{"lowercase is not a defined method", "get", metrics.MethodOther},
		{"huge method", strings.Repeat("X", 30000), metrics.MethodOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := metrics.MethodLabel(tc.method); got != tc.want {
				t.Errorf("MethodLabel(%.20q) = %q, want %q", tc.method, got, tc.want)
			}
		})
	}
}
