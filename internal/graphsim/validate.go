package graphsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
)

const (
	serverType     = "microsoft.graph.microsoftTunnelServer"
	healthEnumType = "microsoft.graph.microsoftTunnelServerHealthStatus"

	// badPayloadMessage is what Graph answers when it cannot read a JSON object from the body.
	badPayloadMessage = "Unable to read JSON request payload. Please ensure Content-Type header " +
		"is set and payload is of valid JSON format."
)

// healthStatuses are the values the Graph page lists for tunnelServerHealthStatus. Enum
// constants are matched case-sensitively, as OData does.
var healthStatuses = map[string]bool{
	"unknown": true, "healthy": true, "unhealthy": true, "warning": true, "offline": true,
	"upgradeInProgress": true, "upgradeFailed": true,
}

// edmDateTimeOffset is the ISO 8601 form OData accepts for Edm.DateTimeOffset: a time zone
// designator is mandatory and fractions have at most 7 digits (100 ns ticks).
var edmDateTimeOffset = regexp.MustCompile(
	`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$`)

// serverProperty describes one structural property of microsoftTunnelServer.
type serverProperty struct {
	edmType  string // as OData names it in messages
	nullable bool
	check    func(name, value string) *graphError // extra check of a string value
}

var serverProperties = map[string]serverProperty{
	"id":                       {edmType: "Edm.String"},
	"displayName":              {edmType: "Edm.String"},
	"tunnelServerHealthStatus": {edmType: healthEnumType, check: checkHealthStatus},
	"lastCheckinDateTime":      {edmType: "Edm.DateTimeOffset", check: checkDateTimeOffset},
	"agentImageDigest":         {edmType: "Edm.String", nullable: true},
	"serverImageDigest":        {edmType: "Edm.String", nullable: true},
}

// readBody reads a request body, inflating gzip, bounded to limit bytes both before and after
// decompression.
func readBody(r *http.Request, limit int64) ([]byte, *graphError) {
	var reader io.Reader = io.LimitReader(r.Body, limit+1)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		gz, err := newGzipReader(reader)
		if err != nil {
			return nil, newGraphError(http.StatusBadRequest, "BadRequest", badPayloadMessage)
		}
		defer gz.Close()
		reader = io.LimitReader(gz, limit+1)
	default:
		return nil, newGraphError(http.StatusUnsupportedMediaType, "UnsupportedMediaType",
			fmt.Sprintf("The Content-Encoding '%s' is not supported.", enc))
	}
	body, err := io.ReadAll(reader)
	if err != nil {
		return nil, newGraphError(http.StatusBadRequest, "BadRequest", badPayloadMessage)
	}
	if int64(len(body)) > limit {
		return nil, newGraphError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
			fmt.Sprintf("The request body exceeds the maximum of %d bytes.", limit))
	}
	return body, nil
}

// checkJSONContentType accepts application/json with any parameters.
func checkJSONContentType(r *http.Request) *graphError {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	mediaType, _, _ := strings.Cut(ct, ";")
	if strings.TrimSpace(mediaType) != "application/json" {
		return newGraphError(http.StatusBadRequest, "BadRequest", badPayloadMessage)
	}
	return nil
}

// parseServerPatch validates a PATCH body the way the OData reader in front of Intune does:
// property by property in body order, stopping at the first problem. pathID is the server id
// from the URL; an id in the body must match it. It returns the properties to merge.
func parseServerPatch(body []byte, pathID string) (map[string]any, *graphError) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, newGraphError(http.StatusBadRequest, "BadRequest", badPayloadMessage)
	}
	props := make(map[string]any)
	seen := make(map[string]bool)
	for dec.More() {
		name, raw, gerr := nextMember(dec)
		if gerr != nil {
			return nil, gerr
		}
		if seen[name] {
			return nil, badRequest(fmt.Sprintf(
				"Multiple properties with the name '%s' were detected in an entry.", name))
		}
		seen[name] = true
		if gerr := readMember(props, name, raw, pathID); gerr != nil {
			return nil, gerr
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, newGraphError(http.StatusBadRequest, "BadRequest", badPayloadMessage)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, newGraphError(http.StatusBadRequest, "BadRequest", badPayloadMessage)
	}
	return props, nil
}

// nextMember reads one "name": value pair.
func nextMember(dec *json.Decoder) (string, json.RawMessage, *graphError) {
	tok, err := dec.Token()
	name, ok := tok.(string)
	if err != nil || !ok {
		return "", nil, newGraphError(http.StatusBadRequest, "BadRequest", badPayloadMessage)
	}
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return "", nil, newGraphError(http.StatusBadRequest, "BadRequest", badPayloadMessage)
	}
	return name, raw, nil
}

// readMember validates one member and, when it is a property, stores its value in props.
func readMember(props map[string]any, name string, raw json.RawMessage, pathID string) *graphError {
	switch {
	case name == "@odata.type":
		return checkODataType(raw)
	case name == "@odata.context":
		return badRequest("The annotation 'odata.context' was found. This annotation is either " +
			"not recognized or not expected at the current position.")
	case strings.Contains(name, "@"):
		return nil // other instance and property annotations are read and ignored
	}
	prop, known := serverProperties[name]
	if !known {
		return badRequest(fmt.Sprintf("The property '%s' does not exist on type '%s'. Make sure "+
			"to only use property names that are defined by the type or mark the type as open "+
			"type.", name, serverType))
	}
	value, gerr := primitiveValue(name, prop, raw)
	if gerr != nil {
		return gerr
	}
	if name == "id" && !strings.EqualFold(value.(string), pathID) {
		return badRequest(fmt.Sprintf("The key value '%s' in the request payload does not match "+
			"the key '%s' in the request URI.", value, pathID))
	}
	props[name] = value
	return nil
}

// primitiveValue converts raw to the property's type: a string, or nil where nullable.
func primitiveValue(name string, prop serverProperty, raw json.RawMessage) (any, *graphError) {
	trimmed := bytes.TrimSpace(raw)
	switch trimmed[0] {
	case 'n':
		if prop.nullable {
			return nil, nil
		}
		t := prop.edmType + "[Nullable=False]"
		return nil, newGraphError(http.StatusBadRequest, "ModelValidationFailure", fmt.Sprintf(
			"A null value was found for the property named '%s', which has the expected type "+
				"'%s'. The expected type '%s' does not allow null values.", name, t, t))
	case '{', '[':
		node := map[byte]string{'{': "StartObject", '[': "StartArray"}[trimmed[0]]
		return nil, badRequest(fmt.Sprintf("An unexpected '%s' node was found for property "+
			"named '%s' when reading from the JSON reader. A 'PrimitiveValue' node was expected.",
			node, name))
	case '"':
	default:
		return nil, badRequest(fmt.Sprintf("Cannot convert a primitive value to the expected "+
			"type '%s'. See the inner exception for more details.", prop.edmType))
	}
	var s string
	if err := json.Unmarshal(trimmed, &s); err != nil {
		return nil, newGraphError(http.StatusBadRequest, "BadRequest", badPayloadMessage)
	}
	if prop.check != nil {
		if gerr := prop.check(name, s); gerr != nil {
			return nil, gerr
		}
	}
	return s, nil
}

// checkODataType accepts the server type, with or without its leading '#'.
func checkODataType(raw json.RawMessage) *graphError {
	var t string
	if err := json.Unmarshal(raw, &t); err != nil {
		return badRequest("The value of the 'odata.type' annotation must be a string.")
	}
	name := strings.TrimPrefix(t, "#")
	switch {
	case name == serverType:
		return nil
	case strings.HasPrefix(name, "microsoft.graph."):
		return badRequest(fmt.Sprintf("An entry with type '%s' was found, but it is not "+
			"assignable to the expected type '%s'. The type specified in the entry must be "+
			"equal to either the expected type or a derived type.", name, serverType))
	default:
		return badRequest(fmt.Sprintf("A type named '%s' could not be resolved by the model. "+
			"When a model is available, each type name must resolve to a valid type.", name))
	}
}

func checkHealthStatus(_, value string) *graphError {
	if healthStatuses[value] {
		return nil
	}
	return badRequest(fmt.Sprintf("Requested value '%s' was not found.", value))
}

func checkDateTimeOffset(_, value string) *graphError {
	if edmDateTimeOffset.MatchString(value) && validCalendarTime(value) {
		return nil
	}
	return newGraphError(http.StatusBadRequest, "invalidRequest", fmt.Sprintf(
		"[item] Cannot convert the literal '%s' to the expected type 'Edm.DateTimeOffset'.", value))
}

// validCalendarTime rejects well-shaped literals naming impossible dates or times.
func validCalendarTime(value string) bool {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00"} {
		if _, err := time.Parse(layout, value); err == nil {
			return true
		}
	}
	return false
}

func badRequest(message string) *graphError {
	return newGraphError(http.StatusBadRequest, "BadRequest", message)
}
