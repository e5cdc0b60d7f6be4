package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/policy"
	"tunnelgateway/internal/validation"
	"tunnelgateway/internal/writebudget"
)

// statusCallerGone is the status recorded when the caller closed its connection first, after
// the convention nginx made common; no caller ever sees it.
const statusCallerGone = 499

// failure is an error turned into what the caller is told. classify is the one place where a
// failure class becomes an HTTP status; both route families render the same failure.
type failure struct {
	status int
	// kind is a stable slug: the problem type's last segment, and the metric/audit reason.
	kind string
	// code is the Graph-style error code used on the Graph-compatible route.
	code       string
	title      string
	detail     string
	fields     []validation.FieldError
	retryAfter time.Duration
	// authenticate is the WWW-Authenticate challenge of a 401.
	authenticate string
	upstream     *graphclient.GraphError
}

func classify(err error) failure {
	var (
		ve  *validation.Error
		ce  *callers.Error
		pd  *policy.Denied
		ae  *audit.Error
		ge  *graphclient.GraphError
		te  *writebudget.ThrottledError
		wue *writebudget.UnavailableError
		tre *graphclient.TransportError
		cre *graphclient.CredentialError
		lle *graphclient.ListTooLongError
		ule *graphclient.UnexpectedLinkError
		be  *graphclient.BreakerOpenError
		re  *routeError
		bre *bodyReadError
	)
	switch {
	case errors.Is(err, context.Canceled):
		// The caller went away and its request was cancelled; nobody reads this answer, but
		// the audit trail and metrics record it apart from real failures.
		return failure{status: statusCallerGone, kind: "caller_gone", code: "ClientClosedRequest",
			title: "Caller went away", detail: "the caller closed the connection before the answer"}
	case errors.As(err, &bre):
		return classifyBodyRead(bre)
	case errors.As(err, &re):
		if re.status == http.StatusMethodNotAllowed {
			return failure{status: re.status, kind: "method_not_allowed", code: "BadRequest",
				title: "Method not allowed", detail: "this path does not take that method"}
		}
		return failure{status: re.status, kind: "no_route", code: "ResourceNotFound",
			title: "No such route",
			detail: "no route of this gateway matches the path; the routes are listed in " +
				"GET /openapi.yaml (with a caller credential)"}
	case errors.As(err, &ve):
		return classifyValidation(ve)
	case errors.As(err, &ce):
		f := failure{status: ce.Status, kind: ce.Reason, detail: ce.Detail,
			authenticate: ce.Challenge()}
		if ce.Status == http.StatusForbidden {
			f.code, f.title = "Forbidden", "Caller not allowed"
		} else {
			f.code, f.title = "InvalidAuthenticationToken", "Caller not authenticated"
		}
		return f
	case errors.As(err, &pd):
		return failure{status: http.StatusForbidden, kind: pd.Reason, code: "Forbidden",
			title: "Caller not allowed", detail: pd.Error()}
	case errors.As(err, &ae) && errors.Is(ae, context.DeadlineExceeded):
		// The request's deadline ran out before its event could be recorded; the trail is fine.
		return failure{status: http.StatusGatewayTimeout, kind: "deadline", code: "GatewayTimeout",
			title: "Deadline exceeded", detail: "the request's deadline passed before it was sent to Graph"}
	case errors.As(err, &ae):
		return failure{status: http.StatusServiceUnavailable, kind: "audit_unavailable",
			code: "ServiceUnavailable", title: "Audit trail unavailable",
			detail:     "the audit trail cannot record this request, so it was not sent to Graph",
			retryAfter: 5 * time.Second}
	case errors.As(err, &ge):
		return classifyGraph(ge)
	case errors.As(err, &te):
		return failure{status: http.StatusTooManyRequests, kind: "write_budget",
			code: "TooManyRequests", title: "Write budget exhausted",
			detail:     "the gateway's share of Graph's write limit is used up; retry later",
			retryAfter: time.Duration(te.RetryAfterSeconds()) * time.Second}
	case errors.Is(err, writebudget.ErrDraining):
		// This attempt never left, so another replica can take the write at once. A retry's
		// earlier attempt did reach Graph, though, and may have applied the change.
		f := failure{status: http.StatusServiceUnavailable, kind: "draining",
			code: "ServiceUnavailable", title: "Gateway shutting down",
			detail: "this gateway instance began shutting down while the write waited for " +
				"its turn to go to Graph; send it again and another instance will take it",
			retryAfter: time.Second}
		var pe *graphclient.PacerError
		if errors.As(err, &pe) && pe.Sent > 0 {
			f.detail = "this gateway instance began shutting down while the write waited to " +
				"be retried; an earlier attempt reached Graph and failed, so the change may " +
				"have been applied; repeating the same request is safe"
		}
		return f
	case errors.As(err, &wue):
		return failure{status: http.StatusServiceUnavailable, kind: "budget_unavailable",
			code: "ServiceUnavailable", title: "Write budget unavailable",
			detail:     "the shared write budget cannot be read, so no write is sent; retry later",
			retryAfter: 5 * time.Second}
	case errors.As(err, &be):
		return failure{status: http.StatusServiceUnavailable, kind: "circuit_open",
			code: "ServiceUnavailable", title: "Graph is failing",
			detail:     "Graph has failed repeatedly; the gateway is not sending requests for now",
			retryAfter: be.RetryAfter}
	case errors.As(err, &cre):
		return failure{status: http.StatusServiceUnavailable, kind: "no_token",
			code: "ServiceUnavailable", title: "No Graph token",
			detail:     "the gateway cannot get a Graph token; its own credentials need attention",
			retryAfter: 30 * time.Second}
	case errors.As(err, &tre):
		if tre.Timeout {
			return failure{status: http.StatusGatewayTimeout, kind: "upstream_timeout",
				code: "GatewayTimeout", title: "Graph did not answer in time",
				detail: "Graph did not answer within the request's deadline"}
		}
		return failure{status: http.StatusBadGateway, kind: "upstream_unreachable",
			code: "BadGateway", title: "Graph unreachable",
			// A connection can fail after the request went out, so a write's fate is unknown.
			detail: "the gateway could not reach Graph, or the connection failed before Graph " +
				"answered; a change may have been applied, and repeating the same request is safe"}
	case errors.As(err, &lle), errors.As(err, &ule):
		return failure{status: http.StatusBadGateway, kind: "upstream_list", code: "BadGateway",
			title: "Graph list refused", detail: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return failure{status: http.StatusGatewayTimeout, kind: "deadline", code: "GatewayTimeout",
			title: "Deadline exceeded", detail: "the request's deadline passed before Graph answered"}
	}
	return failure{status: http.StatusInternalServerError, kind: "internal", code: "InternalError",
		title: "Internal error", detail: "the gateway failed unexpectedly; the request id identifies it"}
}

// bodyReadError is a failure to receive the request body itself (not a bad body).
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "read request body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

func classifyBodyRead(e *bodyReadError) failure {
	var netErr net.Error
	if errors.As(e.err, &netErr) && netErr.Timeout() {
		return failure{status: http.StatusRequestTimeout, kind: "body_timeout", code: "RequestTimeout",
			title: "Body not received in time", detail: "the request body did not arrive in time"}
	}
	return failure{status: http.StatusBadRequest, kind: "body_incomplete", code: "BadRequest",
		title: "Body incomplete", detail: "the request body ended early or could not be read"}
}

func classifyValidation(ve *validation.Error) failure {
	f := failure{status: http.StatusBadRequest, kind: "validation", code: "BadRequest",
		title: "Invalid request", detail: ve.Detail, fields: ve.Fields}
	switch ve.Kind {
	case validation.TooLarge:
		f.status, f.kind, f.code, f.title = http.StatusRequestEntityTooLarge, "too_large",
			"RequestEntityTooLarge", "Body too large"
	case validation.UnsupportedMediaType:
		f.status, f.kind, f.code, f.title = http.StatusUnsupportedMediaType, "media_type",
			"UnsupportedMediaType", "Unsupported media type"
	case validation.Malformed:
		f.kind, f.title = "malformed", "Malformed JSON body"
	}
	if f.detail == "" {
		f.detail = ve.Error()
	}
	return f
}

// classifyGraph maps Graph's answer: the caller's own mistakes (400, 404, 409 and other 4xx)
// pass through; Graph refusing the gateway's credentials is the gateway's fault (502);
// throttling that outlasted the retries is 429; Graph's own failures are 502.
func classifyGraph(ge *graphclient.GraphError) failure {
	f := failure{status: ge.Status, kind: "upstream", code: ge.Code, upstream: ge,
		title: "Graph refused the request", detail: ge.Message}
	switch {
	case ge.Status == http.StatusUnauthorized || ge.Status == http.StatusForbidden:
		f.status, f.kind, f.code, f.title = http.StatusBadGateway, "upstream_credentials",
			"UpstreamAuthorizationFailed", "Gateway's Graph credentials refused"
		f.detail = "Graph refused the gateway's own credentials (" + strconv.Itoa(ge.Status) +
			" " + ge.Code + ": " + strings.TrimRight(ge.Message, ". ") +
			"); the caller's request was fine. Check the app's " +
			graphclient.WriteRole + " application permission and admin consent."
	case ge.Status == http.StatusTooManyRequests:
		f.kind, f.title = "upstream_throttled", "Graph is throttling"
		f.retryAfter = ge.RetryAfter
		if f.retryAfter <= 0 {
			// Intune sometimes omits Retry-After; a window of its Tunnel limit is 20 s.
			f.retryAfter = 20 * time.Second
		}
	case ge.Status >= 500:
		f.status, f.kind, f.title = http.StatusBadGateway, "upstream_failed", "Graph failed"
		f.retryAfter = ge.RetryAfter
		// Intune has been seen to apply a change and still answer 500, so the caller cannot
		// know; a PATCH carries the whole new value, so sending it again is safe.
		f.detail = "Graph answered " + strconv.Itoa(ge.Status) + " " + ge.Code + ": " +
			strings.TrimRight(ge.Message, ". ") +
			". A change may have been applied anyway; repeating the same request is safe."
	}
	return f
}

// fail answers the request with err rendered for its route family, and records the outcome.
func (x *exchange) fail(err error) {
	f := classify(err)
	switch {
	case f.status == http.StatusInternalServerError:
		x.log().Error("request failed unexpectedly", zap.Error(err))
	case f.status < 499:
		x.log().Info("request refused", zap.Int("status", f.status), zap.String("reason", f.kind),
			zap.String("detail", f.detail))
	default:
		x.log().Warn("request failed", zap.Int("status", f.status), zap.String("reason", f.kind),
			zap.String("detail", f.detail))
	}
	x.failure = &f

	h := x.c.Writer.Header()
	if f.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((f.retryAfter+time.Second-1)/time.Second)))
	}
	if f.authenticate != "" {
		h.Set("WWW-Authenticate", f.authenticate)
	}
	if f.upstream != nil && f.upstream.RequestID != "" {
		h.Set("Graph-Request-Id", f.upstream.RequestID)
	}
	if x.family == familyGraph {
		x.c.Data(f.status, "application/json", x.graphErrorBody(f))
		return
	}
	x.c.Data(f.status, "application/problem+json", x.problemBody(f))
}

// problem is an RFC 9457 problem document with the gateway's extension members.
type problem struct {
	Type      string                  `json:"type"`
	Title     string                  `json:"title"`
	Status    int                     `json:"status"`
	Detail    string                  `json:"detail,omitempty"`
	Instance  string                  `json:"instance,omitempty"`
	RequestID string                  `json:"request_id"`
	Errors    []validation.FieldError `json:"errors,omitempty"`
	Upstream  *upstreamProblem        `json:"upstream,omitempty"`
}

type upstreamProblem struct {
	Status    int    `json:"status"`
	Code      string `json:"code,omitempty"`
	Message   string `json:"message,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

func (x *exchange) problemBody(f failure) []byte {
	p := problem{
		Type:      "urn:tunnelgateway:problem:" + f.kind,
		Title:     f.title,
		Status:    f.status,
		Detail:    f.detail,
		Instance:  audit.TruncateUTF8(x.c.Request.URL.EscapedPath(), audit.MaxRequestURIBytes),
		RequestID: x.requestID,
		Errors:    f.fields,
	}
	if u := f.upstream; u != nil {
		p.Upstream = &upstreamProblem{Status: u.Status, Code: u.Code, Message: u.Message,
			RequestID: u.RequestID}
	}
	return marshalAnswer(p)
}

type graphError struct {
	Error graphErrorMain `json:"error"`
}

type graphErrorMain struct {
	Code       string             `json:"code"`
	Message    string             `json:"message"`
	Target     string             `json:"target,omitempty"`
	Details    []graphErrorDetail `json:"details,omitempty"`
	InnerError graphInnerError    `json:"innerError"`
}

type graphErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target,omitempty"`
}

type graphInnerError struct {
	Date            string `json:"date"`
	RequestID       string `json:"request-id"`
	ClientRequestID string `json:"client-request-id"`
}

// graphErrorBody renders f in Graph's error shape. An error Graph itself sent for the caller's
// mistake is passed on as Graph wrote it, so Graph SDK code sees exactly what Graph says.
func (x *exchange) graphErrorBody(f failure) []byte {
	if u := f.upstream; u != nil && f.status == u.Status && json.Valid(u.Body) {
		return u.Body
	}
	g := graphError{Error: graphErrorMain{
		Code:    f.code,
		Message: f.detail,
		InnerError: graphInnerError{
			Date:            time.Now().UTC().Format("2006-01-02T15:04:05"),
			RequestID:       x.requestID,
			ClientRequestID: x.clientRequestID(),
		},
	}}
	if f.upstream != nil && f.upstream.RequestID != "" {
		g.Error.InnerError.RequestID = f.upstream.RequestID
	}
	for _, fe := range f.fields {
		g.Error.Details = append(g.Error.Details, graphErrorDetail{
			Code: fe.Rule, Message: fe.Detail, Target: fe.Pointer})
	}
	if len(f.fields) == 1 {
		g.Error.Target = f.fields[0].Pointer
	}
	if f.status == http.StatusBadRequest && len(f.fields) > 0 && f.detail == "" {
		g.Error.Message = f.fields[0].Detail
	}
	return marshalAnswer(g)
}

// abortWith is fail for middleware: it answers and stops the handler chain.
func (x *exchange) abortWith(err error) {
	x.fail(err)
	x.c.Abort()
}

// marshalAnswer encodes an error answer. Messages quote URLs from Graph, so HTML escaping
// (& as \u0026) would only make them harder to read; nothing here is served as HTML.
func marshalAnswer(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // plain structs of strings and numbers: encoding cannot fail
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
