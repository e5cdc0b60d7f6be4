package graphsim

import (
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
)

// Route templates, as counters and logs name them.
const (
	RouteSites          = "/beta/deviceManagement/microsoftTunnelSites"
	RouteSite           = RouteSites + "/{siteId}"
	RouteServers        = RouteSite + "/microsoftTunnelServers"
	RouteServer         = RouteServers + "/{serverId}"
	RouteToken          = "/{tenant}/oauth2/v2.0/token"
	RouteDiscovery      = "/{tenant}/v2.0/.well-known/openid-configuration"
	RouteDiscoveryV1    = "/{tenant}/.well-known/openid-configuration"
	RouteKeys           = "/{tenant}/discovery/v2.0/keys"
	RouteKeysV1         = "/{tenant}/discovery/keys"
	routeGraphUnmatched = "/beta/{unmatched}"
	routeUnmatched      = "/{unmatched}"
	adminPrefix         = "/_simulator"

	// RouteServiceAccountDiscovery and RouteServiceAccountKeys serve the simulated Kubernetes
	// cluster's OIDC issuer, ServiceAccountIssuer(), which Entra reads to verify its tokens.
	RouteServiceAccountDiscovery = "/oidc/kubernetes/{cluster}/.well-known/openid-configuration"
	RouteServiceAccountKeys      = "/oidc/kubernetes/{cluster}/openid/v1/jwks"
)

// routes builds the handler: Graph under /beta, Entra under /{tenant}, admin under
// /_simulator. Every Graph and Entra request passes through observe.
func (s *Simulator) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(RouteDiscovery, s.handleDiscovery)
	mux.HandleFunc(RouteDiscoveryV1, s.handleDiscoveryV1)
	mux.HandleFunc(RouteKeys, s.handleKeys)
	mux.HandleFunc(RouteKeysV1, s.handleKeys)
	mux.HandleFunc(RouteToken, s.handleToken)
	mux.HandleFunc(RouteServiceAccountDiscovery, s.handleServiceAccountDiscovery)
	mux.HandleFunc(RouteServiceAccountKeys, s.handleServiceAccountKeys)

	mux.Handle(RouteSites, s.graph(s.handleSites, http.MethodGet))
	mux.Handle(RouteSite, s.graph(s.handleSite, http.MethodGet))
	mux.Handle(RouteServers, s.graph(s.handleServers, http.MethodGet))
	mux.Handle(RouteServer, s.graph(s.handleServer, http.MethodGet, http.MethodPatch))
	mux.HandleFunc("/", s.handleUnmatched)

	admin := s.adminRoutes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == adminPrefix || strings.HasPrefix(r.URL.Path, adminPrefix+"/") {
			admin.ServeHTTP(w, r)
			return
		}
		s.observe(mux).ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (rec *statusRecorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
	rec.ResponseWriter.WriteHeader(status)
}

func (rec *statusRecorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.ResponseWriter.Write(b)
}

func (rec *statusRecorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// observe sets request-id and client-request-id, then counts and logs the request by route
// template. A hijacked (reset) connection is counted with status 0.
func (s *Simulator) observe(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		requestID := uuid.NewString()
		w.Header().Set("request-id", requestID)
		if clientID := r.Header.Get("client-request-id"); clientID != "" {
			w.Header().Set("client-request-id", clientID)
		}
		rec := &statusRecorder{ResponseWriter: w}
		mux.ServeHTTP(rec, r)

		route := routeTemplate(r)
		s.counters.request(r.Method, route, rec.status)
		s.log.Debug("request served",
			zap.String("request_id", requestID),
			zap.String("method", r.Method),
			zap.String("route", route),
			zap.Int("status", rec.status),
			zap.Duration("duration", time.Since(start)))
	})
}

// routeTemplate is the matched pattern, or a placeholder that keeps counters bounded.
func routeTemplate(r *http.Request) string {
	switch {
	case (r.Pattern == "/" || r.Pattern == "") && strings.HasPrefix(r.URL.Path, "/beta/"):
		return routeGraphUnmatched
	case r.Pattern == "/" || r.Pattern == "":
		return routeUnmatched
	default:
		return r.Pattern
	}
}

// handleUnmatched answers a Graph path Graph does not know the way Graph does, 400 naming the
// first unknown segment, and any other path with a plain 404.
func (s *Simulator) handleUnmatched(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/beta/") {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	segments := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/beta"), "/"), "/")
	known := []string{"deviceManagement", "microsoftTunnelSites", "", "microsoftTunnelServers", ""}
	bad := segments[0]
	for i, seg := range segments {
		if i >= len(known) || (known[i] != "" && seg != known[i]) {
			bad = seg
			break
		}
	}
	s.writeGraphError(w, r, badRequest("Resource not found for the segment '"+bad+"'."))
}
