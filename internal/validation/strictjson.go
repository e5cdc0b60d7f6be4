package validation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds how deeply objects and arrays may nest. A valid update is one flat object;
// the bound leaves room for a caller's mistaken nested value to be reported by name while
// keeping a hostile body from making the decoder recurse deeply.
const maxDepth = 16

// decodeObject turns body into a map, refusing what encoding/json would silently accept:
// invalid UTF-8 (replaced by U+FFFD), lone surrogate escapes (likewise), duplicate names (the
// last one wins), and anything but exactly one object. Numbers stay json.Number, as the
// schema validator expects.
func decodeObject(body []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, malformed(RuleSyntax, "", "the body is empty; send a JSON object")
	}
	if !utf8.Valid(body) {
		return nil, malformed(RuleUTF8, "", "the body is not valid UTF-8")
	}
	if off := loneSurrogate(body); off >= 0 {
		return nil, malformed(RuleUTF8, "", fmt.Sprintf(
			"the escape at byte %d is half of a UTF-16 surrogate pair, not a character", off))
	}

	d := &walker{dec: json.NewDecoder(bytes.NewReader(body))}
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
	duplicates []FieldError
}

func (w *walker) top() (map[string]any, error) {
	tok, err := w.dec.Token()
	if err != nil {
		return nil, syntaxError(err, w.dec)
	}
	if tok != json.Delim('{') {
		return nil, malformed(RuleNotObject, "", fmt.Sprintf(
			"the body must be a JSON object, got %s", describeToken(tok)))
	}
	obj, err := w.object("", 1)
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

// object reads the members of an object whose '{' was just read.
func (w *walker) object(ptr string, depth int) (map[string]any, error) {
	obj := make(map[string]any, 8)
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return nil, syntaxError(err, w.dec)
		}
		name, _ := tok.(string) // json.Decoder only yields strings as member names
		child := ptr + "/" + escapePointer(name)
		if _, seen := obj[name]; seen {
			w.duplicates = append(w.duplicates, FieldError{
				Pointer: child,
				Rule:    RuleDuplicateKey,
				Detail:  fmt.Sprintf("the name %q appears more than once", name),
			})
		}
		if obj[name], err = w.value(child, depth); err != nil {
			return nil, err
		}
	}
	return obj, w.closing()
}

func (w *walker) array(ptr string, depth int) ([]any, error) {
	arr := []any{}
	for i := 0; w.dec.More(); i++ {
		v, err := w.value(fmt.Sprintf("%s/%d", ptr, i), depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
	return arr, w.closing()
}

// value reads one value found at ptr inside a container at depth.
func (w *walker) value(ptr string, depth int) (any, error) {
	tok, err := w.dec.Token()
	if err != nil {
		return nil, syntaxError(err, w.dec)
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	if depth >= maxDepth {
		return nil, malformed(RuleDepth, ptr, fmt.Sprintf(
			"values nest deeper than %d levels", maxDepth))
	}
	if delim == '{' {
		return w.object(ptr, depth+1)
	}
	return w.array(ptr, depth+1)
}

func (w *walker) closing() error {
	if _, err := w.dec.Token(); err != nil {
		return syntaxError(err, w.dec)
	}
	return nil
}

func syntaxError(err error, dec *json.Decoder) *Error {
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return malformed(RuleSyntax, "", fmt.Sprintf(
			"invalid JSON at byte %d: %s", syntax.Offset, syntax.Error()))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return malformed(RuleSyntax, "", fmt.Sprintf(
			"the JSON ends early, at byte %d", dec.InputOffset()))
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

// loneSurrogate returns the offset of a \u escape in a string of body that encodes half of a
// surrogate pair, or -1. body must be valid UTF-8; it need not be valid JSON, since the decoder
// reports syntax errors afterwards.
func loneSurrogate(body []byte) int {
	inString := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString:
			if i+1 < len(body) && body[i+1] == 'u' {
				bad, last := checkEscape(body, i)
				if bad {
					return i
				}
				i = last
				continue
			}
			i++ // skip the escaped character, which may be a quote
		}
	}
	return -1
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
		return true, 0
	case r >= 0xD800 && r <= 0xDBFF:
		if i+11 < len(body) && body[i+6] == '\\' && body[i+7] == 'u' {
			if low, ok := hex4(body, i+8); ok && low >= 0xDC00 && low <= 0xDFFF {
				return false, i + 11
			}
		}
		return true, 0
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
