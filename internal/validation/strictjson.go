package validation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds how deeply objects and arrays may nest. A valid update is one flat object;
// the bound leaves room for a caller's mistaken nested value to be reported by name while
// keeping a hostile body from making the decoder recurse deeply.
const maxDepth = 16

// decodeObject turns body into a map, refusing what encoding/json would silently accept:
// invalid UTF-8 (replaced by U+FFFD), lone surrogate escapes (likewise), duplicate names (the
// last one wins), deep nesting, and anything but exactly one object. Numbers stay
// json.Number, as the schema validator expects.
//
// Most bodies are fine, so a fast path decodes in one pass and proves the absence of
// duplicates by counting: in valid JSON every ':' outside strings separates one member, so the
// body has duplicates exactly when it holds more separators than its maps hold names. Any
// doubt sends the body to a token walk, which names each problem precisely.
func decodeObject(body []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, malformed(RuleSyntax, "", "the body is empty; send a JSON object")
	}
	if bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
		// RFC 8259 forbids sending one; naming it beats "invalid character 'ï'".
		return nil, malformed(RuleSyntax, "",
			"the body starts with a UTF-8 byte-order mark (EF BB BF); send the JSON without it")
	}
	if !utf8.Valid(body) {
		return nil, malformed(RuleUTF8, "", "the body is not valid UTF-8")
	}
	shape := scan(body)
	if shape.loneSurrogate >= 0 {
		return nil, malformed(RuleUTF8, "", fmt.Sprintf(
			"the escape at byte %d is half of a UTF-16 surrogate pair, not a character",
			shape.loneSurrogate))
	}
	if obj, ok := decodeFlat(body, shape.separators); ok {
		return obj, nil
	}
	if shape.depth <= maxDepth {
		if obj, ok := decodeFast(body, shape.separators); ok {
			return obj, nil
		}
	}
	return decodeByTokens(body)
}

// decodeFlat reads the body nearly every caller sends, one object whose values are strings
// without escapes, booleans or null, in one pass: the body is copied once and names and
// values are slices of that copy, where encoding/json allocates each name and value and
// reflects on every one. It reports ok only for such a body, already valid UTF-8; numbers,
// escapes, nesting, duplicate names and every syntax error are left to decodeFast and the
// token walk, which read them as encoding/json does (FuzzUpdate holds the paths to the same
// answers).
func decodeFlat(body []byte, members int) (map[string]any, bool) {
	text := string(body)
	obj := make(map[string]any, min(members, 32))
	i := skipSpace(text, 0)
	if i == len(text) || text[i] != '{' {
		return nil, false
	}
	if i = skipSpace(text, i+1); i < len(text) && text[i] == '}' {
		return obj, skipSpace(text, i+1) == len(text)
	}
	for {
		name, next, ok := plainString(text, i)
		if !ok {
			return nil, false
		}
		if _, seen := obj[name]; seen {
			return nil, false
		}
		if i = skipSpace(text, next); i == len(text) || text[i] != ':' {
			return nil, false
		}
		i = skipSpace(text, i+1)
		rest := text[i:]
		switch {
		case strings.HasPrefix(rest, `"`):
			if obj[name], i, ok = plainString(text, i); !ok {
				return nil, false
			}
		case strings.HasPrefix(rest, "true"):
			obj[name], i = true, i+len("true")
		case strings.HasPrefix(rest, "false"):
			obj[name], i = false, i+len("false")
		case strings.HasPrefix(rest, "null"):
			obj[name], i = nil, i+len("null")
		default:
			return nil, false
		}
		if i = skipSpace(text, i); i == len(text) {
			return nil, false
		}
		switch text[i] {
		case ',':
			i = skipSpace(text, i+1)
		case '}':
			return obj, skipSpace(text, i+1) == len(text)
		default:
			return nil, false
		}
	}
}

// plainString reads the string starting at text[i] when it holds no escape and no control
// character, and returns it with the index just past its closing quote.
func plainString(text string, i int) (s string, next int, ok bool) {
	if i == len(text) || text[i] != '"' {
		return "", i, false
	}
	for j := i + 1; j < len(text); j++ {
		switch c := text[j]; {
		case c == '"':
			return text[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return "", j, false
		}
	}
	return "", len(text), false
}

// skipSpace returns the index of the first byte at or after i that is not JSON white space.
func skipSpace(text string, i int) int {
	for i < len(text) && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' ||
		text[i] == '\r') {
		i++
	}
	return i
}

// decodeFast decodes body in one pass and reports ok only when it is a single object whose
// maps hold as many names as the body has name separators.
func decodeFast(body []byte, separators int) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if body[firstNonSpace(body)] != '{' || dec.Decode(&obj) != nil {
		return nil, false
	}
	// Only JSON's own four white-space bytes may follow; bytes.TrimSpace would also drop \v,
	// \f, U+0085 and U+00A0, which encoding/json and the token walk refuse.
	if len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) != 0 {
		return nil, false
	}
	return obj, countNames(obj) == separators
}

func firstNonSpace(b []byte) int {
	return len(b) - len(bytes.TrimLeft(b, " \t\r\n"))
}

func countNames(v any) int {
	n := 0
	switch v := v.(type) {
	case map[string]any:
		n = len(v)
		for _, child := range v {
			n += countNames(child)
		}
	case []any:
		for _, child := range v {
			n += countNames(child)
		}
	}
	return n
}

// decodeByTokens walks body token by token: slower, but it knows where it is when something
// is wrong, so every duplicate and the first other fault are reported by pointer.
func decodeByTokens(body []byte) (map[string]any, error) {
	d := &walker{dec: json.NewDecoder(bytes.NewReader(body)), size: len(body)}
	d.dec.UseNumber()
	obj, err := d.top()
	if err != nil {
		return nil, err
	}
	if len(d.duplicates) > 0 {
		return nil, newError(Malformed, "the body repeats a name", d.duplicates...)
	}
	return obj, nil
}

type walker struct {
	dec        *json.Decoder
	size       int      // of the body, for "ends early" answers
	path       []string // names and indexes from the body down to the current value
	duplicates []FieldError
}

func (w *walker) top() (map[string]any, error) {
	tok, err := w.dec.Token()
	if err != nil {
		return nil, w.syntaxError(err)
	}
	if tok != json.Delim('{') {
		return nil, malformed(RuleNotObject, "", fmt.Sprintf(
			"the body must be a JSON object, got %s", describeToken(tok)))
	}
	obj, err := w.object(1)
	if err != nil {
		return nil, err
	}
	if _, err := w.dec.Token(); err != io.EOF {
		return nil, malformed(RuleTrailingData, "", fmt.Sprintf(
			"the body holds more after its object ends (at byte %d); send one object",
			w.dec.InputOffset()))
	}
	return obj, nil
}

// object reads the members of an object whose '{' was just read. Member names go on a
// stack rather than into pointer strings: a pointer is only built for a problem.
func (w *walker) object(depth int) (map[string]any, error) {
	obj := make(map[string]any, 8)
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return nil, w.syntaxError(err)
		}
		name, _ := tok.(string) // json.Decoder only yields strings as member names
		w.path = append(w.path, name)
		if _, seen := obj[name]; seen {
			w.duplicates = append(w.duplicates, FieldError{
				Pointer: instancePointer(w.path),
				Rule:    RuleDuplicateKey,
				Detail:  fmt.Sprintf("the name %q appears more than once", name),
			})
		}
		if obj[name], err = w.value(depth); err != nil {
			return nil, err
		}
		w.path = w.path[:len(w.path)-1]
	}
	return obj, w.closing()
}

func (w *walker) array(depth int) ([]any, error) {
	arr := []any{}
	for i := 0; w.dec.More(); i++ {
		w.path = append(w.path, strconv.Itoa(i))
		v, err := w.value(depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		w.path = w.path[:len(w.path)-1]
	}
	return arr, w.closing()
}

// value reads one value inside a container at depth; w.path names it.
func (w *walker) value(depth int) (any, error) {
	tok, err := w.dec.Token()
	if err != nil {
		return nil, w.syntaxError(err)
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	if depth >= maxDepth {
		return nil, malformed(RuleDepth, instancePointer(w.path), fmt.Sprintf(
			"values nest deeper than %d levels", maxDepth))
	}
	if delim == '{' {
		return w.object(depth + 1)
	}
	return w.array(depth + 1)
}

func (w *walker) closing() error {
	if _, err := w.dec.Token(); err != nil {
		return w.syntaxError(err)
	}
	return nil
}

func (w *walker) syntaxError(err error) *Error {
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return malformed(RuleSyntax, "", fmt.Sprintf(
			"invalid JSON at byte %d: %s", syntax.Offset, syntax.Error()))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return malformed(RuleSyntax, "", fmt.Sprintf(
			"the JSON ends early: the body stops after %d bytes with a value still open",
			w.size))
	default:
		return malformed(RuleSyntax, "", fmt.Sprintf("invalid JSON: %v", err))
	}
}

func malformed(rule, ptr, detail string) *Error {
	return newError(Malformed, detail, FieldError{Pointer: ptr, Rule: rule, Detail: detail})
}

func describeToken(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	default:
		return "null"
	}
}

// escapePointer escapes one reference token of a JSON pointer (RFC 6901).
func escapePointer(name string) string {
	if !strings.ContainsAny(name, "~/") {
		return name
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(name)
}

// shape is what one pass over the bytes of a body tells: how deeply it nests, how many name
// separators it holds, and where a lone surrogate escape sits (-1 for none). Strings are
// skipped, so their content counts for nothing. body must be valid UTF-8; it need not be
// valid JSON, since the decoder reports syntax errors afterwards.
type shape struct {
	depth, separators, loneSurrogate int
}

func scan(body []byte) shape {
	s := shape{loneSurrogate: -1}
	inString, depth := false, 0
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString {
			switch {
			case c == '"':
				inString = false
			case c == '\\' && i+1 < len(body) && body[i+1] == 'u':
				bad, last := checkEscape(body, i)
				if bad && s.loneSurrogate < 0 {
					s.loneSurrogate = i
				}
				i = last
			case c == '\\':
				i++ // skip the escaped character, which may be a quote
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			s.depth = max(s.depth, depth)
		case '}', ']':
			depth--
		case ':':
			s.separators++
		}
	}
	return s
}

// checkEscape looks at the \u escape at i. It reports whether the escape is a lone surrogate,
// and the index of its last byte (or of the low half's last byte, for a pair).
func checkEscape(body []byte, i int) (bad bool, last int) {
	r, ok := hex4(body, i+2)
	if !ok {
		return false, i + 1 // not an escape the decoder accepts; it reports the syntax error
	}
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		return true, i + 5
	case r >= 0xD800 && r <= 0xDBFF:
		if i+11 < len(body) && body[i+6] == '\\' && body[i+7] == 'u' {
			if low, ok := hex4(body, i+8); ok && low >= 0xDC00 && low <= 0xDFFF {
				return false, i + 11
			}
		}
		return true, i + 5
	}
	return false, i + 5
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}
