package validation

import (
	"fmt"
	"strings"
)

// Kind says which class of problem an Error reports; internal/handlers maps each to one status.
type Kind int

const (
	// Malformed: the body is not one well-formed JSON object (syntax, UTF-8, duplicate names,
	// trailing data, depth, gzip stream). Answered with 400.
	Malformed Kind = iota + 1
	// Invalid: the body is well-formed JSON but breaks a rule of the update schema, or a path id
	// is not a GUID. Answered with 400.
	Invalid
	// TooLarge: the body is over the limit on the wire or after gzip decoding. Answered with 413.
	TooLarge
	// UnsupportedMediaType: the content type is not JSON or the content encoding is neither
	// identity nor gzip. Answered with 415.
	UnsupportedMediaType
)

// String names the kind in lowercase words, as error messages use it.
func (k Kind) String() string {
	switch k {
	case Malformed:
		return "malformed body"
	case Invalid:
		return "invalid request"
	case TooLarge:
		return "body too large"
	case UnsupportedMediaType:
		return "unsupported media type"
	default:
		return fmt.Sprintf("kind(%d)", int(k))
	}
}

// Rule names carried by FieldError.Rule. They are part of the API (openapi.yaml lists them in
// FieldError.rule), so they never change once published.
const (
	RuleSyntax          = "syntax"
	RuleNotObject       = "not_object"
	RuleTrailingData    = "trailing_data"
	RuleDepth           = "depth"
	RuleUTF8            = "utf8"
	RuleDuplicateKey    = "duplicate_key"
	RuleGzip            = "gzip"
	RuleUnknownProperty = "unknown_property"
	RuleReadOnly        = "read_only"
	RuleType            = "type"
	RuleNull            = "null"
	RuleConst           = "const"
	RuleEnum            = "enum"
	RuleMinLength       = "min_length"
	RuleMaxLength       = "max_length"
	RuleNotBlank        = "not_blank"
	RuleControlChar     = "control_character"
	RuleTooManyMembers  = "too_many_members"
	RuleFormat          = "format"
	RulePattern         = "pattern"
	RuleCalendar        = "calendar"
	RuleMismatch        = "mismatch"
	RuleEmptyUpdate     = "empty_update"
	RuleSchema          = "schema"
)

// FieldError is one problem with one member of the body, named by a JSON pointer (RFC 6901;
// the empty pointer is the whole body). It marshals as the FieldError schema of openapi.yaml.
type FieldError struct {
	Pointer string   `json:"pointer"`
	Rule    string   `json:"rule"`
	Detail  string   `json:"detail"`
	Allowed []string `json:"allowed,omitempty"`
}

// Error is the one error type of this package. Detail is a sentence for the caller; Fields lists
// every problem found, so a caller can fix them all in one go.
type Error struct {
	Kind   Kind
	Detail string
	Fields []FieldError
}

// Error joins the kind, the detail and each field problem into one line.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.String())
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	for _, f := range e.Fields {
		if f.Detail == e.Detail && f.Pointer == "" {
			continue // a whole-body problem already said by Detail
		}
		fmt.Fprintf(&b, "; %s: %s: %s", displayPointer(f.Pointer), f.Rule, f.Detail)
	}
	return b.String()
}

func displayPointer(p string) string {
	if p == "" {
		return "(body)"
	}
	return p
}

func newError(kind Kind, detail string, fields ...FieldError) *Error {
	return &Error{Kind: kind, Detail: detail, Fields: fields}
}
