package validation

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	`{"@odata.type": "#microsoft.graph.microsoftTunnelServer", "displayName": "Display Name value",
		"tunnelServerHealthStatus": "healthy", "lastCheckinDateTime": "2017-01-01T00:02:46.0431416-08:00",
		"agentImageDigest": "Agent Image Digest value", "serverImageDigest": "Server Image Digest value"}`,
	`{"displayName":"tunnel-eu-west-01"}`,
	`{"id":"b5cf0aee-0aee-b5cf-ee0a-cfb5ee0acfb5","displayName":"\u00e9\ud83d\ude00"}`,
	`{"lastCheckinDateTime":"2024-02-29T23:59:59.1234567+14:00"}`,
	`{"lastCheckinDateTime":"2023-02-30T00:00:00Z"}`,
	`{"displayName":null,"DisplayName":"x","deploymentMode":"podRootless"}`,
	`{"displayName":"a","displayName":"b"}`,
	`{"x":[[[[{"y":{}}]]]]}`,
	`{"displayName":"\ud800"}`,
	`{"displayName":"\u00a0"}`,
	`[]`, `{}`, `{"a":1} {}`, `{"@odata.type":"#microsoft.graph.microsoftTunnelServer"}`,
	` { "displayName" : "a" , "x" : true , "y" : false , "z" : null } `, `{"a":tru}`,
	`{"a":"b",}`, `{"a":"b"}x`, `{"a":"b\tc"}`, "{\"a\":\"b\tc\"}", `{"a":nullx}`, `{"a" "b"}`,
}

// FuzzUpdate checks that the validator never panics, that every refusal is a well-formed
// *Error, and that every accepted body is one Graph can take: only allowed names, values that
// meet the rules, and a Forward body that validates again to the same update.
func FuzzUpdate(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	v := testValidator(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecodePaths(t, body)
		got, err := v.Update(body, testServer)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		checkAccepted(t, body, got)

		again, err := v.Update(got.Forward, testServer)
		if err != nil {
			t.Fatalf("forward body %q refused: %v", got.Forward, err)
		}
		if !slices.Equal(again.Properties, got.Properties) ||
			!maps.Equal(again.Values, got.Values) || string(again.Forward) != string(got.Forward) {
			t.Fatalf("forward body validates differently:\n%+v\n%+v", got, again)
		}
	})
}

// checkDecodePaths holds the fast path to the token walk: both accept the same bodies and
// read them to the same values.
func checkDecodePaths(t *testing.T, body []byte) {
	fast, fastErr := decodeObject(body)
	if !utf8.Valid(body) || scan(body).loneSurrogate >= 0 {
		return // refused before either path runs
	}
	slow, slowErr := decodeByTokens(body)
	if (fastErr == nil) != (slowErr == nil) {
		t.Fatalf("decodeObject: %v; token walk: %v", fastErr, slowErr)
	}
	if fastErr == nil && !reflect.DeepEqual(fast, slow) {
		t.Fatalf("decodeObject read %#v; token walk read %#v", fast, slow)
	}
}

// TestDecodeFlat pins which bodies the one-pass reader takes, and that it reads them as the
// token walk does; whatever it declines must still be read (or refused) by the other paths.
func TestDecodeFlat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		body     string
		wantFlat bool
	}{
		{"the Graph page's example", fuzzSeeds[0], true},
		{"white space everywhere", " \t{ \"a\" :\r\n\"b\" , \"c\":true,\"d\":false,\"e\":null}\n", true},
		{"empty object", ` {} `, true},
		{"bytes above ASCII and DEL", "{\"a\":\"\u00e9\U0001F600\x7f\"}", true},
		{"escape", `{"a":"\u0041"}`, false},
		{"escaped quote in a name", `{"a\"":"b"}`, false},
		{"raw tab in a string", "{\"a\":\"b\tc\"}", false},
		{"number", `{"a":1}`, false},
		{"nested", `{"a":{}}`, false},
		{"duplicate name", `{"a":"b","a":"c"}`, false},
		{"trailing comma", `{"a":"b",}`, false},
		{"trailing data", `{"a":"b"}{}`, false},
		{"literal run on", `{"a":nullx}`, false},
		{"cut short", `{"a":"b"`, false},
		{"missing colon", `{"a" "b"}`, false},
		{"array", `["a"]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(tt.body)
			flat, ok := decodeFlat(body, scan(body).separators)
			if ok != tt.wantFlat {
				t.Fatalf("decodeFlat took the body: got %v, want %v", ok, tt.wantFlat)
			}
			if ok {
				slow, err := decodeByTokens(body)
				if err != nil || !reflect.DeepEqual(flat, slow) {
					t.Errorf("decodeFlat read %#v; token walk read %#v, %v", flat, slow, err)
				}
			}
			checkDecodePaths(t, body)
		})
	}
}

func checkRefusal(t *testing.T, err error) {
	var verr *Error
	if !errors.As(err, &verr) {
		t.Fatalf("error is not *Error: %v", err)
	}
	if verr.Kind != Malformed && verr.Kind != Invalid {
		t.Fatalf("kind = %v, want Malformed or Invalid", verr.Kind)
	}
	if len(verr.Fields) == 0 {
		t.Fatalf("refusal names no problem: %v", err)
	}
	for _, fe := range verr.Fields {
		if !slices.Contains(knownRules, fe.Rule) || fe.Detail == "" {
			t.Fatalf("field error %+v: unknown rule or no detail", fe)
		}
		if fe.Pointer != "" && !strings.HasPrefix(fe.Pointer, "/") {
			t.Fatalf("field error %+v: pointer is not a JSON pointer", fe)
		}
	}
}

var knownRules = []string{RuleSyntax, RuleNotObject, RuleTrailingData, RuleDepth, RuleUTF8,
	RuleDuplicateKey, RuleGzip, RuleUnknownProperty, RuleReadOnly, RuleType, RuleNull,
	RuleConst, RuleEnum, RuleMinLength, RuleMaxLength, RuleNotBlank, RuleFormat, RulePattern,
	RuleCalendar, RuleMismatch, RuleEmptyUpdate, RuleControlChar, RuleTooManyMembers}

var healthStatuses = []string{"unknown", "healthy", "unhealthy", "warning", "offline",
	"upgradeInProgress", "upgradeFailed"}

// checkAccepted restates the rules independently of the schema, so a schema mistake that lets
// a bad body through shows up here.
func checkAccepted(t *testing.T, body []byte, got Update) {
	if !json.Valid(body) || !utf8.Valid(body) {
		t.Fatalf("accepted a body that is not valid JSON in UTF-8: %q", body)
	}
	if len(got.Properties) == 0 || len(got.Properties) != len(got.Values) {
		t.Fatalf("accepted update %+v changes nothing or disagrees with itself", got)
	}
	var members map[string]any
	if err := json.Unmarshal(body, &members); err != nil {
		t.Fatalf("accepted a body that is not an object: %q", body)
	}
	if id, ok := members["id"]; ok && id != testServer {
		t.Fatalf("accepted id %#v for server %s", id, testServer)
	}
	if typ, ok := members["@odata.type"]; ok && typ != "#microsoft.graph.microsoftTunnelServer" {
		t.Fatalf("accepted @odata.type %#v", typ)
	}
	for _, name := range got.Properties {
		s, ok := got.Values[name].(string)
		if !ok {
			t.Fatalf("%s = %#v, want a string", name, got.Values[name])
		}
		if problem := ruleProblem(name, s); problem != "" {
			t.Fatalf("accepted %s = %q: %s", name, s, problem)
		}
	}
}

func ruleProblem(name, s string) string {
	hidden := func(r rune) bool { return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) }
	switch name {
	case "displayName":
		n := utf8.RuneCountInString(s)
		visible := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsSpace(r) })
		if n < 1 || n > 200 || visible < 0 {
			return "not 1..200 characters with one that is not white space"
		}
		if strings.IndexFunc(s, hidden) >= 0 {
			return "holds a control, formatting or line-separator character"
		}
	case "tunnelServerHealthStatus":
		if !slices.Contains(healthStatuses, s) {
			return "not a documented status"
		}
	case "lastCheckinDateTime":
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return err.Error()
		}
		if dot := strings.IndexByte(s, '.'); dot >= 0 {
			digits := strings.IndexFunc(s[dot+1:], func(r rune) bool { return r < '0' || r > '9' })
			if digits < 1 || digits > 7 {
				return "not 1 to 7 fractional digits"
			}
		}
	case "agentImageDigest", "serverImageDigest":
		if utf8.RuneCountInString(s) > 1024 {
			return "longer than 1024 characters"
		}
		if strings.IndexFunc(s, hidden) >= 0 {
			return "holds a control, formatting or line-separator character"
		}
	default:
		return "not an updatable property"
	}
	return ""
}

func BenchmarkUpdate(b *testing.B) {
	v := testValidator(b)
	body := []byte(fuzzSeeds[0])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Update(body, testServer); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateInvalid(b *testing.B) {
	v := testValidator(b)
	body := []byte(fuzzSeeds[5])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Update(body, testServer); err == nil {
			b.Fatal("accepted an invalid body")
		}
	}
}
