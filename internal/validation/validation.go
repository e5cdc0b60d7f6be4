// Package validation reads and checks the body of a tunnel server update (content type,
// encoding, size, strict JSON, the MicrosoftTunnelServerUpdate schema of openapi.yaml and the
// few rules a schema cannot state) and the path ids, before anything reaches Graph.
package validation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"tunnelgateway"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// ODataType is the only @odata.type a body may carry, and the one added when it carries none.
const ODataType = "#microsoft.graph.microsoftTunnelServer"

// Names with rules of their own: neither is a change to the server.
const (
	odataTypeName   = "@odata.type"
	idName          = "id"
	checkinTimeName = "lastCheckinDateTime"
)

func identityName(name string) bool { return name == odataTypeName || name == idName }

// Validator checks update bodies. It is built once from tunnelgateway.OpenAPI and is safe for
// concurrent use.
type Validator struct {
	spec *compiledSpec
}

// Update is an accepted body.
type Update struct {
	// Properties are the sorted names of the properties that change: neither @odata.type nor
	// id is a change.
	Properties []string
	// Values maps each name of Properties to its new value.
	Values map[string]any
	// Forward is the body to send to Graph: @odata.type first (added when absent), then id when
	// the caller sent it, then Properties in order.
	Forward []byte
}

// New compiles the MicrosoftTunnelServerUpdate schema of the embedded openapi.yaml.
func New() (*Validator, error) {
	return newFromSpec(tunnelgateway.OpenAPI)
}

func newFromSpec(spec []byte) (*Validator, error) {
	cs, err := compileSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("build validator: %w", err)
	}
	return &Validator{spec: cs}, nil
}

// Update checks one PATCH body for server serverID; on success it returns the properties to
// change and the body to forward to Graph. Every problem is reported at once in an *Error of
// kind Malformed (the JSON itself) or Invalid (the rules).
func (v *Validator) Update(body []byte, serverID string) (Update, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return Update{}, err
	}
	if len(obj) > v.spec.maxMembers {
		return Update{}, newError(Invalid, problemCount(1), FieldError{Rule: RuleTooManyMembers,
			Detail: v.spec.tooManyDetail(len(obj))})
	}

	var fields []FieldError
	if err := v.spec.schema.Validate(obj); err != nil {
		var verr *jsonschema.ValidationError
		if !errors.As(err, &verr) {
			return Update{}, fmt.Errorf("validate update: %w", err)
		}
		fields = v.spec.translate(verr, obj)
	}
	fields = append(fields, handRules(obj, serverID, fields)...)
	if len(fields) == 0 && !changesSomething(obj) {
		fields = append(fields, FieldError{Rule: RuleEmptyUpdate,
			Detail: v.spec.emptyUpdateDetail()})
	}
	if len(fields) > 0 {
		sortFields(fields)
		return Update{}, newError(Invalid, problemCount(len(fields)), fields...)
	}
	return accepted(obj), nil
}

// handRules checks what the schema cannot: id against the path, and that a date-time the
// pattern let through names a real instant Graph can store. A member the schema already
// faulted is not checked again.
func handRules(obj map[string]any, serverID string, faulted []FieldError) []FieldError {
	var fields []FieldError
	hasFault := func(ptr string) bool {
		return slices.ContainsFunc(faulted, func(f FieldError) bool { return f.Pointer == ptr })
	}
	if id, ok := obj[idName].(string); ok && !hasFault("/"+idName) &&
		!strings.EqualFold(id, serverID) {
		fields = append(fields, FieldError{Pointer: "/" + idName, Rule: RuleMismatch,
			Detail: fmt.Sprintf("must equal the server id in the path, %s (GUIDs compare "+
				"without regard to case), got %s", serverID, quoteValue(id))})
	}
	if s, ok := obj[checkinTimeName].(string); ok && !hasFault("/"+checkinTimeName) {
		if detail := calendarProblem(s); detail != "" {
			fields = append(fields, FieldError{Pointer: "/" + checkinTimeName,
				Rule: RuleCalendar, Detail: detail})
		}
	}
	return fields
}

// calendarProblem says why s, which has the form of an RFC 3339 date-time, is not a real
// one (February 30, say), or returns "". Graph's DateTimeOffset also needs the instant and the
// local time to fall within years 1 to 9999.
func calendarProblem(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Sprintf("is not a real calendar time: %s", parseReason(err))
	}
	if t.Year() < 1 || t.UTC().Year() < 1 || t.UTC().Year() > 9999 {
		return "must fall within years 0001 to 9999, in UTC as well as in its own offset"
	}
	return ""
}

func parseReason(err error) string {
	var perr *time.ParseError
	if errors.As(err, &perr) && perr.Message != "" {
		return strings.TrimPrefix(perr.Message, ": ")
	}
	return err.Error()
}

func changesSomething(obj map[string]any) bool {
	for name := range obj {
		if !identityName(name) {
			return true
		}
	}
	return false
}

func accepted(obj map[string]any) Update {
	u := Update{Properties: make([]string, 0, len(obj)), Values: make(map[string]any, len(obj))}
	for name, value := range obj {
		if !identityName(name) {
			u.Properties = append(u.Properties, name)
			u.Values[name] = value
		}
	}
	slices.Sort(u.Properties)

	u.Forward = forwardBody(obj, u)
	return u
}

// forwardBody writes the body for Graph. Names are written as they are: they come from the
// schema's property list, which compileSpec checked to need no escaping.
func forwardBody(obj map[string]any, u Update) []byte {
	var b bytes.Buffer
	b.Grow(64 + 2*len(u.Properties)*32)
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // the body goes to Graph, not into a page
	value := func(v any) {
		_ = enc.Encode(v) // strings, numbers and booleans always encode
		b.Truncate(b.Len() - 1)
	}

	b.WriteString(`{"@odata.type":`)
	value(ODataType)
	if id, ok := obj[idName]; ok {
		b.WriteString(`,"id":`)
		value(id)
	}
	for _, name := range u.Properties {
		b.WriteString(`,"`)
		b.WriteString(name)
		b.WriteString(`":`)
		value(u.Values[name])
	}
	b.WriteByte('}')
	return b.Bytes()
}

func sortFields(fields []FieldError) {
	slices.SortStableFunc(fields, func(a, b FieldError) int {
		if c := strings.Compare(a.Pointer, b.Pointer); c != 0 {
			return c
		}
		return strings.Compare(a.Rule, b.Rule)
	})
}

func problemCount(n int) string {
	if n == 1 {
		return "1 problem in the request body"
	}
	return fmt.Sprintf("%d problems in the request body", n)
}
