package graphsim

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const odataContentType = "application/json;odata.metadata=minimal;odata.streaming=true;" +
	"IEEE754Compatible=false;charset=utf-8"

// graphCall is what the Graph middleware hands a route handler.
type graphCall struct {
	principal principal
	fault     decision
}

type graphHandler func(w http.ResponseWriter, r *http.Request, call graphCall)

// graph wraps a Graph route in the phases every Graph request passes: latency, method,
// token, role, throttling, injected fault, then the handler.
func (s *Simulator) graph(h graphHandler, methods ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ms-ags-diagnostic", `{"ServerInfo":{"DataCenter":"Loopback",`+
			`"Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"graphsim"}}`)
		if !s.sleep(r, s.faults.get().Latency) {
			return
		}
		if !slices.Contains(methods, r.Method) {
			w.Header().Set("Allow", strings.Join(methods, ", "))
			s.writeGraphError(w, r, newGraphError(http.StatusMethodNotAllowed, "BadRequest",
				"Specified HTTP method is not allowed for the request uri."))
			return
		}

		// Token, then role: Graph rejects a bad token before looking at permissions.
		p, gerr := s.authenticate(r)
		if gerr != nil {
			w.Header().Set("WWW-Authenticate", s.graphAuthenticateHeader())
			s.writeGraphError(w, r, gerr)
			return
		}
		if gerr := authorize(p, r.Method); gerr != nil {
			s.writeGraphError(w, r, gerr)
			return
		}

		if !s.admitOrThrottle(w, r, p) {
			return
		}
		d := s.faults.decide(r.Method)
		if s.injectFault(w, r, d) {
			return
		}
		h(w, r, graphCall{principal: p, fault: d})
	})
}

// admitOrThrottle counts the request against the limits or answers 429.
func (s *Simulator) admitOrThrottle(w http.ResponseWriter, r *http.Request, p principal) bool {
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	wait, ok := s.throttle.admit(s.opts.TenantID, strings.ToLower(p.appID), write, time.Now())
	if ok {
		return true
	}
	s.counters.throttled()
	if !s.responses.get().OmitRetryAfter {
		seconds := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(seconds, 1)))
	}
	s.writeGraphError(w, r, newIntuneError(http.StatusTooManyRequests, "TooManyRequests",
		"Too many requests."))
	return false
}

// sleep waits d unless the client leaves or the simulator closes; false means stop serving.
func (s *Simulator) sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.stopping:
		return false
	}
}

// injectFault acts out a fault decided for this request; true means the request is answered.
// applied-500 is left to the PATCH handler, which must apply the change first.
func (s *Simulator) injectFault(w http.ResponseWriter, r *http.Request, d decision) bool {
	switch d.kind {
	case FaultNone:
		return false
	case FaultAppliedError:
		if r.Method == http.MethodPatch {
			return false
		}
		d.kind = "500"
	}
	s.counters.faultInjected()
	switch d.kind {
	case FaultReset:
		resetConnection(w)
	case FaultStall:
		if s.sleep(r, d.stallFor) {
			s.writeGraphError(w, r, faultError(http.StatusGatewayTimeout, ""))
		}
	default:
		status, _ := strconv.Atoi(d.kind)
		s.writeGraphError(w, r, faultError(status, d.code))
	}
	return true
}

// resetConnection closes the client's connection with a TCP RST and no response.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // cannot hijack: abort the response instead
	}
	raw := conn
	if tlsConn, ok := conn.(*tls.Conn); ok {
		raw = tlsConn.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
}

// faultError is the body of an injected 5xx, in the codes Graph and Intune use. A code asked
// for replaces the status's usual one; a code seen in the graph-errors samples also brings
// that sample's kind of message, so the fault reads like the real answer.
func faultError(status int, code string) *graphError {
	var gerr *graphError
	switch status {
	case http.StatusBadGateway:
		gerr = newIntuneError(status, "BadGateway", "The gateway received an invalid response.")
	case http.StatusServiceUnavailable:
		gerr = newIntuneError(status, "ServiceUnavailable",
			"The service is temporarily unavailable. Please retry later.")
	case http.StatusGatewayTimeout:
		gerr = newIntuneError(status, "GatewayTimeout", "The operation timed out.")
	default:
		gerr = newIntuneError(http.StatusInternalServerError, "InternalServerError",
			"An internal server error occurred.")
	}
	if code == "" {
		return gerr
	}
	gerr.code = code
	if known, ok := knownFaultCodes[code]; ok {
		gerr.message, gerr.apiErrorPhrase = known.message, known.apiErrorPhrase
		gerr.sourceService = intuneServiceName
	}
	return gerr
}

// knownFaultCode is how Intune words an error code it is known to answer.
type knownFaultCode struct {
	message        string
	apiErrorPhrase string
}

// knownFaultCodes are the 5xx codes of the graph-errors samples. CancelledOnServiceTimeout is
// Intune's 503 when its own 15 s budget for a request ran out; the wording follows the sample.
var knownFaultCodes = map[string]knownFaultCode{
	"CancelledOnServiceTimeout": {
		message: "ScenarioTimeout=15000ms, RequestTimeout=15000ms, Elapsed=15012ms, " +
			"CancelOnTimeout, Timeout=15000ms, Checkpoint=EndExecuteAction",
		apiErrorPhrase: "CancelOnTimeout4EndExecuteAction",
	},
}

// handleServer serves GET and PATCH of one microsoftTunnelServer.
func (s *Simulator) handleServer(w http.ResponseWriter, r *http.Request, call graphCall) {
	siteID, serverID := r.PathValue("siteId"), r.PathValue("serverId")
	if r.Method == http.MethodGet {
		server, ok := s.store.server(siteID, serverID)
		if !ok {
			s.writeGraphError(w, r, s.notFound(siteID, serverID))
			return
		}
		s.writeOData(w, http.StatusOK, s.renderServer(siteID, server, true))
		return
	}
	s.patchServer(w, r, call, siteID, serverID)
}

// patchServer reads and validates the body, merges it and answers 200 with the object, 204,
// or (applied-500 fault) 500 after applying.
func (s *Simulator) patchServer(w http.ResponseWriter, r *http.Request, call graphCall,
	siteID, serverID string) {
	if gerr := checkJSONContentType(r); gerr != nil {
		s.writeGraphError(w, r, gerr)
		return
	}
	body, gerr := readBody(r, s.opts.MaxBodyBytes)
	if gerr != nil {
		s.writeGraphError(w, r, gerr)
		return
	}
	props, gerr := parseServerPatch(body, serverID)
	if gerr != nil {
		s.writeGraphError(w, r, gerr)
		return
	}

	merged, ok := s.store.patch(siteID, serverID, props)
	if !ok {
		s.writeGraphError(w, r, s.notFound(siteID, serverID))
		return
	}
	s.counters.patchApplied()

	switch {
	case call.fault.kind == FaultAppliedError:
		s.counters.faultInjected()
		s.writeGraphError(w, r, faultError(http.StatusInternalServerError, ""))
	case s.responses.get().PatchNoContent:
		w.WriteHeader(http.StatusNoContent)
	default:
		s.writeOData(w, http.StatusOK, s.renderServer(siteID, merged, true))
	}
}

// notFound names whichever of the site and the server does not exist.
func (s *Simulator) notFound(siteID, serverID string) *graphError {
	if _, ok := s.store.site(siteID); !ok {
		return newIntuneError(http.StatusNotFound, "ResourceNotFound",
			fmt.Sprintf("The microsoftTunnelSite with id '%s' was not found.", siteID))
	}
	return newIntuneError(http.StatusNotFound, "ResourceNotFound",
		fmt.Sprintf("The microsoftTunnelServer with id '%s' was not found.", serverID))
}

// renderServer adds the OData annotations and every declared property (null when unset).
func (s *Simulator) renderServer(siteID string, server map[string]any, entity bool) map[string]any {
	out := map[string]any{"@odata.type": "#" + serverType}
	if entity {
		out["@odata.context"] = fmt.Sprintf("%s/$metadata#deviceManagement/"+
			"microsoftTunnelSites('%s')/microsoftTunnelServers/$entity", s.GraphBaseURL(), siteID)
	}
	for name := range serverProperties {
		out[name] = server[name]
	}
	return out
}

func renderSite(site Site) map[string]any {
	return map[string]any{
		"@odata.type":     "#microsoft.graph.microsoftTunnelSite",
		"id":              site.ID,
		"displayName":     site.DisplayName,
		"description":     site.Description,
		"publicAddress":   site.PublicAddress,
		"roleScopeTagIds": []string{"0"},
	}
}

// handleSites lists all sites.
func (s *Simulator) handleSites(w http.ResponseWriter, r *http.Request, _ graphCall) {
	var items []map[string]any
	for _, site := range s.store.allSites() {
		items = append(items, renderSite(site))
	}
	s.writeList(w, r, s.GraphBaseURL()+"/$metadata#deviceManagement/microsoftTunnelSites", items)
}

// handleSite returns one site.
func (s *Simulator) handleSite(w http.ResponseWriter, r *http.Request, _ graphCall) {
	site, ok := s.store.site(r.PathValue("siteId"))
	if !ok {
		s.writeGraphError(w, r, s.notFound(r.PathValue("siteId"), ""))
		return
	}
	out := renderSite(site)
	out["@odata.context"] = s.GraphBaseURL() +
		"/$metadata#deviceManagement/microsoftTunnelSites/$entity"
	s.writeOData(w, http.StatusOK, out)
}

// handleServers lists a site's servers.
func (s *Simulator) handleServers(w http.ResponseWriter, r *http.Request, _ graphCall) {
	siteID := r.PathValue("siteId")
	servers, ok := s.store.servers(siteID)
	if !ok {
		s.writeGraphError(w, r, s.notFound(siteID, ""))
		return
	}
	items := make([]map[string]any, 0, len(servers))
	for _, server := range servers {
		items = append(items, s.renderServer(siteID, server, false))
	}
	s.writeList(w, r, fmt.Sprintf("%s/$metadata#deviceManagement/microsoftTunnelSites('%s')/"+
		"microsoftTunnelServers", s.GraphBaseURL(), siteID), items)
}

// writeList answers one page of items: $top (capped at PageSize) sets the page size and
// @odata.nextLink, an absolute URL carrying an opaque $skiptoken, leads to the next page.
func (s *Simulator) writeList(w http.ResponseWriter, r *http.Request, context string,
	items []map[string]any) {
	query := r.URL.Query()
	size, offset, gerr := s.pageBounds(query)
	if gerr != nil {
		s.writeGraphError(w, r, gerr)
		return
	}
	offset = min(offset, len(items))
	end := min(offset+size, len(items))
	page := map[string]any{"@odata.context": context, "value": items[offset:end]}
	if end < len(items) {
		next := url.Values{"$skiptoken": {encodeSkipToken(end)}}
		if top := query.Get("$top"); top != "" {
			next.Set("$top", top)
		}
		page["@odata.nextLink"] = s.url + r.URL.Path + "?" + next.Encode()
	}
	s.writeOData(w, http.StatusOK, page)
}

func (s *Simulator) pageBounds(query url.Values) (size, offset int, gerr *graphError) {
	size = s.opts.PageSize
	if raw := query.Get("$top"); raw != "" {
		top, err := strconv.Atoi(raw)
		if err != nil || top < 0 {
			return 0, 0, badRequest(fmt.Sprintf("Invalid value '%s' for $top query option "+
				"found. The $top query option requires a non-negative integer value.", raw))
		}
		size = min(top, size)
	}
	if raw := query.Get("$skiptoken"); raw != "" {
		var ok bool
		if offset, ok = decodeSkipToken(raw); !ok {
			return 0, 0, badRequest("The $skiptoken '" + raw + "' is invalid.")
		}
	}
	return size, offset, nil
}

func encodeSkipToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("graphsim-offset:" + strconv.Itoa(offset)))
}

func decodeSkipToken(token string) (int, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, false
	}
	n, ok := strings.CutPrefix(string(raw), "graphsim-offset:")
	offset, err := strconv.Atoi(n)
	return offset, ok && err == nil && offset >= 0
}

// writeOData writes a Graph success body with Graph's OData content type.
func (s *Simulator) writeOData(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", odataContentType)
	w.WriteHeader(status)
	_, _ = w.Write(data)
}
