package graphsim

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// graphError is an error the Graph side answers with Graph's error body.
type graphError struct {
	status  int
	code    string
	message string
	// intune marks errors raised by the Intune service behind Graph; with IntuneErrors their
	// message becomes Intune's JSON document in a string.
	intune bool
	// apiErrorPhrase and sourceService fill the document's CustomApiErrorPhrase and
	// ErrorSourceService, which Intune leaves empty except for some service failures.
	apiErrorPhrase string
	sourceService  string
}

// intuneServiceName is the Intune microservice the simulator pretends serves Microsoft Tunnel.
const intuneServiceName = "StatelessMicrosoftTunnelFEService"

func newGraphError(status int, code, message string) *graphError {
	return &graphError{status: status, code: code, message: message}
}

func newIntuneError(status int, code, message string) *graphError {
	return &graphError{status: status, code: code, message: message, intune: true}
}

type graphErrorBody struct {
	Error graphErrorDetail `json:"error"`
}

type graphErrorDetail struct {
	Code       string          `json:"code"`
	Message    string          `json:"message"`
	InnerError innerErrorField `json:"innerError"`
}

type innerErrorField struct {
	Date            string `json:"date"`
	RequestID       string `json:"request-id"`
	ClientRequestID string `json:"client-request-id,omitempty"`
}

// intuneMessage is the document Intune puts, serialized with CRLF indentation, in message.
type intuneMessage struct {
	Version              int     `json:"_version"`
	Message              string  `json:"Message"`
	CustomAPIErrorPhrase string  `json:"CustomApiErrorPhrase"`
	RetryAfter           *string `json:"RetryAfter"`
	ErrorSourceService   string  `json:"ErrorSourceService"`
	HTTPHeaders          string  `json:"HttpHeaders"`
}

// writeGraphError answers with Graph's error shape. request-id and client-request-id were
// already set as headers by the request middleware.
func (s *Simulator) writeGraphError(w http.ResponseWriter, r *http.Request, gerr *graphError) {
	message := gerr.message
	if gerr.intune && s.responses.get().IntuneErrors {
		message = intuneForm(gerr, w.Header().Get("request-id"), r.URL.Path)
	}
	body := graphErrorBody{Error: graphErrorDetail{
		Code:    gerr.code,
		Message: message,
		InnerError: innerErrorField{
			Date:            time.Now().UTC().Format("2006-01-02T15:04:05"),
			RequestID:       w.Header().Get("request-id"),
			ClientRequestID: w.Header().Get("client-request-id"),
		},
	}}
	writeJSON(w, gerr.status, body)
}

// intuneForm wraps a message the way Intune's front end does: a JSON document naming an
// operation id, the activity id (Graph's request id), the internal service URL and, when there
// is one, the API error phrase again at the end of Message.
func intuneForm(gerr *graphError, requestID, path string) string {
	internalURL := "https://fef.simulator.manage.microsoft.com/" + intuneServiceName +
		strings.TrimPrefix(path, "/beta") + "?api-version=5023-05-01"
	message := gerr.message + " - Operation ID (for customer support): " + uuid.NewString() +
		" - Activity ID: " + requestID + " - Url: " + internalURL
	if gerr.apiErrorPhrase != "" {
		message += " - CustomApiErrorPhrase: " + gerr.apiErrorPhrase
	}
	doc := intuneMessage{
		Version:              3,
		Message:              message,
		CustomAPIErrorPhrase: gerr.apiErrorPhrase,
		ErrorSourceService:   gerr.sourceService,
		HTTPHeaders:          "{}",
	}
	out, _ := json.MarshalIndent(doc, "", "  ") // cannot fail: plain strings and ints
	return strings.ReplaceAll(string(out), "\n", "\r\n")
}

// writeJSON writes v as the JSON body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

func newGzipReader(r io.Reader) (io.ReadCloser, error) {
	return gzip.NewReader(r)
}
