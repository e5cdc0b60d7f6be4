package validation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"sigs.k8s.io/yaml"
)

const (
	// specURL names openapi.yaml inside the schema compiler. It is never fetched: the
	// document is added as a resource from the embedded bytes.
	specURL = "https://tunnelgateway.invalid/openapi.yaml"

	// UpdateSchemaPointer locates, in openapi.yaml, the schema every PATCH body must meet.
	UpdateSchemaPointer = "/components/schemas/MicrosoftTunnelServerUpdate"

	// resourceSchemaPointer locates the resource schema; its readOnly properties are the names
	// refused as not updatable (rather than as unknown).
	resourceSchemaPointer = "/components/schemas/MicrosoftTunnelServer"
)

// plainName is the form every updatable property name must have to be written into the
// forward body without escaping.
var plainName = regexp.MustCompile(`^[@.A-Za-z0-9_-]+$`)

// printer renders library messages for the rare error kinds without a translation of ours.
var printer = message.NewPrinter(language.English)

// patternRule names what a schema's pattern means, read from its x-pattern-rule and
// x-pattern-detail extensions, so a failed pattern is reported as, say, not_blank.
type patternRule struct {
	rule, detail string
}

// compiledSpec is what New takes from openapi.yaml.
type compiledSpec struct {
	schema *jsonschema.Schema
	// maxMembers is the schema's maxProperties: a body with more members is refused before
	// the schema runs, so a body of thousands of unknown names costs one error, not thousands.
	maxMembers int
	allowed    []string
	readOnly   map[string]bool
	patterns   map[string]patternRule // by schema location, as ValidationError.SchemaURL
}

func compileSpec(spec []byte) (*compiledSpec, error) {
	doc, err := specDocument(spec)
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(specURL, doc); err != nil {
		return nil, fmt.Errorf("add openapi.yaml to the schema compiler: %w", err)
	}
	schema, err := c.Compile(specURL + "#" + UpdateSchemaPointer)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", UpdateSchemaPointer, err)
	}

	update, err := schemaAt(doc, UpdateSchemaPointer)
	if err != nil {
		return nil, err
	}
	resource, err := schemaAt(doc, resourceSchemaPointer)
	if err != nil {
		return nil, err
	}
	number, _ := update["maxProperties"].(json.Number)
	maxMembers, err := number.Int64()
	if err != nil || maxMembers < 1 {
		return nil, fmt.Errorf("%s needs a positive maxProperties", UpdateSchemaPointer)
	}
	cs := &compiledSpec{
		maxMembers: int(maxMembers),
		schema:     schema,
		allowed:    propertyNames(update, nil),
		readOnly:   map[string]bool{},
		patterns:   map[string]patternRule{},
	}
	for _, name := range cs.allowed {
		if !plainName.MatchString(name) {
			return nil, fmt.Errorf("property name %q of %s needs escaping in JSON; "+
				"the forward body writes names as they are", name, UpdateSchemaPointer)
		}
	}
	for _, name := range propertyNames(resource, isReadOnly) {
		cs.readOnly[name] = true
	}
	collectPatternRules(update, specURL+"#"+UpdateSchemaPointer, cs.patterns)
	return cs, nil
}

// specDocument turns the YAML spec into the JSON values the compiler works on (numbers as
// json.Number).
func specDocument(spec []byte) (any, error) {
	js, err := yaml.YAMLToJSON(spec)
	if err != nil {
		return nil, fmt.Errorf("read openapi.yaml: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return nil, fmt.Errorf("read openapi.yaml as JSON: %w", err)
	}
	return doc, nil
}

// schemaAt follows a JSON pointer of plain names (no escapes needed) to an object.
func schemaAt(doc any, pointer string) (map[string]any, error) {
	node := doc
	for _, token := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		m, _ := node.(map[string]any)
		node = m[token]
	}
	m, ok := node.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("openapi.yaml has no schema at %s", pointer)
	}
	return m, nil
}

// propertyNames lists, sorted, the names under schema's properties whose schema passes keep
// (all of them when keep is nil).
func propertyNames(schema map[string]any, keep func(map[string]any) bool) []string {
	props, _ := schema["properties"].(map[string]any)
	var names []string
	for name, sub := range props {
		m, _ := sub.(map[string]any)
		if keep == nil || keep(m) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func isReadOnly(schema map[string]any) bool {
	ro, _ := schema["readOnly"].(bool)
	return ro
}

// collectPatternRules records every x-pattern-rule found under node, keyed by the location
// the compiler gives that subschema.
func collectPatternRules(node any, location string, into map[string]patternRule) {
	switch n := node.(type) {
	case map[string]any:
		if rule, ok := n["x-pattern-rule"].(string); ok {
			detail, _ := n["x-pattern-detail"].(string)
			into[location] = patternRule{rule: rule, detail: strings.TrimSpace(detail)}
		}
		for name, child := range n {
			collectPatternRules(child, location+"/"+escapePointer(name), into)
		}
	case []any:
		for i, child := range n {
			collectPatternRules(child, fmt.Sprintf("%s/%d", location, i), into)
		}
	}
}

// translate turns the library's error tree into field errors with stable rule names. It
// works from the kind of each failed keyword, never from the field's name, so a property
// added to the schema is reported without new code here.
func (cs *compiledSpec) translate(
	verr *jsonschema.ValidationError, obj map[string]any,
) []FieldError {
	var fields []FieldError
	for _, leaf := range leaves(verr, nil) {
		fields = append(fields, cs.fieldErrors(leaf)...)
	}
	return simplify(fields, obj)
}

// leaves collects the errors of a tree that have no causes: the failed keywords themselves.
func leaves(
	e *jsonschema.ValidationError, into []*jsonschema.ValidationError,
) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return append(into, e)
	}
	for _, c := range e.Causes {
		into = leaves(c, into)
	}
	return into
}

func (cs *compiledSpec) fieldErrors(e *jsonschema.ValidationError) []FieldError {
	ptr := instancePointer(e.InstanceLocation)
	one := func(rule, detail string, allowed ...string) []FieldError {
		return []FieldError{{Pointer: ptr, Rule: rule, Detail: detail, Allowed: allowed}}
	}
	switch k := e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		return cs.unknownProperties(ptr, k.Properties)
	case *kind.Type:
		return one(RuleType, fmt.Sprintf("must be %s, got %s",
			strings.Join(k.Want, " or "), k.Got))
	case *kind.Enum:
		allowed := make([]string, len(k.Want))
		for i, w := range k.Want {
			allowed[i] = fmt.Sprint(w)
		}
		return one(RuleEnum, fmt.Sprintf("%s is not one of the allowed values (case-sensitive)",
			quoteValue(k.Got)), allowed...)
	case *kind.Const:
		return one(RuleConst, fmt.Sprintf("must be %s, got %s",
			quoteValue(k.Want), quoteValue(k.Got)), fmt.Sprint(k.Want))
	case *kind.MinLength:
		return one(RuleMinLength, fmt.Sprintf(
			"must be at least %s (Unicode code points), got %d", characters(k.Want), k.Got))
	case *kind.MaxLength:
		return one(RuleMaxLength, fmt.Sprintf(
			"must be at most %s (Unicode code points), got %d", characters(k.Want), k.Got))
	case *kind.Pattern:
		if p, ok := cs.patterns[e.SchemaURL]; ok {
			return one(p.rule, p.detail)
		}
		return one(RulePattern, fmt.Sprintf("must match the pattern %s", k.Want))
	case *kind.Format:
		return one(RuleFormat, fmt.Sprintf("must be a valid %s", k.Want))
	case *kind.MinProperties:
		return one(RuleEmptyUpdate, cs.emptyUpdateDetail())
	case *kind.MaxProperties:
		return one(RuleTooManyMembers, cs.tooManyDetail(k.Got))
	default:
		return one(RuleSchema, e.ErrorKind.LocalizedString(printer))
	}
}

func (cs *compiledSpec) tooManyDetail(got int) string {
	return fmt.Sprintf("has %d members; an update has at most %d (the updatable properties are %s)",
		got, cs.maxMembers, strings.Join(cs.allowed, ", "))
}

func (cs *compiledSpec) unknownProperties(parent string, names []string) []FieldError {
	fields := make([]FieldError, 0, len(names))
	for _, name := range names {
		f := FieldError{Pointer: parent + "/" + escapePointer(name), Rule: RuleUnknownProperty}
		if len(name) > maxEchoedName {
			// Echoing a made-up name whole would let one body fill the answer with itself.
			f.Pointer = parent + "/" + escapePointer(truncateName(name)) + "…"
			f.Detail = fmt.Sprintf("unknown property (a name of %d bytes, shown cut); the "+
				"updatable properties are %s", len(name), strings.Join(cs.allowed, ", "))
			fields = append(fields, f)
			continue
		}
		switch {
		case cs.readOnly[name]:
			f.Rule = RuleReadOnly
			f.Detail = fmt.Sprintf("%s is read-only and cannot be updated; leave it out", name)
		case cs.caseVariant(name) != "":
			f.Detail = fmt.Sprintf("unknown property; names are case-sensitive: did you mean %s?",
				cs.caseVariant(name))
		default:
			f.Detail = "unknown property; the updatable properties are " +
				strings.Join(cs.allowed, ", ")
		}
		fields = append(fields, f)
	}
	return fields
}

// maxEchoedName bounds the length of an unknown name an answer repeats.
const maxEchoedName = 64

// truncateName cuts name to at most maxEchoedName bytes without splitting a character.
func truncateName(name string) string {
	n := maxEchoedName
	for n > 0 && !utf8.RuneStart(name[n]) {
		n--
	}
	return name[:n]
}

func (cs *compiledSpec) caseVariant(name string) string {
	for _, a := range cs.allowed {
		if strings.EqualFold(a, name) {
			return a
		}
	}
	return ""
}

func (cs *compiledSpec) emptyUpdateDetail() string {
	var changeable []string
	for _, name := range cs.allowed {
		if !identityName(name) {
			changeable = append(changeable, name)
		}
	}
	return "the body changes nothing; include at least one of " + strings.Join(changeable, ", ")
}

// simplify keeps one error for a member that is null or of the wrong type: once the type is
// wrong, what enum or length would say about it is noise.
func simplify(fields []FieldError, obj map[string]any) []FieldError {
	typeWrong := map[string]bool{}
	for _, f := range fields {
		if f.Rule == RuleType {
			typeWrong[f.Pointer] = true
		}
	}
	out := fields[:0]
	seenNull := map[string]bool{}
	for _, f := range fields {
		if f.Pointer != "" && isNull(obj, f.Pointer) {
			if !seenNull[f.Pointer] {
				seenNull[f.Pointer] = true
				out = append(out, nullError(f.Pointer))
			}
			continue
		}
		if typeWrong[f.Pointer] && f.Rule != RuleType {
			continue
		}
		out = append(out, f)
	}
	return out
}

func nullError(ptr string) FieldError {
	return FieldError{Pointer: ptr, Rule: RuleNull, Detail: "must not be null: Graph's " +
		"properties are not nullable; leave the property out to keep its value"}
}

// isNull reports whether the member at a one-level pointer is JSON null. Deeper pointers
// cannot occur: the schema only allows scalar members.
func isNull(obj map[string]any, ptr string) bool {
	name := strings.TrimPrefix(ptr, "/")
	if strings.Contains(name, "/") {
		return false
	}
	name = strings.NewReplacer("~1", "/", "~0", "~").Replace(name)
	v, ok := obj[name]
	return ok && v == nil
}

func instancePointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(escapePointer(t))
	}
	return b.String()
}

// quoteValue shows a caller's value in a message, cut short so a huge value does not make a
// huge answer.
func quoteValue(v any) string {
	const most = 64
	s, ok := v.(string)
	if !ok {
		return fmt.Sprint(v)
	}
	if r := []rune(s); len(r) > most {
		return fmt.Sprintf("%q…", string(r[:most]))
	}
	return fmt.Sprintf("%q", s)
}

func characters(n int) string {
	if n == 1 {
		return "1 character"
	}
	return fmt.Sprintf("%d characters", n)
}
