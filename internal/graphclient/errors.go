package graphclient

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// GraphError is an answer from Graph outside 2xx, after every retry the policy allowed.
type GraphError struct {
	Status int
	// Code and Message come from Graph's error body; Message is unwrapped from Intune's form,
	// where it is itself a JSON document.
	Code    string
	Message string
	// RequestID is Graph's request-id, the id Microsoft support asks for.
	RequestID string
	// RetryAfter is Graph's Retry-After, zero when it sent none.
	RetryAfter time.Duration
	// Body is Graph's error body as received, for the Graph-compatible route.
	Body     []byte
	Attempts int
}

func (e *GraphError) Error() string {
	return fmt.Sprintf("graph answered %d %s: %s (request-id %s)",
		e.Status, e.Code, e.Message, e.RequestID)
}

// TransportError means Graph gave no answer: the connection failed or an attempt timed out.
type TransportError struct {
	Timeout  bool
	Attempts int
	Err      error
}

func (e *TransportError) Error() string {
	if e.Timeout {
		return fmt.Sprintf("graph did not answer in time after %d attempts: %v", e.Attempts, e.Err)
	}
	return fmt.Sprintf("graph unreachable after %d attempts: %v", e.Attempts, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// CredentialError means no Graph token could be had.
type CredentialError struct{ Err error }

func (e *CredentialError) Error() string { return "acquire graph token: " + e.Err.Error() }
func (e *CredentialError) Unwrap() error { return e.Err }

// ListTooLongError means a list had more pages than the configured bound; the gateway refuses
// to answer with a silently truncated list.
type ListTooLongError struct{ Pages int }

func (e *ListTooLongError) Error() string {
	return fmt.Sprintf("graph list has more than %d pages; raise GATEWAY_MAX_LIST_PAGES", e.Pages)
}

// UnexpectedLinkError means Graph sent an @odata.nextLink outside the configured Graph base URL;
// the gateway never follows a link to another host or path.
type UnexpectedLinkError struct{ Link string }

func (e *UnexpectedLinkError) Error() string {
	return "graph sent a nextLink outside the configured base URL; not followed"
}

// decodeGraphError reads Graph's error body. Intune services put a JSON document with a
// "Message" field inside error.message; that inner message is what a person needs.
func decodeGraphError(resp *http.Response, body []byte) *GraphError {
	e := &GraphError{
		Status:     resp.StatusCode,
		RequestID:  resp.Header.Get("request-id"),
		RetryAfter: retryAfter(resp.Header, time.Now()),
		Body:       body,
	}
	var doc struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				RequestID string `json:"request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &doc) != nil || doc.Error.Code == "" {
		e.Code = http.StatusText(resp.StatusCode)
		e.Message = "graph answered without its usual error body"
		return e
	}
	if e.RequestID == "" {
		// Some front doors drop the header; the body's copy is the same id.
		e.RequestID = doc.Error.InnerError.RequestID
	}
	e.Code = doc.Error.Code
	e.Message = unwrapIntuneMessage(doc.Error.Message)
	return e
}

func unwrapIntuneMessage(msg string) string {
	trimmed := strings.TrimSpace(msg)
	if !strings.HasPrefix(trimmed, "{") {
		return msg
	}
	var inner struct {
		Message string `json:"Message"`
	}
	if json.Unmarshal([]byte(trimmed), &inner) != nil || inner.Message == "" {
		return msg
	}
	return inner.Message
}

// retryAfter reads Retry-After as delay-seconds or an HTTP date (RFC 9110, section 10.2.3).
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
