package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRunWithoutConfiguration says exactly what is missing, all at once.
func TestRunWithoutConfiguration(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), nil, nil, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("run without configuration succeeded")
	}
	for _, want := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
		"GATEWAY_POLICY_FILE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
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
			if err := run(context.Background(), tc.args, nil, io.Discard, io.Discard); err == nil {
				t.Errorf("run(%v) succeeded", tc.args)
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
// method, URL, headers and body.
func TestDemoCurlWorksAsPrinted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var out, logs lockedBuffer
	done := make(chan error, 1)
	args := []string{"--demo", "--demo-api-key", "printed-key", "--addr", freeAddr(t),
		"--admin-addr", freeAddr(t)}
	go func() { done <- run(ctx, args, []string{"GATEWAY_AUDIT_LOG=-"}, &out, &logs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo stopped with: %v", err)
		}
	}()

	curl := regexp.MustCompile(`(?s)curl -sS -X (\w+) (\S+) \\\s+-H '([^']+)' -H '([^']+)' \\\s+-d '([^']+)'`)
	var m []string
	for deadline := time.Now().Add(20 * time.Second); m == nil; {
		m = curl.FindStringSubmatch(out.String())
		if m == nil && time.Now().After(deadline) {
			t.Fatalf("the demo printed no curl command:\n%s\nlog:\n%s", out.String(), logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(m[3], "printed-key") {
		t.Errorf("the curl line carries %q, want the key given by --demo-api-key", m[3])
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
}
