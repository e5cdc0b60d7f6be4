package audit

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendEvent appends e as JSON, writing the bytes encoding/json.Marshal writes for it, field
// for field and escape for escape (TestLineMatchesEncodingJSON and FuzzLine hold it to that).
// It exists because every request encodes two events on its own path, and reflection over
// the event and its maps cost about a third of the gateway's allocations per request.
// Values of RequestObject that are not strings, booleans or null are rare (the schema admits
// only strings) and go through encoding/json.
func appendEvent(b []byte, e *Event) ([]byte, error) {
	w := lineWriter{b: b}
	w.b = append(w.b, '{')
	w.str("apiVersion", e.APIVersion)
	w.str("kind", e.Kind)
	w.str("level", string(e.Level))
	w.str("auditID", e.AuditID)
	w.str("stage", string(e.Stage))
	w.str("verb", e.Verb)
	w.str("requestURI", e.RequestURI)
	w.optStr("route", e.Route)

	w.key("user")
	w.b = append(w.b, '{')
	w.optStr("kind", e.User.Kind)
	w.optStr("name", e.User.Name)
	w.optStr("appId", e.User.AppID)
	w.b = append(w.b, '}')

	if len(e.SourceIPs) > 0 {
		w.key("sourceIPs")
		sep := byte('[')
		for _, ip := range e.SourceIPs {
			w.b = appendQuoted(append(w.b, sep), ip)
			sep = ','
		}
		w.b = append(w.b, ']')
	}
	w.optStr("userAgent", e.UserAgent)
	if e.ObjectRef != nil {
		w.key("objectRef")
		w.b = append(w.b, '{')
		w.optStr("siteId", e.ObjectRef.SiteID)
		w.optStr("serverId", e.ObjectRef.ServerID)
		w.b = append(w.b, '}')
	}
	if len(e.RequestObject) > 0 {
		w.key("requestObject")
		w.values(e.RequestObject)
	}
	if s := e.ResponseStatus; s != nil {
		w.key("responseStatus")
		w.b = append(w.b, '{')
		w.integer("code", s.Code)
		w.optStr("reason", s.Reason)
		w.optStr("message", s.Message)
		w.b = append(w.b, '}')
	}
	if u := e.Upstream; u != nil {
		w.key("upstream")
		w.b = append(w.b, '{')
		w.optStr("requestId", u.RequestID)
		w.optStr("code", u.Code)
		if u.Attempts != 0 {
			w.integer("attempts", u.Attempts)
		}
		if u.Pages != 0 {
			w.integer("pages", u.Pages)
		}
		if u.Status != 0 {
			w.integer("status", u.Status)
		}
		w.b = append(w.b, '}')
	}

	w.time("requestReceivedTimestamp", e.RequestReceivedTimestamp)
	w.time("stageTimestamp", e.StageTimestamp)
	if e.LatencySeconds != 0 {
		w.seconds("latencySeconds", e.LatencySeconds)
	}
	if len(e.Annotations) > 0 {
		w.key("annotations")
		w.annotations(e.Annotations)
	}
	w.b = append(w.b, '}')
	return w.b, w.err
}

// lineWriter appends one JSON object; the first error it meets is kept and ends the line's
// use, as json.Marshal refuses the whole value.
type lineWriter struct {
	b   []byte
	err error
}

// key starts a member whose name needs no escaping, as the Event's own field names.
func (w *lineWriter) key(name string) {
	w.comma()
	w.b = append(w.b, '"')
	w.b = append(w.b, name...)
	w.b = append(w.b, '"', ':')
}

// escapedKey starts a member whose name came from outside: a map key.
func (w *lineWriter) escapedKey(name string) {
	w.comma()
	w.b = appendQuoted(w.b, name)
	w.b = append(w.b, ':')
}

// comma separates a member from the one before it, unless it is its object's first.
func (w *lineWriter) comma() {
	if w.b[len(w.b)-1] != '{' {
		w.b = append(w.b, ',')
	}
}

func (w *lineWriter) str(name, value string) {
	w.key(name)
	w.b = appendQuoted(w.b, value)
}

// optStr writes a member tagged omitempty.
func (w *lineWriter) optStr(name, value string) {
	if value != "" {
		w.str(name, value)
	}
}

func (w *lineWriter) integer(name string, n int) {
	w.key(name)
	w.b = strconv.AppendInt(w.b, int64(n), 10)
}

// time writes t as time.Time's MarshalJSON does. The stamps the gateway makes are UTC and
// within years 0 to 9999, where that is RFC 3339 with nanoseconds; any other time goes
// through MarshalJSON itself, which also refuses the years JSON cannot hold.
func (w *lineWriter) time(name string, t time.Time) {
	w.key(name)
	if y := t.Year(); t.Location() != time.UTC || y < 0 || y > 9999 {
		w.marshaled(t.MarshalJSON())
		return
	}
	w.b = append(w.b, '"')
	w.b = t.AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
}

// seconds writes a float64 as encoding/json does: the shortest decimal that reads back as
// the same number, in exponent form below 1e-6 or from 1e21 up, with a one-digit exponent
// written without a leading zero.
func (w *lineWriter) seconds(name string, f float64) {
	w.key(name)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		w.marshaled(json.Marshal(f)) // refused, with encoding/json's own error
		return
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	w.b = strconv.AppendFloat(w.b, f, format, -1, 64)
	if n := len(w.b); format == 'e' && w.b[n-4] == 'e' && w.b[n-3] == '-' && w.b[n-2] == '0' {
		w.b[n-2] = w.b[n-1]
		w.b = w.b[:n-1]
	}
}

func (w *lineWriter) marshaled(raw []byte, err error) {
	if err != nil {
		if w.err == nil {
			w.err = err
		}
		return
	}
	w.b = append(w.b, raw...)
}

// sortedNames appends m's keys to names (a caller's stack buffer, so the usual few cost no
// allocation) in the order encoding/json writes map keys.
func sortedNames[V any](m map[string]V, names []string) []string {
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// values writes a request object with its names sorted, as encoding/json orders map keys.
func (w *lineWriter) values(m map[string]any) {
	var room [16]string
	w.b = append(w.b, '{')
	for _, name := range sortedNames(m, room[:0]) {
		w.escapedKey(name)
		switch v := m[name].(type) {
		case string:
			w.b = appendQuoted(w.b, v)
		case bool:
			w.b = strconv.AppendBool(w.b, v)
		case nil:
			w.b = append(w.b, "null"...)
		default:
			w.marshaled(json.Marshal(v))
		}
	}
	w.b = append(w.b, '}')
}

func (w *lineWriter) annotations(m map[string]string) {
	var room [8]string
	w.b = append(w.b, '{')
	for _, name := range sortedNames(m, room[:0]) {
		w.escapedKey(name)
		w.b = appendQuoted(w.b, m[name])
	}
	w.b = append(w.b, '}')
}

const hexDigits = "0123456789abcdef"

// plainASCII marks the ASCII bytes a JSON string holds as they are.
var plainASCII = func() (plain [utf8.RuneSelf]bool) {
	for c := byte(0x20); c < utf8.RuneSelf; c++ {
		plain[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return plain
}()

// appendQuoted appends s as a JSON string with encoding/json's escaping: quote, backslash and
// control characters escaped (\b \f \n \r \t by name, the rest as \u00XX), <, > and & as
// \u003c, \u003e and \u0026, U+2028 and U+2029 escaped, and each byte of invalid UTF-8
// replaced by \ufffd. No byte below 0x20 and no raw line separator can reach the line.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	done := 0 // s[:done] is already in b
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plainASCII[c] {
				i++
				continue
			}
			b = append(b, s[done:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			done = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[done:i]...)
			b = append(b, `\ufffd`...)
			done = i + size
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[done:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			done = i + size
		}
		i += size
	}
	b = append(b, s[done:]...)
	return append(b, '"')
}

// lineSizeHint guesses a line's length, so that it is usually built in one allocation: the
// field names, punctuation and stamps take up to about 600 bytes, the rest is the values' own
// length (escaping can make it longer, at the cost of one more allocation).
func lineSizeHint(e *Event) int {
	n := 600 + len(e.AuditID) + len(e.Verb) + len(e.RequestURI) + len(e.Route) +
		len(e.UserAgent) + len(e.User.Kind) + len(e.User.Name) + len(e.User.AppID)
	for _, ip := range e.SourceIPs {
		n += len(ip) + 3
	}
	if e.ObjectRef != nil {
		n += len(e.ObjectRef.SiteID) + len(e.ObjectRef.ServerID)
	}
	for name, v := range e.RequestObject {
		s, _ := v.(string)
		n += len(name) + len(s) + 8
	}
	if s := e.ResponseStatus; s != nil {
		n += len(s.Reason) + len(s.Message)
	}
	if u := e.Upstream; u != nil {
		n += len(u.RequestID) + len(u.Code)
	}
	for name, v := range e.Annotations {
		n += len(name) + len(v) + 8
	}
	return n
}
