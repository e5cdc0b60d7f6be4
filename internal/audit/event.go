// Package audit records every call through the gateway as Kubernetes-style audit events, one
// JSON line each, and refuses to let a change through that it could not first make durable.
package audit

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"
)

// APIVersion and Kind identify the event format on every line, as audit.k8s.io does.
const (
	APIVersion = "tunnelgateway.audit/v1"
	Kind       = "Event"
)

// Level says how much of a request is recorded.
type Level string

const (
	// LevelMetadata records who did what to which object, and the outcome, but no body.
	// Rejected requests and reads are audited at this level.
	LevelMetadata Level = "Metadata"
	// LevelRequest adds RequestObject: the properties being changed and their new values.
	LevelRequest Level = "Request"
)

// Stage says at which point of the request the event was emitted.
type Stage string

const (
	// StageRequestReceived is written, and synced, before the request is forwarded.
	StageRequestReceived Stage = "RequestReceived"
	// StageResponseComplete is written once the answer has been sent.
	StageResponseComplete Stage = "ResponseComplete"
)

// Verbs the gateway records, named after the Kubernetes verbs they resemble.
const (
	VerbGet   = "get"
	VerbList  = "list"
	VerbPatch = "patch"
)

// Caller kinds, matching the two ways a caller authenticates.
const (
	UserKindEntra  = "entra"
	UserKindAPIKey = "apikey"
)

// Annotation keys for the reasons a request was refused or failed. Values are short,
// fixed-form sentences such as "/displayName max_length".
const (
	AnnotationValidation = "tunnelgateway.audit/validation-failed"
	AnnotationRefused    = "tunnelgateway.audit/caller-refused"
	AnnotationError      = "tunnelgateway.audit/error"
)

// maxUserAgentBytes caps the user agent a caller can make us store, as kube-apiserver does.
const maxUserAgentBytes = 1024

// MaxRequestURIBytes caps the path a caller can make us store or echo: a real route's path is
// under 200 bytes (two GUIDs), so anything longer is noise or an attack on the trail's size.
const MaxRequestURIBytes = 1024

// Event is one line of the audit trail. It has no field able to hold a credential: callers are
// recorded by identity (kind, name, application id), never by token, key, secret or header.
type Event struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Level      Level  `json:"level"`
	// AuditID is the request id the gateway returns as X-Request-Id.
	AuditID string `json:"auditID"`
	Stage   Stage  `json:"stage"`
	Verb    string `json:"verb"`
	// RequestURI is the escaped path only; a query string is never recorded.
	RequestURI string `json:"requestURI"`
	// Route is the route template, for example /v1/tunnel-sites/:siteId/servers/:serverId.
	Route     string     `json:"route,omitempty"`
	User      User       `json:"user"`
	SourceIPs []string   `json:"sourceIPs,omitempty"`
	UserAgent string     `json:"userAgent,omitempty"`
	ObjectRef *ObjectRef `json:"objectRef,omitempty"`
	// RequestObject holds the properties being changed with their new values. It is written
	// only at LevelRequest and dropped at LevelMetadata.
	RequestObject  map[string]any  `json:"requestObject,omitempty"`
	ResponseStatus *ResponseStatus `json:"responseStatus,omitempty"`
	Upstream       *Upstream       `json:"upstream,omitempty"`

	RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp"`
	StageTimestamp           time.Time `json:"stageTimestamp"`
	// LatencySeconds is the time from receipt to the ResponseComplete stage; zero before.
	LatencySeconds float64 `json:"latencySeconds,omitempty"`

	Annotations map[string]string `json:"annotations,omitempty"`
}

// User is the authenticated caller. An unauthenticated caller has an empty Kind.
type User struct {
	// Kind is UserKindEntra or UserKindAPIKey.
	Kind string `json:"kind,omitempty"`
	// Name is the caller's name in the policy (an API key's name is its identity); empty for
	// an Entra caller the policy does not list.
	Name string `json:"name,omitempty"`
	// AppID is the Entra application (client) id of the caller.
	AppID string `json:"appId,omitempty"`
}

// ObjectRef names the tunnel server a request is about.
type ObjectRef struct {
	SiteID   string `json:"siteId,omitempty"`
	ServerID string `json:"serverId,omitempty"`
}

// ResponseStatus is what the gateway answered its caller.
type ResponseStatus struct {
	Code    int    `json:"code"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Upstream is what Microsoft Graph answered, when the request got that far.
type Upstream struct {
	// RequestID is Graph's request-id response header.
	RequestID string `json:"requestId,omitempty"`
	// Code is Graph's error code, for example "ResourceNotFound"; empty on success.
	Code string `json:"code,omitempty"`
	// Attempts counts tries including retries; for a list, those of all its pages.
	Attempts int `json:"attempts,omitempty"`
	// Pages is how many pages a list read; zero for anything but a list.
	Pages int `json:"pages,omitempty"`
	// Status is Graph's final HTTP status; zero when no answer came (timeout, network error).
	Status int `json:"status,omitempty"`
}

// NewEvent starts an event at LevelMetadata for r, received at received. It copies only the
// escaped path (never the query), the user agent and where r came from (the remote address,
// after the X-Forwarded-For addresses when the peer is one of the trusted proxies); headers
// such as Authorization and Cookie are not read. The verb follows the method: GET becomes
// VerbGet (set VerbList for collections), PATCH becomes VerbPatch, anything else its
// lowercase method name.
func NewEvent(r *http.Request, requestID, route string, received time.Time,
	trusted []netip.Prefix) *Event {
	return &Event{
		Level:                    LevelMetadata,
		AuditID:                  requestID,
		Verb:                     verbFor(r.Method),
		RequestURI:               r.URL.EscapedPath(),
		Route:                    route,
		SourceIPs:                SourceIPs(r, trusted),
		UserAgent:                r.UserAgent(),
		RequestReceivedTimestamp: received.UTC(),
	}
}

// maxForwardedIPs bounds the X-Forwarded-For addresses one event records. A real chain has a
// hop or two; the header's leftmost entries are whatever the client wrote, so when there are
// more, the nearest hops (the ones the trusted proxies added) are the ones kept.
const maxForwardedIPs = 16

// SourceIPs returns where r came from, in the order Kubernetes audit events use: the
// X-Forwarded-For addresses, client first, then the peer's own address. Any client can send
// X-Forwarded-For, so it is read only when the peer is in trusted (the reverse proxies in
// front of the gateway); otherwise, and with trusted empty, only the peer is recorded. An
// entry that is not an IP address is left out, so the header cannot smuggle text in.
func SourceIPs(r *http.Request, trusted []netip.Prefix) []string {
	peer := remoteIP(r.RemoteAddr)
	if peer == "" {
		return nil
	}
	addr, err := netip.ParseAddr(peer)
	if err != nil || !inAny(addr.Unmap(), trusted) {
		return []string{peer}
	}

	var ips []string
	for _, header := range r.Header.Values("X-Forwarded-For") {
		for _, entry := range strings.Split(header, ",") {
			if a, err := netip.ParseAddr(strings.TrimSpace(entry)); err == nil {
				ips = append(ips, a.Unmap().String())
			}
		}
	}
	if len(ips) > maxForwardedIPs {
		ips = ips[len(ips)-maxForwardedIPs:]
	}
	// A proxy that lists itself last would otherwise appear twice.
	if len(ips) > 0 && ips[len(ips)-1] == peer {
		return ips
	}
	return append(ips, peer)
}

func inAny(addr netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func verbFor(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return VerbGet
	case http.MethodPatch:
		return VerbPatch
	}
	return strings.ToLower(method)
}

func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// encode renders e as one JSON line ending in '\n'. encoding/json escapes control characters
// (so "\n" in a value becomes the two bytes `\n`), always escapes U+2028 and U+2029, and
// replaces invalid UTF-8 with U+FFFD; a caller's value therefore cannot end the line early or
// start a forged one. HTML escaping (<, >, & as \u003c...) is left on: it does not affect line
// integrity, and it keeps the trail inert if someone views it in a browser-based log viewer.
func encode(e *Event) ([]byte, error) {
	out := recorded(e)
	line, err := appendEvent(make([]byte, 0, lineSizeHint(&out)), &out)
	if err != nil {
		return nil, fmt.Errorf("encode audit event: %w", err)
	}
	return append(line, '\n'), nil
}

// recorded is e as the trail records it: format stamped, body only at LevelRequest, the
// caller's free-form values cut to size.
func recorded(e *Event) Event {
	out := *e
	out.APIVersion, out.Kind = APIVersion, Kind
	if out.Level != LevelRequest {
		out.RequestObject = nil
	}
	out.UserAgent = TruncateUTF8(out.UserAgent, maxUserAgentBytes)
	out.RequestURI = TruncateUTF8(out.RequestURI, MaxRequestURIBytes)
	return out
}

// TruncateUTF8 cuts s to at most n bytes without splitting a rune.
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
