// Package handlers serves the gateway's HTTP API with gin: the simplified /v1 routes and the
// Graph-compatible /beta routes, each request read as phases (authenticate, parse, validate,
// authorize, audit, forward, answer), and the one place where failures become statuses.
package handlers

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/metrics"
	"tunnelgateway/internal/validation"
)

// Route templates, used as metric labels and in the audit trail; never raw paths.
const (
	routeV1Sites      = "/v1/tunnel-sites"
	routeV1Servers    = "/v1/tunnel-sites/:siteId/servers"
	routeV1Server     = "/v1/tunnel-sites/:siteId/servers/:serverId"
	routeGraphSites   = "/beta/deviceManagement/microsoftTunnelSites"
	routeGraphServers = routeGraphSites + "/:siteId/microsoftTunnelServers"
	routeGraphServer  = routeGraphServers + "/:serverId"
	routeOpenAPI      = "/openapi.yaml"
	routeUnmatched    = "unmatched"
	// maxQueryNamesReported and maxQueryNameBytes bound what a refused query string makes the
	// gateway repeat in its answer and audit trail.
	maxQueryNamesReported = 8
	maxQueryNameBytes     = 64
	headerRequestID       = "X-Request-Id"
	headerGraphRequest    = "Graph-Request-Id"
)

// Authenticator identifies the caller of a request.
type Authenticator interface {
	Authenticate(r *http.Request) (callers.Caller, error)
}

// Authorizer decides what an identified caller may do, and knows each caller's name.
type Authorizer interface {
	AuthorizeWrite(c callers.Caller, siteID string, properties []string) error
	AuthorizeRead(c callers.Caller, siteID string) error
	// Name returns the caller's name in the policy, or "" when the policy has no entry for it.
	Name(c callers.Caller) string
}

// AuditLog records the audit trail; RequestReceived returns only once the event is durable.
type AuditLog interface {
	RequestReceived(ctx context.Context, e *audit.Event) error
	ResponseComplete(e *audit.Event) error
}

// Graph is the part of the Graph client the handlers use.
type Graph interface {
	PatchServer(ctx context.Context, siteID, serverID string, body []byte,
		requestID string) (*graphclient.Response, error)
	GetServer(ctx context.Context, siteID, serverID, requestID string) (*graphclient.Response, error)
	ListSites(ctx context.Context, requestID string) (*graphclient.List, error)
	ListServers(ctx context.Context, siteID, requestID string) (*graphclient.List, error)
}

// Deps is everything the handlers need, built once by cmd/gateway.
type Deps struct {
	Graph     Graph
	Validator *validation.Validator
	Auth      Authenticator
	Policy    Authorizer
	Audit     AuditLog
	Metrics   *metrics.Metrics
	Logger    *zap.Logger
	// OpenAPI is the spec served at GET /openapi.yaml.
	OpenAPI []byte
	// MaxBodyBytes bounds a body before and after gzip decoding.
	MaxBodyBytes int64
	// RequestTimeout is the end-to-end deadline of one request.
	RequestTimeout time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For the audit trail records. Default:
	// none.
	TrustedProxies []netip.Prefix
}

type family int

const (
	familyV1 family = iota
	familyGraph
)

// New builds the callers' router.
func New(d Deps) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// Ids are matched on the escaped path, so "..%2F.." stays inside one segment and is then
	// refused by the id pattern with a clear message instead of reaching another route.
	r.UseRawPath = true
	r.UnescapePathValues = true
	// No redirects: a redirect would answer before authentication, audit and metrics.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true

	s := &server{Deps: d}
	r.Use(s.begin)
	r.NoRoute(s.noRoute)
	r.NoMethod(s.noMethod)

	// Every GET route answers HEAD too (RFC 9110, section 9.3.2): the same work and headers,
	// and net/http leaves out the body.
	get := func(path string, h ...gin.HandlerFunc) {
		r.GET(path, h...)
		r.HEAD(path, h...)
	}
	get(routeOpenAPI, s.authenticate, s.noQuery, s.openAPI)
	for _, fam := range []struct {
		family                 family
		sites, servers, server string
	}{
		{familyV1, routeV1Sites, routeV1Servers, routeV1Server},
		{familyGraph, routeGraphSites, routeGraphServers, routeGraphServer},
	} {
		tag := s.tag(fam.family)
		get(fam.sites, tag, s.authenticate, s.noQuery, s.listSites)
		get(fam.servers, tag, s.authenticate, s.noQuery, s.listServers)
		get(fam.server, tag, s.authenticate, s.noQuery, s.getServer)
		r.PATCH(fam.server, tag, s.authenticate, s.noQuery, s.patchServer)
	}
	for _, route := range r.Routes() {
		if !slices.Contains(s.templates, route.Path) {
			s.templates = append(s.templates, route.Path)
		}
	}
	return r
}

type server struct {
	Deps
	// templates are the registered routes' paths, read back from the router once built.
	templates []string
}

// exchange is the state of one request as it moves through the phases.
type exchange struct {
	c         *gin.Context
	family    family
	route     string
	requestID string
	start     time.Time
	// logFields are the request's own log fields (its id, then its caller), written on each
	// of its lines by log, and by begin on the access line.
	logFields []zap.Field
	baseLog   *zap.Logger
	caller    callers.Caller
	event     *audit.Event
	failure   *failure
	upstream  *audit.Upstream
}

// log is the request's logger for its rarer lines (refusals, failures). The access line,
// written for every request, passes the fields itself: zap's With copies its encoder, and two
// copies per request showed in the CPU profile at saturation.
func (x *exchange) log() *zap.Logger {
	return x.baseLog.With(x.logFields...)
}

func exchangeOf(c *gin.Context) *exchange {
	return c.MustGet("exchange").(*exchange)
}

func (x *exchange) clientRequestID() string {
	if id := x.c.GetHeader("client-request-id"); id != "" && validation.ValidID(id) {
		return id
	}
	return x.requestID
}

// begin gives the request its id, its logger and its deadline, and, when the handlers are
// done, writes the access log line and the request metrics.
func (s *server) begin(c *gin.Context) {
	x := &exchange{
		c:         c,
		route:     c.FullPath(),
		requestID: uuid.NewString(),
		start:     time.Now(),
	}
	if x.route == "" {
		x.route = routeUnmatched
	}
	// Room for the caller's two fields and the access line's four.
	x.logFields = append(make([]zap.Field, 0, 7), zap.String("request_id", x.requestID))
	x.baseLog = s.Logger
	c.Set("exchange", x)
	c.Header(headerRequestID, x.requestID)
	if id := c.GetHeader("client-request-id"); id != "" && validation.ValidID(id) {
		c.Header("client-request-id", id)
	}

	ctx, cancel := context.WithTimeout(c.Request.Context(), s.RequestTimeout)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	s.Metrics.InFlight.Inc()
	defer s.Metrics.InFlight.Dec()

	c.Next()

	status := c.Writer.Status()
	elapsed := time.Since(x.start)
	s.Metrics.ObserveRequest(x.route, c.Request.Method, status, elapsed)
	s.Logger.Info("request", append(x.logFields,
		zap.String("method", metrics.MethodLabel(c.Request.Method)),
		zap.String("route", x.route),
		zap.Int("status", status),
		zap.Float64("latency_seconds", elapsed.Seconds()))...)
}

func (s *server) tag(f family) gin.HandlerFunc {
	return func(c *gin.Context) { exchangeOf(c).family = f }
}

func (s *server) authenticate(c *gin.Context) {
	x := exchangeOf(c)
	caller, err := s.Auth.Authenticate(c.Request)
	// A token refused only for lacking the gateway's app role still names its application:
	// the audit trail and the access log say who was refused, not just that someone was.
	if caller.ID != "" {
		s.identify(x, caller)
	}
	if err != nil {
		s.Metrics.CallerDenied(classify(err).kind)
		s.auditRejected(x, err)
		x.abortWith(err)
	}
}

// identify records who the caller is on the exchange and in its log fields.
func (s *server) identify(x *exchange, caller callers.Caller) {
	// A token names only an application id; people know the caller by its policy name.
	if name := s.Policy.Name(caller); name != "" {
		caller.Name = name
	}
	x.caller = caller
	x.logFields = append(x.logFields, zap.String("caller", caller.String()))
	if caller.Kind == callers.KindEntra {
		x.logFields = append(x.logFields, zap.String("app_id", caller.ID))
	}
}

// noQuery refuses query strings: the gateway supports no OData query option, and ignoring one
// ($filter, $select) would answer with something other than what was asked.
func (s *server) noQuery(c *gin.Context) {
	if c.Request.URL.RawQuery == "" {
		return
	}
	x := exchangeOf(c)
	query := c.Request.URL.Query()
	names := make([]string, 0, len(query))
	for name := range query {
		names = append(names, name)
	}
	sort.Strings(names)
	var fields []validation.FieldError
	for i, name := range names {
		if i == maxQueryNamesReported {
			// The caller learns enough from the first few; the rest would only let one request
			// write an answer and an audit line as long as its query string.
			fields = append(fields, validation.FieldError{Pointer: "/query",
				Rule:   validation.RuleUnknownProperty,
				Detail: strconv.Itoa(len(names)-i) + " more query parameters are not shown"})
			break
		}
		fields = append(fields, validation.FieldError{
			Pointer: "/query/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(
				audit.TruncateUTF8(name, maxQueryNameBytes)),
			Rule:   validation.RuleUnknownProperty,
			Detail: "query parameters are not supported; the gateway takes none",
		})
	}
	if len(fields) == 0 {
		fields = append(fields, validation.FieldError{Pointer: "/query", Rule: validation.RuleSyntax,
			Detail: "the query string cannot be read; the gateway takes none"})
	}
	s.refuse(x, &validation.Error{Kind: validation.Invalid,
		Detail: "the gateway supports no query options", Fields: fields})
	c.Abort()
}

func (s *server) openAPI(c *gin.Context) {
	x := exchangeOf(c)
	x.event = s.newEvent(x, "", "")
	c.Data(http.StatusOK, "application/yaml", s.OpenAPI)
	s.complete(x)
}

func (s *server) noRoute(c *gin.Context) {
	s.unrouted(exchangeOf(c), http.StatusNotFound)
}

func (s *server) noMethod(c *gin.Context) {
	x := exchangeOf(c)
	// gin names no route for a method it refuses; the path still matches one, and that route
	// is the label operators look for.
	if route := s.templateOf(c.Request.URL.EscapedPath()); route != "" {
		x.route = route
	}
	s.unrouted(x, http.StatusMethodNotAllowed)
}

// templateOf returns the registered route template path matches, segment by segment, or ""
// for none.
func (s *server) templateOf(path string) string {
	segments := strings.Split(path, "/")
	for _, template := range s.templates {
		want := strings.Split(template, "/")
		if len(want) != len(segments) {
			continue
		}
		matched := true
		for i, w := range want {
			if segments[i] != w && (!strings.HasPrefix(w, ":") || segments[i] == "") {
				matched = false
				break
			}
		}
		if matched {
			return template
		}
	}
	return ""
}

// unrouted answers a request no route takes, in the shape of the family its path belongs to,
// and audits it like any refused request.
func (s *server) unrouted(x *exchange, status int) {
	if strings.HasPrefix(x.c.Request.URL.Path, "/beta/") {
		x.family = familyGraph
	}
	err := &routeError{status: status}
	s.auditRejected(x, err)
	x.fail(err)
}

// routeError answers a request that matches no route or method.
type routeError struct{ status int }

func (e *routeError) Error() string { return http.StatusText(e.status) }
