package validation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"

	"tunnelgateway"
)

const testServer = "b5cf0aee-0aee-b5cf-ee0a-cfb5ee0acfb5"

var (
	sharedOnce      sync.Once
	sharedValidator *Validator
	sharedErr       error
)

// testValidator builds the validator once for all tests, as the gateway does.
func testValidator(t testing.TB) *Validator {
	t.Helper()
	sharedOnce.Do(func() { sharedValidator, sharedErr = New() })
	if sharedErr != nil {
		t.Fatalf("New: %v", sharedErr)
	}
	return sharedValidator
}

// problems renders field errors as "pointer rule" lines, the part of an answer callers rely on.
func problems(err error) []string {
	var verr *Error
	if !errors.As(err, &verr) {
		return nil
	}
	var out []string
	for _, f := range verr.Fields {
		out = append(out, f.Pointer+" "+f.Rule)
	}
	return out
}

func kindOf(err error) Kind {
	var verr *Error
	if errors.As(err, &verr) {
		return verr.Kind
	}
	return 0
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	long := func(n int, s string) string { return strings.Repeat(s, n) }
	tests := []struct {
		name     string
		body     string
		wantKind Kind     // 0: accepted
		want     []string // "pointer rule" of each problem, in order
		wantProp []string // accepted: Properties
	}{
		// Accepted bodies.
		{name: "graph page example", body: `{"@odata.type": "#microsoft.graph.microsoftTunnelServer",
			"displayName": "Display Name value", "tunnelServerHealthStatus": "healthy",
			"lastCheckinDateTime": "2017-01-01T00:02:46.0431416-08:00",
			"agentImageDigest": "Agent Image Digest value",
			"serverImageDigest": "Server Image Digest value"}`,
			wantProp: []string{"agentImageDigest", "displayName", "lastCheckinDateTime",
				"serverImageDigest", "tunnelServerHealthStatus"}},
		{name: "rename only", body: `{"displayName":"tunnel-eu-west-01"}`,
			wantProp: []string{"displayName"}},
		{name: "id equal to path", body: `{"id":"` + testServer + `","displayName":"x"}`,
			wantProp: []string{"displayName"}},
		{name: "id in upper case", body: `{"id":"` + strings.ToUpper(testServer) +
			`","displayName":"x"}`, wantProp: []string{"displayName"}},
		{name: "name of 200 characters", body: `{"displayName":"` + long(200, "a") + `"}`,
			wantProp: []string{"displayName"}},
		{name: "name of 200 code points in 600 bytes",
			body: `{"displayName":"` + long(200, "€") + `"}`, wantProp: []string{"displayName"}},
		{name: "name with inner spaces", body: `{"displayName":"  a  "}`,
			wantProp: []string{"displayName"}},
		{name: "name escaped", body: `{"displayName":"\u00e9t\u00e9 \ud83d\ude00"}`,
			wantProp: []string{"displayName"}},
		{name: "name escaped member name", body: `{"display\u004eame":"x"}`,
			wantProp: []string{"displayName"}},
		{name: "utc z", body: `{"lastCheckinDateTime":"2017-01-01T00:02:46Z"}`,
			wantProp: []string{"lastCheckinDateTime"}},
		{name: "7 fractional digits", body: `{"lastCheckinDateTime":"2017-01-01T00:02:46.1234567Z"}`,
			wantProp: []string{"lastCheckinDateTime"}},
		{name: "1 fractional digit", body: `{"lastCheckinDateTime":"2017-01-01T00:02:46.1+01:00"}`,
			wantProp: []string{"lastCheckinDateTime"}},
		{name: "offset +14:00", body: `{"lastCheckinDateTime":"2024-06-01T10:00:00+14:00"}`,
			wantProp: []string{"lastCheckinDateTime"}},
		{name: "offset -12:00", body: `{"lastCheckinDateTime":"2024-06-01T10:00:00-12:00"}`,
			wantProp: []string{"lastCheckinDateTime"}},
		{name: "feb 29 leap year", body: `{"lastCheckinDateTime":"2024-02-29T12:00:00Z"}`,
			wantProp: []string{"lastCheckinDateTime"}},
		{name: "feb 29 year 2000", body: `{"lastCheckinDateTime":"2000-02-29T12:00:00Z"}`,
			wantProp: []string{"lastCheckinDateTime"}},
		{name: "digest of 1024", body: `{"agentImageDigest":"` + long(1024, "f") + `"}`,
			wantProp: []string{"agentImageDigest"}},
		{name: "digest empty", body: `{"serverImageDigest":""}`,
			wantProp: []string{"serverImageDigest"}},
		{name: "whitespace around the object", body: " \n\t{\"displayName\":\"x\"}\r\n ",
			wantProp: []string{"displayName"}},

		// The property table.
		{name: "unknown property", body: `{"displayName":"x","colour":"blue"}`,
			wantKind: Invalid, want: []string{"/colour unknown_property"}},
		{name: "case variant of a name", body: `{"DisplayName":"x"}`,
			wantKind: Invalid, want: []string{"/DisplayName unknown_property"}},
		{name: "upper case id", body: `{"ID":"` + testServer + `","displayName":"x"}`,
			wantKind: Invalid, want: []string{"/ID unknown_property"}},
		{name: "deployment mode", body: `{"deploymentMode":"podRootless"}`,
			wantKind: Invalid, want: []string{"/deploymentMode read_only"}},
		{name: "odata context", body: `{"@odata.context":"https://graph.microsoft.com/beta/` +
			`$metadata#x","displayName":"x"}`,
			wantKind: Invalid, want: []string{"/@odata.context read_only"}},
		{name: "name with a slash", body: `{"a/b~c":1,"displayName":"x"}`,
			wantKind: Invalid, want: []string{"/a~1b~0c unknown_property"}},
		{name: "wrong odata type", body: `{"@odata.type":"#microsoft.graph.microsoftTunnelSite",` +
			`"displayName":"x"}`, wantKind: Invalid, want: []string{"/@odata.type const"}},
		{name: "odata type case", body: `{"@odata.type":"#Microsoft.Graph.MicrosoftTunnelServer",` +
			`"displayName":"x"}`, wantKind: Invalid, want: []string{"/@odata.type const"}},
		{name: "id mismatch", body: `{"id":"00000000-0000-0000-0000-000000000001",` +
			`"displayName":"x"}`, wantKind: Invalid, want: []string{"/id mismatch"}},
		{name: "id number", body: `{"id":7,"displayName":"x"}`,
			wantKind: Invalid, want: []string{"/id type"}},

		// displayName.
		{name: "name 201 characters", body: `{"displayName":"` + long(201, "a") + `"}`,
			wantKind: Invalid, want: []string{"/displayName max_length"}},
		{name: "name 201 code points", body: `{"displayName":"` + long(201, "é") + `"}`,
			wantKind: Invalid, want: []string{"/displayName max_length"}},
		{name: "name empty", body: `{"displayName":""}`, wantKind: Invalid,
			want: []string{"/displayName min_length", "/displayName not_blank"}},
		{name: "name blank", body: `{"displayName":"   "}`, wantKind: Invalid,
			want: []string{"/displayName not_blank"}},
		{name: "name tabs and newlines", body: `{"displayName":"\t\n\r\u000b\f"}`,
			wantKind: Invalid, want: []string{"/displayName control_character", "/displayName not_blank"}},
		{name: "name unicode spaces", body: `{"displayName":"\u00a0\u2003\u3000\u2028"}`,
			wantKind: Invalid, want: []string{"/displayName control_character",
				"/displayName not_blank"}},
		{name: "name with a line separator", body: `{"displayName":"eu\u2028west"}`,
			wantKind: Invalid, want: []string{"/displayName control_character"}},
		{name: "digest with a paragraph separator", body: `{"agentImageDigest":"sha256:\u2029"}`,
			wantKind: Invalid, want: []string{"/agentImageDigest control_character"}},
		{name: "name with a newline", body: `{"displayName":"eu\nwest"}`,
			wantKind: Invalid, want: []string{"/displayName control_character"}},
		{name: "name with NUL", body: `{"displayName":"eu\u0000west"}`,
			wantKind: Invalid, want: []string{"/displayName control_character"}},
		{name: "name only zero-width", body: `{"displayName":"\u200b\u200d"}`,
			wantKind: Invalid, want: []string{"/displayName control_character"}},
		{name: "name with a right-to-left override", body: `{"displayName":"abc\u202egnp.exe"}`,
			wantKind: Invalid, want: []string{"/displayName control_character"}},
		{name: "digest with a control character", body: `{"agentImageDigest":"sha256:ab\u0007"}`,
			wantKind: Invalid, want: []string{"/agentImageDigest control_character"}},
		{name: "too many members", body: manyMembers(17),
			wantKind: Invalid, want: []string{" too_many_members"}},
		{name: "name null", body: `{"displayName":null}`, wantKind: Invalid,
			want: []string{"/displayName null"}},
		{name: "name number", body: `{"displayName":42}`, wantKind: Invalid,
			want: []string{"/displayName type"}},
		{name: "name object", body: `{"displayName":{"value":"x"}}`, wantKind: Invalid,
			want: []string{"/displayName type"}},

		// tunnelServerHealthStatus.
		{name: "status wrong case", body: `{"tunnelServerHealthStatus":"Healthy"}`,
			wantKind: Invalid, want: []string{"/tunnelServerHealthStatus enum"}},
		{name: "status unknown future value", body: `{"tunnelServerHealthStatus":"unknownFutureValue"}`,
			wantKind: Invalid, want: []string{"/tunnelServerHealthStatus enum"}},
		{name: "status number", body: `{"tunnelServerHealthStatus":1}`,
			wantKind: Invalid, want: []string{"/tunnelServerHealthStatus type"}},
		{name: "status null", body: `{"tunnelServerHealthStatus":null}`,
			wantKind: Invalid, want: []string{"/tunnelServerHealthStatus null"}},

		// lastCheckinDateTime.
		{name: "checkin locale format", body: `{"lastCheckinDateTime":"14.04.2021 14:11:27 +02:00"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime format"}},
		{name: "checkin no zone", body: `{"lastCheckinDateTime":"2023-07-12T08:54:24.1234567"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime format"}},
		{name: "checkin placeholder", body: `{"lastCheckinDateTime":"String (timestamp)"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime format"}},
		{name: "8 fractional digits", body: `{"lastCheckinDateTime":"2017-01-01T00:02:46.12345678Z"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime format"}},
		{name: "empty fraction", body: `{"lastCheckinDateTime":"2017-01-01T00:02:46.Z"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime format"}},
		{name: "offset +25:00", body: `{"lastCheckinDateTime":"2024-06-01T10:00:00+25:00"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime format"}},
		{name: "offset +14:01", body: `{"lastCheckinDateTime":"2024-06-01T10:00:00+14:01"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime format"}},
		{name: "offset without colon", body: `{"lastCheckinDateTime":"2024-06-01T10:00:00+0100"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime format"}},
		{name: "lower case t and z", body: `{"lastCheckinDateTime":"2024-06-01t10:00:00z"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime format"}},
		{name: "leap second", body: `{"lastCheckinDateTime":"2016-12-31T23:59:60Z"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime format"}},
		{name: "hour 24", body: `{"lastCheckinDateTime":"2016-12-31T24:00:00Z"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime format"}},
		{name: "feb 30", body: `{"lastCheckinDateTime":"2023-02-30T00:00:00Z"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime calendar"}},
		{name: "feb 29 non-leap year", body: `{"lastCheckinDateTime":"2023-02-29T12:00:00Z"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime calendar"}},
		{name: "feb 29 year 1900", body: `{"lastCheckinDateTime":"1900-02-29T12:00:00Z"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime calendar"}},
		{name: "april 31", body: `{"lastCheckinDateTime":"2023-04-31T12:00:00Z"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime calendar"}},
		{name: "year 0", body: `{"lastCheckinDateTime":"0000-06-01T12:00:00Z"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime calendar"}},
		{name: "past year 9999 in utc", body: `{"lastCheckinDateTime":"9999-12-31T23:00:00-05:00"}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime calendar"}},
		{name: "checkin number", body: `{"lastCheckinDateTime":1500000000}`,
			wantKind: Invalid, want: []string{"/lastCheckinDateTime type"}},

		// Digests.
		{name: "digest of 1025", body: `{"agentImageDigest":"` + long(1025, "f") + `"}`,
			wantKind: Invalid, want: []string{"/agentImageDigest max_length"}},
		{name: "digest boolean", body: `{"serverImageDigest":true}`,
			wantKind: Invalid, want: []string{"/serverImageDigest type"}},

		// Nothing to change.
		{name: "empty object", body: `{}`, wantKind: Invalid, want: []string{" empty_update"}},
		{name: "only odata type", body: `{"@odata.type":"#microsoft.graph.microsoftTunnelServer"}`,
			wantKind: Invalid, want: []string{" empty_update"}},
		{name: "only id", body: `{"id":"` + testServer + `"}`,
			wantKind: Invalid, want: []string{" empty_update"}},

		// Everything at once.
		{name: "all problems at once", body: `{"displayName":null,"DisplayName":"x",` +
			`"tunnelServerHealthStatus":"Healthy","lastCheckinDateTime":"2023-02-30T00:00:00Z",` +
			`"id":"x","deploymentMode":"podRootless"}`,
			wantKind: Invalid, want: []string{"/DisplayName unknown_property",
				"/deploymentMode read_only", "/displayName null", "/id mismatch",
				"/lastCheckinDateTime calendar", "/tunnelServerHealthStatus enum"}},

		// The JSON itself.
		{name: "empty body", body: ``, wantKind: Malformed, want: []string{" syntax"}},
		{name: "blank body", body: " \n", wantKind: Malformed, want: []string{" syntax"}},
		{name: "truncated", body: `{"displayName": "x"`, wantKind: Malformed,
			want: []string{" syntax"}},
		{name: "bad literal", body: `{"displayName": tru}`, wantKind: Malformed,
			want: []string{" syntax"}},
		{name: "single quotes", body: `{'displayName': 'x'}`, wantKind: Malformed,
			want: []string{" syntax"}},
		{name: "trailing comma", body: `{"displayName":"x",}`, wantKind: Malformed,
			want: []string{" syntax"}},
		{name: "array", body: `[{"displayName": "x"}]`, wantKind: Malformed,
			want: []string{" not_object"}},
		{name: "string", body: `"x"`, wantKind: Malformed, want: []string{" not_object"}},
		{name: "number", body: `1`, wantKind: Malformed, want: []string{" not_object"}},
		{name: "null", body: `null`, wantKind: Malformed, want: []string{" not_object"}},
		{name: "two objects", body: `{"displayName": "x"} {"displayName":"y"}`,
			wantKind: Malformed, want: []string{" trailing_data"}},
		{name: "trailing garbage", body: `{"displayName": "x"}x`,
			wantKind: Malformed, want: []string{" trailing_data"}},
		{name: "duplicate key", body: `{"displayName":"a","displayName":"b"}`,
			wantKind: Malformed, want: []string{"/displayName duplicate_key"}},
		{name: "duplicate key through an escape", body: `{"displayName":"a","display\u004eame":"b"}`,
			wantKind: Malformed, want: []string{"/displayName duplicate_key"}},
		{name: "duplicate keys nested and repeated", body: `{"x":{"a":1,"a":2},"y":1,"y":2,"y":3}`,
			wantKind: Malformed, want: []string{"/x/a duplicate_key", "/y duplicate_key",
				"/y duplicate_key"}},
		{name: "invalid utf-8", body: "{\"displayName\":\"\xff\xfe\"}", wantKind: Malformed,
			want: []string{" utf8"}},
		{name: "overlong utf-8", body: "{\"displayName\":\"\xc0\xaf\"}", wantKind: Malformed,
			want: []string{" utf8"}},
		{name: "lone high surrogate", body: `{"displayName":"a\ud800b"}`, wantKind: Malformed,
			want: []string{" utf8"}},
		{name: "lone low surrogate", body: `{"displayName":"\udc00"}`, wantKind: Malformed,
			want: []string{" utf8"}},
		{name: "escaped backslash before u", body: `{"displayName":"\\ud800"}`,
			wantProp: []string{"displayName"}},
		{name: "byte order mark", body: "\xef\xbb\xbf{\"displayName\":\"x\"}", wantKind: Malformed,
			want: []string{" syntax"}},
		{name: "deep nesting", body: `{"x":` + long(100, "[") + long(100, "]") + `}`,
			wantKind: Malformed, want: []string{"/x/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0 depth"}},
		{name: "nesting within bound", body: `{"x":` + long(maxDepth-1, "[") +
			long(maxDepth-1, "]") + `}`, wantKind: Invalid, want: []string{"/x unknown_property"}},
	}
	v := testValidator(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := v.Update([]byte(tt.body), testServer)
			if gotKind := kindOf(err); gotKind != tt.wantKind {
				t.Fatalf("kind = %v (%v), want %v", gotKind, err, tt.wantKind)
			}
			if err != nil && kindOf(err) == 0 {
				t.Fatalf("error is not *Error: %v", err)
			}
			if gotProblems := problems(err); !slices.Equal(gotProblems, tt.want) {
				t.Errorf("problems = %q, want %q\n(%v)", gotProblems, tt.want, err)
			}
			if tt.wantKind == 0 && !slices.Equal(got.Properties, tt.wantProp) {
				t.Errorf("properties = %v, want %v", got.Properties, tt.wantProp)
			}
		})
	}
}

func TestUpdateDetails(t *testing.T) {
	t.Parallel()
	v := testValidator(t)
	tests := []struct {
		name, body  string
		wantDetail  string // a part of the one field error's detail
		wantAllowed []string
	}{
		{"enum lists values", `{"tunnelServerHealthStatus":"Healthy"}`, "case-sensitive",
			[]string{"unknown", "healthy", "unhealthy", "warning", "offline",
				"upgradeInProgress", "upgradeFailed"}},
		{"const lists the type", `{"@odata.type":"x","displayName":"x"}`,
			"#microsoft.graph.microsoftTunnelServer", []string{ODataType}},
		{"case variant suggests the name", `{"DisplayName":"x"}`, "did you mean displayName?", nil},
		{"read-only says so", `{"deploymentMode":"podRootless"}`, "read-only", nil},
		{"null gives the reason", `{"displayName":null}`, "not nullable", nil},
		{"length counts code points", `{"displayName":"` + strings.Repeat("é", 201) + `"}`,
			"at most 200 characters (Unicode code points), got 201", nil},
		{"digest bound", `{"displayName":"é","agentImageDigest":"` +
			strings.Repeat("x", 1025) + `"}`, "at most 1024 characters", nil},
		{"calendar names the fault", `{"lastCheckinDateTime":"2023-02-30T00:00:00Z"}`,
			"day out of range", nil},
		{"id names the path id", `{"id":"x","displayName":"x"}`, testServer, nil},
		{"long value cut short", `{"tunnelServerHealthStatus":"` + strings.Repeat("y", 5000) +
			`"}`, "yyyy\"…", []string{"unknown", "healthy", "unhealthy", "warning", "offline",
			"upgradeInProgress", "upgradeFailed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := v.Update([]byte(tt.body), testServer)
			var verr *Error
			if !errors.As(err, &verr) || len(verr.Fields) != 1 {
				t.Fatalf("got %v, want one field error", err)
			}
			f := verr.Fields[0]
			if !strings.Contains(f.Detail, tt.wantDetail) {
				t.Errorf("detail = %q, want it to contain %q", f.Detail, tt.wantDetail)
			}
			if !slices.Equal(f.Allowed, tt.wantAllowed) {
				t.Errorf("allowed = %q, want %q", f.Allowed, tt.wantAllowed)
			}
			if len(f.Detail) > 400 {
				t.Errorf("detail is %d bytes long, want a short sentence", len(f.Detail))
			}
		})
	}
}

func TestUpdateForward(t *testing.T) {
	t.Parallel()
	v := testValidator(t)
	tests := []struct {
		name, body, want string
	}{
		{"odata type added", `{"displayName":"x"}`,
			`{"@odata.type":"#microsoft.graph.microsoftTunnelServer","displayName":"x"}`},
		{"odata type kept first, id second, rest sorted",
			`{"tunnelServerHealthStatus":"healthy","id":"` + testServer + `",` +
				`"@odata.type":"#microsoft.graph.microsoftTunnelServer","displayName":"a<b&c"}`,
			`{"@odata.type":"#microsoft.graph.microsoftTunnelServer","id":"` + testServer +
				`","displayName":"a<b&c","tunnelServerHealthStatus":"healthy"}`},
		{"escapes decoded and re-encoded", `{"displayName":"\u00e9\"\\\u0041"}`,
			`{"@odata.type":"#microsoft.graph.microsoftTunnelServer","displayName":"é\"\\A"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := v.Update([]byte(tt.body), testServer)
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if string(got.Forward) != tt.want {
				t.Errorf("forward = %s, want %s", got.Forward, tt.want)
			}
			if !json.Valid(got.Forward) {
				t.Errorf("forward is not valid JSON: %s", got.Forward)
			}
		})
	}
}

// TestSchemaComesFromSpec changes a bound in the spec and sees the validator follow: the rules
// live in openapi.yaml, not in Go.
func TestSchemaComesFromSpec(t *testing.T) {
	t.Parallel()
	spec := tunnelgateway.OpenAPI
	edited := bytes.Replace(spec, []byte("maxLength: 200"), []byte("maxLength: 5"), 1)
	if bytes.Equal(edited, spec) {
		t.Fatal("openapi.yaml has no 'maxLength: 200' to edit")
	}
	v, err := newFromSpec(edited)
	if err != nil {
		t.Fatalf("newFromSpec: %v", err)
	}
	_, err = v.Update([]byte(`{"displayName":"123456"}`), testServer)
	if got, want := problems(err), []string{"/displayName max_length"}; !slices.Equal(got, want) {
		t.Errorf("problems = %q, want %q", got, want)
	}
}

func TestNewFromBrokenSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec string
	}{
		{"not yaml", "openapi: [3.1.0"},
		{"no update schema", "openapi: 3.1.0\ncomponents: {schemas: {}}\n"},
		{"bad schema", "openapi: 3.1.0\ncomponents:\n  schemas:\n" +
			"    MicrosoftTunnelServerUpdate: {type: 7}\n    MicrosoftTunnelServer: {}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := newFromSpec([]byte(tt.spec)); err == nil {
				t.Error("newFromSpec succeeded, want an error")
			}
		})
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{"lower case", testServer, true},
		{"upper case", strings.ToUpper(testServer), true},
		{"empty", "", false},
		{"braces", "{" + testServer + "}", false},
		{"no dashes", strings.ReplaceAll(testServer, "-", ""), false},
		{"traversal", "../../../users", false},
		{"escaped traversal", "..%2F..%2F..%2Fusers", false},
		{"trailing newline", testServer + "\n", false},
		{"non-hex", "g5cf0aee-0aee-b5cf-ee0a-cfb5ee0acfb5", false},
		{"too long", testServer + "0", false},
		{"query", testServer[:35] + "?", false},
		{"dash misplaced", testServer[:7] + "-" + testServer[8:], false},
		{"non-ASCII", "é" + testServer[2:], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ValidID(tt.id); got != tt.want {
				t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
			}
			if got, want := ValidID(tt.id), idRegexp.MatchString(tt.id); got != want {
				t.Errorf("ValidID(%q) = %v, IDPattern says %v", tt.id, got, want)
			}
		})
	}
}

var idRegexp = regexp.MustCompile(IDPattern)

// FuzzValidID holds the hand-written check to IDPattern, which openapi.yaml publishes.
func FuzzValidID(f *testing.F) {
	for _, seed := range []string{testServer, strings.ToUpper(testServer), "", "../x",
		testServer[:35] + "g", strings.ReplaceAll(testServer, "-", "0")} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := ValidID(id), idRegexp.MatchString(id); got != want {
			t.Fatalf("ValidID(%q) = %v, IDPattern says %v", id, got, want)
		}
	})
}

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	_, err := testValidator(t).Update([]byte(`{"displayName":""}`), testServer)
	want := "invalid request: 2 problems in the request body; " +
		"/displayName: min_length: must be at least 1 character (Unicode code points), got 0; " +
		"/displayName: not_blank: must contain a character that is not white space"
	if got := fmt.Sprint(err); got != want {
		t.Errorf("error = %q\nwant %q", got, want)
	}
}

// TestRuleNamesPublished keeps the rule names in openapi.yaml (FieldError.rule) and in this
// package the same.
func TestRuleNamesPublished(t *testing.T) {
	t.Parallel()
	var doc struct {
		Components struct {
			Schemas struct {
				FieldError struct {
					Properties struct {
						Rule struct {
							Enum []string `json:"enum"`
						} `json:"rule"`
					} `json:"properties"`
				} `json:"FieldError"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := yaml.Unmarshal(tunnelgateway.OpenAPI, &doc); err != nil {
		t.Fatalf("read openapi.yaml: %v", err)
	}
	got := doc.Components.Schemas.FieldError.Properties.Rule.Enum
	want := append(slices.Clone(knownRules), RuleSchema)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("openapi.yaml rules = %q\nwant %q", got, want)
	}
}

// manyMembers is a body of n unknown members.
func manyMembers(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"x%d":1`, i)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// TestSyntaxDetails checks that a broken body or value is described in words a caller can act
// on.
func TestSyntaxDetails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want string
	}{
		{name: "byte order mark", body: "\xef\xbb\xbf{\"displayName\":\"x\"}",
			want: "byte-order mark"},
		{name: "ends inside a name", body: `{"displayN`,
			want: "stops after 10 bytes with a value still open"},
		{name: "ends inside a value", body: `{"displayName":"abc`,
			want: "stops after 19 bytes with a value still open"},
		{name: "bad character", body: `{"displayName": tru}`, want: "invalid JSON at byte"},
		{name: "leap second", body: `{"lastCheckinDateTime":"2016-12-31T23:59:60Z"}`,
			want: "no leap second"},
	}
	v := testValidator(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := v.Update([]byte(tt.body), testServer)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one saying %q", err, tt.want)
			}
		})
	}
}
