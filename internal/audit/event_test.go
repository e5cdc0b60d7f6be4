package audit

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestHostileValuesCannotForgeLines(t *testing.T) {
	t.Parallel()
	forged := "\n{\"apiVersion\":\"tunnelgateway.audit/v1\",\"auditID\":\"forged\"}\n"
	tests := []struct {
		name  string
		value string
		// want is the value read back; invalid UTF-8 comes back as U+FFFD.
		want string
	}{
		{"newline then forged event", forged, forged},
		{"carriage return", "a\rb", "a\rb"},
		{"line separator", "a\u2028{\"auditID\":\"forged\"}", "a\u2028{\"auditID\":\"forged\"}"},
		{"paragraph separator", "a\u2029b", "a\u2029b"},
		{"control characters", "a\x00b\x1bc\x7f", "a\x00b\x1bc\x7f"},
		{"invalid UTF-8", "a\xff\xfe\n{}", "a\ufffd\ufffd\n{}"},
		{"html", "</script><b>&", "</script><b>&"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, path := openTestLog(t, Config{})
			e := testEvent("hostile")
			e.UserAgent = tt.value
			e.User.Name = tt.value
			e.RequestObject["displayName"] = tt.value
			e.RequestObject[tt.value] = "key"
			e.Annotations = map[string]string{AnnotationValidation: tt.value}
			if err := l.RequestReceived(context.Background(), e); err != nil {
				t.Fatalf("RequestReceived: %v", err)
			}

			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			checkSingleSafeLine(t, raw)
			events, err := ReadEvents(path)
			if err != nil {
				t.Fatalf("ReadEvents: %v", err)
			}
			got := events[0]
			if got.AuditID != "hostile" {
				t.Errorf("auditID: got %q, want %q", got.AuditID, "hostile")
			}
			for field, value := range map[string]any{
				"userAgent":                 got.UserAgent,
				"user.name":                 got.User.Name,
				"requestObject.displayName": got.RequestObject["displayName"],
				"annotation":                got.Annotations[AnnotationValidation],
			} {
				if value != tt.want {
					t.Errorf("%s: got %q, want %q", field, value, tt.want)
				}
			}
			if got.RequestObject[tt.want] != "key" {
				t.Errorf("requestObject key: got %v, want key %q kept", got.RequestObject, tt.want)
			}
		})
	}
}

// checkSingleSafeLine fails unless raw is one line of valid UTF-8 with no control bytes and
// no raw U+2028 or U+2029 (which some JSON-lines readers treat as line ends).
func checkSingleSafeLine(t *testing.T, raw []byte) {
	t.Helper()
	if got := bytes.Count(raw, []byte("\n")); got != 1 || raw[len(raw)-1] != '\n' {
		t.Fatalf("file has %d newlines, want exactly one, at the end: %q", got, raw)
	}
	if !utf8.Valid(raw) {
		t.Errorf("line is not valid UTF-8: %q", raw)
	}
	for i, c := range raw[:len(raw)-1] {
		if c < 0x20 {
			t.Fatalf("raw control byte %#x at offset %d: %q", c, i, raw)
		}
	}
	if bytes.ContainsRune(raw, '\u2028') || bytes.ContainsRune(raw, '\u2029') {
		t.Errorf("raw line or paragraph separator in %q", raw)
	}
}

func TestNewEventRecordsNoCredentials(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-value"
	r := httptest.NewRequest("PATCH",
		"/deviceManagement/microsoftTunnelSites/site-1/microsoftTunnelServers/srv-1"+
			"?access_token="+secret+"&code="+secret, strings.NewReader(`{}`))
	r.Header.Set("Authorization", "Bearer "+secret)
	r.Header.Set("Cookie", "session="+secret)
	r.Header.Set("X-Api-Key", secret)
	r.Header.Set("Proxy-Authorization", "Basic "+secret)
	r.Header.Set("User-Agent", "deploy-tool/1.0")
	r.RemoteAddr = "192.0.2.7:51234"

	l, path := openTestLog(t, Config{})
	e := NewEvent(r, "req-1", "/deviceManagement/microsoftTunnelSites/:siteId/"+
		"microsoftTunnelServers/:serverId", time.Now(), nil)
	if err := l.RequestReceived(context.Background(), e); err != nil {
		t.Fatalf("RequestReceived: %v", err)
	}
	if err := l.ResponseComplete(e); err != nil {
		t.Fatalf("ResponseComplete: %v", err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{secret, "Bearer", "session=", "access_token", "?"} {
		if bytes.Contains(raw, []byte(leak)) {
			t.Errorf("audit trail contains %q: %s", leak, raw)
		}
	}

	events, err := ReadEvents(path)
	if err != nil {
		t.Fatalf("ReadEvents: %v", err)
	}
	got := events[0]
	for _, c := range []struct{ field, got, want string }{
		{"requestURI", got.RequestURI,
			"/deviceManagement/microsoftTunnelSites/site-1/microsoftTunnelServers/srv-1"},
		{"verb", got.Verb, VerbPatch},
		{"userAgent", got.UserAgent, "deploy-tool/1.0"},
		{"level", string(got.Level), string(LevelMetadata)},
		{"apiVersion", got.APIVersion, APIVersion},
		{"kind", got.Kind, Kind},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.field, c.got, c.want)
		}
	}
	if len(got.SourceIPs) != 1 || got.SourceIPs[0] != "192.0.2.7" {
		t.Errorf("sourceIPs: got %v, want [192.0.2.7]", got.SourceIPs)
	}
}

func TestEncode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		level    Level
		agent    string
		wantBody bool
		wantUA   int
	}{
		{"metadata level drops the body", LevelMetadata, "ua", false, 2},
		{"request level keeps the body", LevelRequest, "ua", true, 2},
		{"long user agent is cut", LevelMetadata, strings.Repeat("é", 600), false, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := testEvent("enc")
			e.Level, e.UserAgent = tt.level, tt.agent
			line, err := encode(e)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			events, err := DecodeEvents(bytes.NewReader(line))
			if err != nil || len(events) != 1 {
				t.Fatalf("DecodeEvents: %v, %d events", err, len(events))
			}
			if got := events[0].RequestObject != nil; got != tt.wantBody {
				t.Errorf("requestObject present: got %v, want %v", got, tt.wantBody)
			}
			if got := len(events[0].UserAgent); got != tt.wantUA {
				t.Errorf("userAgent bytes: got %d, want %d", got, tt.wantUA)
			}
			if e.RequestObject == nil {
				t.Error("encode cleared the caller's requestObject")
			}
		})
	}
}

func TestDecodeEvents(t *testing.T) {
	t.Parallel()
	good := `{"auditID":"a","stage":"RequestReceived"}` + "\n"
	tests := []struct {
		name    string
		input   string
		want    int
		wantErr string
	}{
		{"empty", "", 0, ""},
		{"complete lines", good + good, 2, ""},
		{"torn last line", good + `{"auditID":"b","sta`, 1, ""},
		{"last line complete without newline", good + `{"auditID":"b"}`, 2, ""},
		{"corrupt middle line", good + "{oops\n" + good, 1, "line 2"},
		{"blank lines", "\n" + good + "\n", 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeEvents(strings.NewReader(tt.input))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" &&
				(err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error: got %v, want %q", err, tt.wantErr)
			}
			if len(got) != tt.want {
				t.Errorf("events: got %d, want %d", len(got), tt.want)
			}
		})
	}
}

func TestSourceIPs(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8")}
	many := make([]string, 20)
	for i := range many {
		many[i] = fmt.Sprintf("198.51.100.%d", i)
	}
	tests := []struct {
		name      string
		peer      string
		forwarded []string // X-Forwarded-For headers, one value each
		trusted   []netip.Prefix
		want      []string
	}{
		{name: "no proxy trusted", peer: "10.1.2.3:4000", forwarded: []string{"203.0.113.7"},
			want: []string{"10.1.2.3"}},
		{name: "peer outside the trusted proxies", peer: "192.0.2.9:4000",
			forwarded: []string{"203.0.113.7"}, trusted: proxies, want: []string{"192.0.2.9"}},
		{name: "trusted proxy", peer: "10.1.2.3:4000", forwarded: []string{"203.0.113.7"},
			trusted: proxies, want: []string{"203.0.113.7", "10.1.2.3"}},
		{name: "trusted proxy, chain in one header", peer: "10.1.2.3:4000",
			forwarded: []string{"203.0.113.7, 10.9.9.9"}, trusted: proxies,
			want: []string{"203.0.113.7", "10.9.9.9", "10.1.2.3"}},
		{name: "trusted proxy, chain over two headers", peer: "10.1.2.3:4000",
			forwarded: []string{"203.0.113.7", "10.9.9.9"}, trusted: proxies,
			want: []string{"203.0.113.7", "10.9.9.9", "10.1.2.3"}},
		{name: "trusted proxy without the header", peer: "10.1.2.3:4000", trusted: proxies,
			want: []string{"10.1.2.3"}},
		{name: "entries that are no address are dropped", peer: "10.1.2.3:4000",
			forwarded: []string{`unknown, "><script>, 203.0.113.7:80, 203.0.113.8`},
			trusted:   proxies, want: []string{"203.0.113.8", "10.1.2.3"}},
		{name: "proxy listing itself last", peer: "10.1.2.3:4000",
			forwarded: []string{"203.0.113.7, 10.1.2.3"}, trusted: proxies,
			want: []string{"203.0.113.7", "10.1.2.3"}},
		{name: "ipv6 proxy", peer: "[fd00::1]:4000", forwarded: []string{"2001:db8::7"},
			trusted: proxies, want: []string{"2001:db8::7", "fd00::1"}},
		{name: "long chain keeps the nearest hops", peer: "10.1.2.3:4000",
			forwarded: []string{strings.Join(many, ",")}, trusted: proxies,
			want: append(append([]string{}, many[4:]...), "10.1.2.3")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/v1/tunnel-sites", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.forwarded {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := SourceIPs(r, tt.trusted); !slices.Equal(got, tt.want) {
				t.Errorf("SourceIPs: got %q, want %q", got, tt.want)
			}
		})
	}
}
