package config

import (
	"strings"
	"testing"
)

func validEnv() []string {
	return []string{
		"AZURE_TENANT_ID=8a2c5e1f-3b4d-4c6e-9f70-1a2b3c4d5e6f",
		"AZURE_CLIENT_ID=3f1d7c2a-9b8e-4a6f-8c5d-2e1f0a9b8c7d",
		"AZURE_CLIENT_SECRET=s",
		"GATEWAY_POLICY_FILE=/etc/gateway/policy.yaml",
		"GATEWAY_AUTH_AUDIENCES=api://tunnel-gateway",
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		extra []string
		// want lists what the error must name; empty means valid.
		want []string
	}{
		{name: "complete", want: nil},
		{name: "managed identity needs no client secret",
			extra: []string{"AZURE_CLIENT_SECRET=", "GATEWAY_USE_MANAGED_IDENTITY=true"}},
		{name: "every problem at once", extra: []string{
			"GATEWAY_ADDR=8080", "LOG_LEVEL=loud", "GRAPH_BASE_URL=http://graph.example",
			"GATEWAY_MAX_RETRIES=11", "GATEWAY_WRITE_QUEUE=0", "GATEWAY_MAX_BODY_BYTES=10",
		}, want: []string{"GATEWAY_ADDR", "LOG_LEVEL", "GRAPH_BASE_URL", "GATEWAY_MAX_RETRIES",
			"GATEWAY_WRITE_QUEUE", "GATEWAY_MAX_BODY_BYTES"}},
		{name: "no credential", extra: []string{"AZURE_CLIENT_SECRET="},
			want: []string{"no Graph credential"}},
		{name: "a base url with a query", extra: []string{"GRAPH_BASE_URL=https://g.example/beta?x=1"},
			want: []string{"GRAPH_BASE_URL", "query"}},
		{name: "an app-only scope", extra: []string{"GRAPH_SCOPE=User.Read"},
			want: []string{"GRAPH_SCOPE"}},
		{name: "redis settings without an address", extra: []string{"GATEWAY_REDIS_TLS=true"},
			want: []string{"GATEWAY_REDIS_ADDR"}},
		{name: "the same listener twice", extra: []string{"GATEWAY_ADDR=:9000", "GATEWAY_ADMIN_ADDR=:9000"},
			want: []string{"GATEWAY_ADMIN_ADDR"}},
		{name: "an attempt longer than the request", extra: []string{"GATEWAY_REQUEST_TIMEOUT=1s",
			"GATEWAY_UPSTREAM_TIMEOUT=1h"}, want: []string{"GATEWAY_UPSTREAM_TIMEOUT"}},
		{name: "trusted proxies", extra: []string{"GATEWAY_TRUSTED_PROXIES=10.0.0.0/8, fd00::/8,"}},
		{name: "every bad trusted proxy at once", extra: []string{
			"GATEWAY_TRUSTED_PROXIES=10.0.0.0/33,proxy.local,10.0.0.1", "LOG_LEVEL=loud",
		}, want: []string{`GATEWAY_TRUSTED_PROXIES entry "10.0.0.0/33": must be a CIDR`,
			`"proxy.local"`, `"10.0.0.1"`, "LOG_LEVEL"}},
		{name: "breaker settings", extra: []string{"GATEWAY_BREAKER_FAILURES=0",
			"GATEWAY_BREAKER_COOLDOWN=0s"}, want: []string{"GATEWAY_BREAKER_FAILURES",
			"GATEWAY_BREAKER_COOLDOWN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := FromEnv(append(validEnv(), tc.extra...))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors naming %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestCallersDefaultToGraphTenant(t *testing.T) {
	t.Parallel()
	c, err := FromEnv(validEnv())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Callers.TenantID, "8a2c5e1f-3b4d-4c6e-9f70-1a2b3c4d5e6f"; got != want {
		t.Errorf("Callers.TenantID = %q, want %q", got, want)
	}
	if got, want := c.Graph.Credential(), "client-secret"; got != want {
		t.Errorf("Credential() = %q, want %q", got, want)
	}
}

func TestEnvNames(t *testing.T) {
	t.Parallel()
	names, err := EnvNames()
	if err != nil {
		t.Fatal(err)
	}
	joined := "," + strings.Join(names, ",") + ","
	for _, want := range []string{"AZURE_TENANT_ID", "GATEWAY_POLICY_FILE", "GATEWAY_REDIS_TLS"} {
		if !strings.Contains(joined, ","+want+",") {
			t.Errorf("EnvNames() lacks %s", want)
		}
	}
}

// TestParseErrorsNameVariables reports every value that does not parse, by the variable an
// operator set, with the value and the rule, and never by the Go field behind it.
func TestParseErrorsNameVariables(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		extra   []string
		want    []string
		notWant []string
	}{
		{name: "a duration and a number together",
			extra: []string{"GATEWAY_WRITE_WINDOW=5x", "GATEWAY_MAX_RETRIES=abc"},
			want: []string{`GATEWAY_WRITE_WINDOW="5x": not a duration (e.g. 20s`,
				`GATEWAY_MAX_RETRIES="abc": not a whole number`},
			notWant: []string{"WriteWindow", "MaxRetries", "parse error on field"}},
		{name: "a boolean", extra: []string{"GATEWAY_REDIS_TLS=maybe"},
			want:    []string{`GATEWAY_REDIS_TLS="maybe": not true or false`},
			notWant: []string{"RedisTLS"}},
		{name: "a nested section's duration", extra: []string{"GATEWAY_AUTH_LEEWAY=soon"},
			want: []string{`GATEWAY_AUTH_LEEWAY="soon": not a duration`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := FromEnv(append(validEnv(), tc.extra...))
			if err == nil {
				t.Fatalf("FromEnv(%v) = nil error, want one naming %v", tc.extra, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			for _, nw := range tc.notWant {
				if strings.Contains(err.Error(), nw) {
					t.Errorf("error contains %q:\n%v", nw, err)
				}
			}
			// What parsed is still there, so flags and -h can be read before giving up.
			if got, want := c.Graph.ClientSecret, "s"; got != want {
				t.Errorf("Graph.ClientSecret beside the error: got %q, want %q", got, want)
			}
		})
	}
}

// TestEverySettingNamedOnParseError sets each variable to a value no type accepts: whatever
// fails must be reported by its variable, so a new field can never bring back Go field names.
func TestEverySettingNamedOnParseError(t *testing.T) {
	t.Parallel()
	names, err := EnvNames()
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, name := range names {
		_, err := FromEnv([]string{name + "=%bad"})
		if err == nil {
			continue // a string setting takes anything here; Validate judges it
		}
		failed++
		if want := name + `="%bad": `; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, want)
		}
	}
	if failed == 0 {
		t.Error("no setting failed to parse; the test checks nothing")
	}
}

func TestTrustedProxyPrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
		want  []string
	}{
		{name: "unset", value: "", want: nil},
		{name: "list with spaces and a trailing comma", value: " 10.0.0.0/8 ,fd00::/8,",
			want: []string{"10.0.0.0/8", "fd00::/8"}},
		{name: "host bits are masked", value: "192.168.1.7/24", want: []string{"192.168.1.0/24"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := FromEnv(append(validEnv(), "GATEWAY_TRUSTED_PROXIES="+tt.value))
			if err != nil {
				t.Fatal(err)
			}
			prefixes, err := c.TrustedProxyPrefixes()
			if err != nil {
				t.Fatalf("TrustedProxyPrefixes: %v", err)
			}
			var got []string
			for _, p := range prefixes {
				got = append(got, p.String())
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("prefixes: got %q, want %q", got, tt.want)
			}
		})
	}
}
