package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer lets the test read output while run writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRunPrintsConnectionAndStops(t *testing.T) {
	t.Parallel()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-ca-out", caFile, "-window", "5s",
			"-client-id", "11111111-1111-1111-1111-111111111111", "-client-secret", "hidden!"}, out)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "SSL_CERT_FILE") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	text := out.String()
	for _, want := range []string{"export AZURE_AUTHORITY_HOST=https://127.0.0.1:",
		"export AZURE_CLIENT_ID=11111111-1111-1111-1111-111111111111", "/beta", caFile,
		"shutting down"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "hidden!") {
		t.Errorf("output reveals the secret given on the command line:\n%s", text)
	}
	if pem, err := os.ReadFile(caFile); err != nil || !bytes.Contains(pem, []byte("CERTIFICATE")) {
		t.Errorf("CA file: got %q, %v", pem, err)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"unknown flag", []string{"-colour", "blue"}},
		{"extra argument", []string{"serve"}},
		{"negative window", []string{"-addr", "127.0.0.1:0", "-window", "-1s"}},
		{"missing seed", []string{"-addr", "127.0.0.1:0", "-seed", "/nonexistent/seed.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := run(context.Background(), tt.args, &bytes.Buffer{}); err == nil {
				t.Errorf("run(%v): got nil error", tt.args)
			}
		})
	}
}
