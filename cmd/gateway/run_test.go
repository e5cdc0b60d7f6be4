package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRunReportsConfiguration says exactly what is wrong, all at once, naming each variable,
// its value and the rule.
func TestRunReportsConfiguration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		environ []string
		want    []string
	}{
		{name: "nothing set", want: []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID",
			"AZURE_CLIENT_SECRET", "GATEWAY_POLICY_FILE"}},
		{name: "a bad log level among other problems", environ: []string{"LOG_LEVEL=verbose"},
			want: []string{`LOG_LEVEL="verbose": must be debug, info, warn or error`,
				"AZURE_TENANT_ID", "GATEWAY_POLICY_FILE"}},
		{name: "values that do not parse",
			environ: []string{"GATEWAY_WRITE_WINDOW=5x", "GATEWAY_MAX_RETRIES=abc"},
			want: []string{`GATEWAY_WRITE_WINDOW="5x": not a duration`,
				`GATEWAY_MAX_RETRIES="abc": not a whole number`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := run(context.Background(), nil, tc.environ, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("run with a bad configuration succeeded")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not contain %q:\n%v", want, err)
				}
			}
		})
	}
}

// TestRunHelp prints the usage on standard output and succeeds, even when the environment
// holds values that would stop the gateway.
func TestRunHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
	}{
		{name: "-h", args: []string{"-h"}},
		{name: "--help", args: []string{"--help"}},
		{name: "-h with a broken environment", args: []string{"-h"},
			environ: []string{"GATEWAY_WRITE_WINDOW=5x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut strings.Builder
			if err := run(context.Background(), tc.args, tc.environ, &out, &errOut); err != nil {
				t.Fatalf("run(%v) = %v, want nil", tc.args, err)
			}
			for _, want := range []string{"Usage: gateway", "-demo", "-policy",
				`"Configuration" in README.md`, "GATEWAY_POLICY_FILE", "AZURE_TENANT_ID"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("usage lacks %q:\n%s", want, out.String())
				}
			}
			if errOut.Len() != 0 {
				t.Errorf("stderr: got %q, want nothing", errOut.String())
			}
		})
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"unknown flag", []string{"--nope"}},
		{"stray argument", []string{"--demo", "extra"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, nil, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "gateway -h") {
				t.Errorf("run(%v) = %v, want an error pointing at gateway -h", tc.args, err)
			}
		})
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestDemoCurlWorksAsPrinted runs the demo, then performs the curl command it prints: same
// method, URL, headers and body. The banner goes to standard error, never to standard output,
// which carries the audit trail; and the drain, when the demo stops, logs its timeout with a
// unit.
func TestDemoCurlWorksAsPrinted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, logs lockedBuffer
	done := make(chan error, 1)
	args := []string{"--demo", "--demo-api-key", "printed-key", "--addr", freeAddr(t),
		"--admin-addr", freeAddr(t)}
	go func() { done <- run(ctx, args, []string{"GATEWAY_AUDIT_LOG=-"}, &out, &logs) }()

	curl := regexp.MustCompile(`(?s)curl -sS -X (\w+) (\S+) \\\s+-H '([^']+)' -H '([^']+)' \\\s+-d '([^']+)'`)
	var m []string
	for deadline := time.Now().Add(20 * time.Second); m == nil; {
		m = curl.FindStringSubmatch(logs.String())
		if m == nil && time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("the demo printed no curl command on stderr:\n%s\nstdout:\n%s",
				logs.String(), out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(m[3], "printed-key") {
		t.Errorf("the curl line carries %q, want the key given by --demo-api-key", m[3])
	}
	if strings.Contains(out.String(), "printed-key") || strings.Contains(out.String(), "curl") {
		t.Errorf("stdout holds the banner, where only audit events may go:\n%s", out.String())
	}

	req, err := http.NewRequest(m[1], m[2], strings.NewReader(m[5]))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{m[3], m[4]} {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "tunnel-eu-west-01") {
		t.Errorf("printed curl answered %d: %s", resp.StatusCode, body)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("demo stopped with: %v", err)
	}
	drain := logLine(t, logs.String(), "draining")
	if got, want := drain["drain_timeout_seconds"], 25.0; got != want {
		t.Errorf("draining drain_timeout_seconds: got %v, want %v (line %v)", got, want, drain)
	}
}

// logLine finds the operational log line whose message is msg; banner lines are not JSON
// and are passed over.
func logLine(t *testing.T, logs, msg string) map[string]any {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var fields map[string]any
		if json.Unmarshal([]byte(line), &fields) == nil && fields["msg"] == msg {
			return fields
		}
	}
	t.Fatalf("no log line %q in:\n%s", msg, logs)
	return nil
}
