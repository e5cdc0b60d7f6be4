package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/policy"
	"tunnelgateway/internal/validation"
)

// patchServer changes one tunnel server. Nothing reaches Graph before its RequestReceived
// event is durable; every outcome, refused or not, ends in a ResponseComplete event.
func (s *server) patchServer(c *gin.Context) {
	x := exchangeOf(c)
	siteID, serverID := pathIDs(c)

	// Parse: ids first, so a bad id is refused before anything else is read.
	if err := checkIDs(siteID, serverID); err != nil {
		s.refuse(x, err)
		return
	}

	// Validate the body against the update schema.
	raw, err := validation.ReadBody(c.Request.Header, c.Request.Body, s.MaxBodyBytes)
	if err != nil {
		var ve *validation.Error
		if !errors.As(err, &ve) && !errors.Is(err, context.Canceled) {
			err = &bodyReadError{err: err}
		}
		s.refuse(x, err)
		return
	}
	update, err := s.Validator.Update(raw, serverID)
	if err != nil {
		s.refuse(x, err)
		return
	}

	// Authorize: the caller may change these properties on this site.
	if err := s.Policy.AuthorizeWrite(x.caller, siteID, update.Properties); err != nil {
		s.refuse(x, err)
		return
	}

	// Audit, durably, before Graph hears of it. If the trail cannot record, Graph is not called.
	x.event = s.newEvent(x, siteID, serverID)
	x.event.Level = audit.LevelRequest
	x.event.RequestObject = update.Values
	if err := s.Audit.RequestReceived(c.Request.Context(), x.event); err != nil {
		x.fail(err)
		s.complete(x)
		return
	}

	// Forward, then answer with Graph's status and body.
	resp, err := s.Graph.PatchServer(c.Request.Context(), siteID, serverID, update.Forward, x.requestID)
	s.answer(x, resp, err)
	if x.failure != nil && x.failure.status == statusCallerGone {
		// The PATCH may already have reached Graph; the trail must not read as "not applied".
		x.failure.detail = "the caller went away while the change was on its way to Graph; " +
			"it may have been applied"
	}
	s.complete(x)
}

// pathIDs returns the path's site and server ids in lower case: GUIDs compare without regard
// to case, and one form keeps a server under one id in the audit trail and at Graph.
func pathIDs(c *gin.Context) (siteID, serverID string) {
	return strings.ToLower(c.Param("siteId")), strings.ToLower(c.Param("serverId"))
}

func checkIDs(siteID, serverID string) error {
	var fields []validation.FieldError
	for _, id := range []struct{ name, value string }{{"siteId", siteID}, {"serverId", serverID}} {
		if id.value != "" && !validation.ValidID(id.value) {
			fields = append(fields, validation.FieldError{
				Pointer: "/path/" + id.name,
				Rule:    validation.RulePattern,
				Detail:  id.name + " must be a GUID (8-4-4-4-12 hexadecimal digits)",
			})
		}
	}
	if fields == nil {
		return nil
	}
	return &validation.Error{Kind: validation.Invalid, Detail: "the path holds an invalid id",
		Fields: fields}
}

// answer writes Graph's success as it came, or the failure, and notes what Graph said.
func (s *server) answer(x *exchange, resp *graphclient.Response, err error) {
	if err != nil {
		x.upstream = upstreamOf(err)
		x.fail(err)
		return
	}
	x.upstream = &audit.Upstream{RequestID: resp.RequestID, Attempts: resp.Attempts,
		Status: resp.Status}
	if resp.RequestID != "" {
		x.c.Header(headerGraphRequest, resp.RequestID)
		if x.family == familyGraph {
			x.c.Header("request-id", resp.RequestID)
		}
	}
	if resp.Status == http.StatusNoContent || len(resp.Body) == 0 {
		x.c.Status(resp.Status)
		x.c.Writer.WriteHeaderNow()
		return
	}
	// Graph's body is UTF-8 JSON; the same media type as the gateway's own JSON answers.
	x.c.Data(resp.Status, "application/json; charset=utf-8", resp.Body)
}

func upstreamOf(err error) *audit.Upstream {
	var ge *graphclient.GraphError
	var te *graphclient.TransportError
	var pe *graphclient.PacerError
	switch {
	case errors.As(err, &ge):
		return &audit.Upstream{RequestID: ge.RequestID, Code: ge.Code, Attempts: ge.Attempts,
			Status: ge.Status}
	case errors.As(err, &te):
		return &audit.Upstream{Attempts: te.Attempts}
	case errors.As(err, &pe) && pe.Sent > 0:
		return &audit.Upstream{Attempts: pe.Sent}
	}
	return nil
}

// refuse answers a request turned away before Graph was called, and audits it at the
// metadata level.
func (s *server) refuse(x *exchange, err error) {
	s.countRefusal(err)
	s.auditRejected(x, err)
	x.fail(err)
}

// countRefusal counts a refused body as a validation failure and a refused caller as a caller
// denial. Anything else (a body that never fully arrived, a caller that went away) says nothing
// about the caller or its body, so it counts only in requests_total, under its status.
func (s *server) countRefusal(err error) {
	var (
		ve *validation.Error
		ce *callers.Error
		pd *policy.Denied
	)
	switch {
	case errors.As(err, &ve):
		for _, f := range ve.Fields {
			s.Metrics.ValidationFailed(f.Pointer, f.Rule)
		}
		if len(ve.Fields) == 0 {
			// No field to name (a body too large, a wrong media type): the failure's kind,
			// in the same snake_case as the rules, is the label.
			s.Metrics.ValidationFailed("", classifyValidation(ve).kind)
		}
	case errors.As(err, &ce), errors.As(err, &pd):
		s.Metrics.CallerDenied(classify(err).kind)
	}
}

// auditRejected records a request refused before Graph: one ResponseComplete event at the
// metadata level, with the reason as an annotation.
func (s *server) auditRejected(x *exchange, err error) {
	siteID, serverID := pathIDs(x.c)
	x.event = s.newEvent(x, siteID, serverID)
	f := classify(err)
	x.event.Annotations = map[string]string{annotationFor(f): reasonText(err, f)}
	x.failure = &f
	s.finishEvent(x, f.status)
}

// complete writes the ResponseComplete event of a request that got past the checks.
func (s *server) complete(x *exchange) {
	status := x.c.Writer.Status()
	if x.failure != nil {
		x.event.Annotations = map[string]string{audit.AnnotationError: x.failure.kind}
	}
	s.finishEvent(x, status)
}

func (s *server) finishEvent(x *exchange, status int) {
	e := *x.event
	e.Stage = audit.StageResponseComplete
	e.StageTimestamp = time.Now().UTC()
	e.LatencySeconds = e.StageTimestamp.Sub(e.RequestReceivedTimestamp).Seconds()
	e.ResponseStatus = &audit.ResponseStatus{Code: status}
	if x.failure != nil {
		e.ResponseStatus.Code = x.failure.status
		e.ResponseStatus.Reason = x.failure.kind
		e.ResponseStatus.Message = x.failure.detail
	}
	e.Upstream = x.upstream
	if err := s.Audit.ResponseComplete(&e); err != nil {
		x.log().Error("failed to write audit event", zap.String("stage", string(e.Stage)),
			zap.Error(err))
	}
}

func (s *server) newEvent(x *exchange, siteID, serverID string) *audit.Event {
	e := audit.NewEvent(x.c.Request, x.requestID, x.route, x.start, s.TrustedProxies)
	if x.caller.ID != "" {
		// An Entra caller the policy does not list has no name; its appId still says who it is.
		e.User = audit.User{Kind: x.caller.Kind, Name: x.caller.Name}
		if x.caller.Kind == audit.UserKindEntra {
			e.User.AppID = x.caller.ID
		}
	}
	// Ids that failed the pattern stay out of the object reference; requestURI still shows them.
	ref := &audit.ObjectRef{}
	if validation.ValidID(siteID) {
		ref.SiteID = siteID
	}
	if validation.ValidID(serverID) {
		ref.ServerID = serverID
	}
	if *ref != (audit.ObjectRef{}) {
		e.ObjectRef = ref
	}
	return e
}

func annotationFor(f failure) string {
	switch f.status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return audit.AnnotationValidation
	case http.StatusUnauthorized, http.StatusForbidden:
		return audit.AnnotationRefused
	}
	return audit.AnnotationError
}

// reasonText is the short, fixed-form reason recorded in the audit trail: pointers and rules
// for validation, the refused property or site for the policy, the reason slug otherwise.
func reasonText(err error, f failure) string {
	var ve *validation.Error
	if errors.As(err, &ve) && len(ve.Fields) > 0 {
		var b strings.Builder
		for i, fe := range ve.Fields {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(auditPointer(fe.Pointer) + " " + fe.Rule)
		}
		return audit.TruncateUTF8(b.String(), maxReasonBytes)
	}
	return audit.TruncateUTF8(f.kind+": "+f.detail, maxReasonBytes)
}

// maxReasonBytes and maxPointerBytes bound what a refused request writes into the audit trail:
// names a caller made up are worth recording, but not at the length the caller chose.
const (
	maxReasonBytes  = 1024
	maxPointerBytes = 128
)

// auditPointer is a field error's pointer as the audit trail records it. A query string's
// parameter names are the caller's to choose and may carry a secret (a key pasted into the
// URL), so the trail notes only that the query was refused; the caller's answer names them.
func auditPointer(pointer string) string {
	if strings.HasPrefix(pointer, "/query/") {
		return "/query"
	}
	return audit.TruncateUTF8(pointer, maxPointerBytes)
}
