// Package metrics defines every Prometheus collector the gateway exports and registers them on
// a Registerer handed in, so tests and the admin listener each use a registry of their own.
package metrics

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "tunnelgateway"

// Label values with a fixed meaning.
const (
	// UpstreamCodeError is the upstream code label when Graph gave no HTTP answer.
	UpstreamCodeError = "error"
	// FieldUnknown is the field label for any pointer outside the known properties.
	FieldUnknown = "unknown"
	// MethodOther is the method label of any method HTTP does not define.
	MethodOther = "other"
	// FieldRoot is the field label for rules on the whole body (required, type of the body).
	FieldRoot = "(root)"
)

// Token acquisition results, the values of the result label.
const (
	TokenResultSuccess = "success"
	TokenResultError   = "error"
)

// Metrics holds the gateway's collectors. Handlers use the fields directly; route labels are
// route templates (as gin's FullPath gives them), never raw paths or ids.
type Metrics struct {
	// Requests counts answered requests by route, method and status code.
	Requests *prometheus.CounterVec
	// RequestDuration observes time to answer, by route and method.
	RequestDuration *prometheus.HistogramVec
	// InFlight is the number of requests being served.
	InFlight prometheus.Gauge

	// UpstreamRequests counts calls to Graph by operation and status code, or
	// UpstreamCodeError when no answer came. Each attempt counts, retries included.
	UpstreamRequests *prometheus.CounterVec
	// UpstreamRequestDuration observes each attempt's duration by operation.
	UpstreamRequestDuration *prometheus.HistogramVec
	// UpstreamRetries counts retried attempts by operation.
	UpstreamRetries *prometheus.CounterVec
	// UpstreamThrottled counts 429 answers from Graph.
	UpstreamThrottled prometheus.Counter
	// ThrottledResponses counts 429 answers the gateway sent its callers, by route.
	ThrottledResponses *prometheus.CounterVec

	// TokenAcquisitions counts app-only token requests by result (TokenResultSuccess,
	// TokenResultError).
	TokenAcquisitions *prometheus.CounterVec
	// TokenRemainingLifetime is the seconds until the current token expires, as of the scrape.
	TokenRemainingLifetime *TokenLifetime

	// ValidationFailures counts refused bodies by field and rule. Use ValidationFailed, which
	// bounds the field label.
	ValidationFailures *prometheus.CounterVec
	// CallerDenials counts requests refused by authentication or policy, by reason. The reason
	// must come from a fixed set in the caller and policy packages, never from input.
	CallerDenials *prometheus.CounterVec
	// WriteBudgetWait observes how long a PATCH waited for the shared write budget.
	WriteBudgetWait prometheus.Histogram

	// AuditEvents counts audit events written and synced, by stage.
	AuditEvents *prometheus.CounterVec
	// AuditFailures counts audit events that could not be written or synced.
	AuditFailures prometheus.Counter
	// AuditSyncs counts fsyncs of the audit sink; with group commit it is far below events.
	AuditSyncs prometheus.Counter
	// AuditSyncDuration observes each fsync of the audit sink.
	AuditSyncDuration prometheus.Histogram
}

// Buckets, in seconds, sized for each kind of wait.
var (
	requestBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	syncBuckets    = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}
	waitBuckets    = []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
)

// New creates every collector and registers it on reg, together with the Go runtime and
// process collectors. Go and process collectors already on reg (as on
// prometheus.DefaultRegisterer) are left as they are; any other registration conflict is a
// programming error and panics, as prometheus.MustRegister does.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "requests_total",
			Help: "Requests answered, by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "request_duration_seconds",
			Help:    "Time to answer a request, by route template and method.",
			Buckets: requestBuckets,
		}, []string{"route", "method"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "requests_in_flight",
			Help: "Requests being served.",
		}),

		UpstreamRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "upstream_requests_total",
			Help: "Attempts sent to Microsoft Graph, by operation and status code " +
				`("error" when no answer came).`,
		}, []string{"operation", "code"}),
		UpstreamRequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "upstream_request_duration_seconds",
			Help:    "Duration of each attempt sent to Microsoft Graph, by operation.",
			Buckets: requestBuckets,
		}, []string{"operation"}),
		UpstreamRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "upstream_retries_total",
			Help: "Attempts to Microsoft Graph that were retries, by operation.",
		}, []string{"operation"}),
		UpstreamThrottled: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "upstream_throttled_total",
			Help: "429 Too Many Requests answers received from Microsoft Graph.",
		}),
		ThrottledResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "throttled_responses_total",
			Help: "429 Too Many Requests answers sent to callers, by route template.",
		}, []string{"route"}),

		TokenAcquisitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "token_acquisitions_total",
			Help: "App-only token acquisitions from Entra ID, by result.",
		}, []string{"result"}),
		TokenRemainingLifetime: newTokenLifetime(),

		ValidationFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "validation_failures_total",
			Help: "Request bodies refused by validation, by field (JSON pointer) and rule.",
		}, []string{"field", "rule"}),
		CallerDenials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "caller_denials_total",
			Help: "Requests refused by caller authentication or policy, by reason.",
		}, []string{"reason"}),
		WriteBudgetWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "write_budget_wait_seconds",
			Help:    "Time a PATCH waited for the shared write budget.",
			Buckets: waitBuckets,
		}),

		AuditEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "audit_events_total",
			Help: "Audit events written and synced, by stage.",
		}, []string{"stage"}),
		AuditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "audit_failures_total",
			Help: "Audit events that could not be written or synced.",
		}),
		AuditSyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "audit_syncs_total",
			Help: "Syncs of the audit sink; many events share one sync.",
		}),
		AuditSyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "audit_sync_duration_seconds",
			Help:    "Duration of each sync of the audit sink.",
			Buckets: syncBuckets,
		}),
	}

	reg.MustRegister(
		m.Requests, m.RequestDuration, m.InFlight,
		m.UpstreamRequests, m.UpstreamRequestDuration, m.UpstreamRetries,
		m.UpstreamThrottled, m.ThrottledResponses,
		m.TokenAcquisitions, m.TokenRemainingLifetime,
		m.ValidationFailures, m.CallerDenials, m.WriteBudgetWait,
		m.AuditEvents, m.AuditFailures, m.AuditSyncs, m.AuditSyncDuration,
	)
	registerRuntime(reg)
	return m
}

// registerRuntime adds the Go and process collectors unless reg already has them.
func registerRuntime(reg prometheus.Registerer) {
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		var already prometheus.AlreadyRegisteredError
		if err := reg.Register(c); err != nil && !errors.As(err, &already) {
			panic(err)
		}
	}
}

// ObserveRequest records one answered request: its count, its duration and, for a 429, the
// throttled response. route must be the route template.
func (m *Metrics) ObserveRequest(route, method string, status int, elapsed time.Duration) {
	method = MethodLabel(method)
	m.Requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.RequestDuration.WithLabelValues(route, method).Observe(elapsed.Seconds())
	if status == http.StatusTooManyRequests {
		m.ThrottledResponses.WithLabelValues(route).Inc()
	}
}

// ValidationFailed counts one refused body, with the field label bounded by FieldLabel. rule
// must come from the validation package's fixed set of rule names.
func (m *Metrics) ValidationFailed(pointer, rule string) {
	m.ValidationFailures.WithLabelValues(FieldLabel(pointer), rule).Inc()
}

// CallerDenied counts one request refused by authentication or policy. reason must come from
// a fixed set, never from input.
func (m *Metrics) CallerDenied(reason string) { m.CallerDenials.WithLabelValues(reason).Inc() }

// TokenAcquired records one token acquisition; on success, expiresOn is when the new token
// expires. A failure leaves the lifetime alone: the previous token may still be valid.
func (m *Metrics) TokenAcquired(ok bool, expiresOn time.Time) {
	if !ok {
		m.TokenAcquisitions.WithLabelValues(TokenResultError).Inc()
		return
	}
	m.TokenAcquisitions.WithLabelValues(TokenResultSuccess).Inc()
	m.TokenRemainingLifetime.Set(expiresOn)
}

// TokenLifetime is the token_remaining_lifetime_seconds gauge. It keeps the expiry, not the
// lifetime, and works the seconds out at each scrape: azcore caches a token and asks for the
// next one only shortly before it expires, so a value set at acquisition would stay near 3599
// for the token's whole life and never show it running out.
type TokenLifetime struct {
	desc *prometheus.Desc
	// expiresOn is the current token's expiry in Unix nanoseconds; 0 until the first token.
	expiresOn atomic.Int64
	now       func() time.Time
}

func newTokenLifetime() *TokenLifetime {
	return &TokenLifetime{
		desc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "",
			"token_remaining_lifetime_seconds"),
			"Seconds until the current app-only token expires, as of the scrape; "+
				"0 when no token is held or it has expired.", nil, nil),
		now: time.Now,
	}
}

// Set records when the current token expires.
func (l *TokenLifetime) Set(expiresOn time.Time) { l.expiresOn.Store(expiresOn.UnixNano()) }

// Seconds is the current token's remaining lifetime, never negative: an expired token, or
// none yet, has no time left.
func (l *TokenLifetime) Seconds() float64 {
	exp := l.expiresOn.Load()
	if exp == 0 {
		return 0
	}
	return max(0, time.Unix(0, exp).Sub(l.now()).Seconds())
}

// Describe implements prometheus.Collector.
func (l *TokenLifetime) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

// Collect implements prometheus.Collector.
func (l *TokenLifetime) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, l.Seconds())
}

// AuditObserver feeds the audit log's measurements into Metrics. It satisfies audit.Observer
// without this package importing audit.
type AuditObserver struct{ m *Metrics }

// AuditObserver returns the observer to pass to audit.WithObserver.
func (m *Metrics) AuditObserver() AuditObserver { return AuditObserver{m} }

// AuditEventsWritten counts events the audit log wrote and synced.
func (o AuditObserver) AuditEventsWritten(stage string, count int) {
	o.m.AuditEvents.WithLabelValues(stage).Add(float64(count))
}

// AuditEventsFailed counts events the audit log could not record.
func (o AuditObserver) AuditEventsFailed(count int) { o.m.AuditFailures.Add(float64(count)) }

// AuditSynced records one sync of the audit sink.
func (o AuditObserver) AuditSynced(duration time.Duration) {
	o.m.AuditSyncs.Inc()
	o.m.AuditSyncDuration.Observe(duration.Seconds())
}

// UpstreamObserver feeds the Graph client's attempts and retries into Metrics. It satisfies
// graphclient.Observer without this package importing graphclient.
type UpstreamObserver struct{ m *Metrics }

// UpstreamObserver returns the observer to set as the Graph client's Observer.
func (m *Metrics) UpstreamObserver() UpstreamObserver { return UpstreamObserver{m} }

// Attempt records one try sent to Graph; status is 0 when no answer came.
func (o UpstreamObserver) Attempt(operation string, status int, d time.Duration) {
	code := UpstreamCodeError
	if status != 0 {
		code = strconv.Itoa(status)
	}
	o.m.UpstreamRequests.WithLabelValues(operation, code).Inc()
	o.m.UpstreamRequestDuration.WithLabelValues(operation).Observe(d.Seconds())
	if status == http.StatusTooManyRequests {
		o.m.UpstreamThrottled.Inc()
	}
}

// Retry counts one retried attempt.
func (o UpstreamObserver) Retry(operation string) {
	o.m.UpstreamRetries.WithLabelValues(operation).Inc()
}

// knownFields are the top-level properties a PATCH body may carry, from the Graph page's
// property table, plus the OData type annotation its example sends.
var knownFields = map[string]bool{
	"id":                       true,
	"displayName":              true,
	"tunnelServerHealthStatus": true,
	"lastCheckinDateTime":      true,
	"agentImageDigest":         true,
	"serverImageDigest":        true,
	"@odata.type":              true,
}

// MethodLabel bounds the method label: Go's server accepts any token as a method, so a caller
// could otherwise create one series per made-up method. Methods HTTP defines keep their name;
// anything else is MethodOther.
func MethodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return MethodOther
}

// FieldLabel turns a JSON pointer from a validation error into a label value from a closed
// set, so callers cannot create series by sending made-up property names: the root ("") is
// FieldRoot, a known property (or anything below it) is "/property", all else FieldUnknown.
func FieldLabel(pointer string) string {
	if pointer == "" {
		return FieldRoot
	}
	if !strings.HasPrefix(pointer, "/") {
		return FieldUnknown
	}
	// Path ids and the query string are checked too; their labels are as few as the body's.
	switch {
	case pointer == "/path/siteId", pointer == "/path/serverId":
		return pointer
	case pointer == "/query", strings.HasPrefix(pointer, "/query/"):
		return "/query"
	}
	property, _, _ := strings.Cut(pointer[1:], "/")
	if !knownFields[property] {
		return FieldUnknown
	}
	return "/" + property
}
