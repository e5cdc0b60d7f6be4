//go:build linux

package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr []string // substrings; nil means no error
	}{
		{name: "defaults", args: nil},
		{name: "short run", args: []string{"-saturation-duration", "2s", "-rate", "50",
			"-connections", "100", "-gateway-env", "GOGC=50"}},
		{name: "every bad bound reported together",
			args:    []string{"-saturation-duration", "2h", "-connections", "0", "-rate", "9000"},
			wantErr: []string{"-saturation-duration=2h0m0s", "-connections=0", "-rate=9000"}},
		{name: "env without a value", args: []string{"-gateway-env", "GOGC"},
			wantErr: []string{`"GOGC": want KEY=VALUE`}},
		{name: "stray argument", args: []string{"extra"}, wantErr: []string{"unexpected"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want one naming %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("got %q, want it to name %q", err, want)
				}
			}
		})
	}
}

// TestBareProxyPatchesSimulator checks the baseline does the upstream work the gateway does:
// the simulator must accept its token and apply the example PATCH.
func TestBareProxyPatchesSimulator(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := newBench(ctx, settings{gatewayBin: "unused"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	t.Setenv("SSL_CERT_FILE", b.caPath)

	addr, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	proxyCtx, stopProxy := context.WithCancel(ctx)
	go func() {
		served <- serveBareProxy(proxyCtx, []string{"-addr", addr, "-upstream", b.sim.URL(),
			"-ca-file", b.caPath},
			strings.NewReader(b.token+"\n"))
	}()
	c := &child{name: "bare proxy", baseURL: "http://" + addr, adminURL: "http://" + addr}
	if err := c.awaitReady(c.adminURL + bareReadyPath); err != nil {
		t.Fatal(err)
	}

	tgt := b.target(c)
	req, err := http.NewRequestWithContext(ctx, tgt.Method, tgt.URL, bytes.NewReader(tgt.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = tgt.Header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Fatalf("PATCH through the bare proxy: status %d, want %d; body %s", got, want, body)
	}
	if got, want := b.sim.Counters().PatchesApplied, int64(1); got != want {
		t.Errorf("patches applied by the simulator: %d, want %d", got, want)
	}

	stopProxy()
	if err := <-served; err != nil {
		t.Errorf("bare proxy stopped with %v", err)
	}
}

// TestFloorServerHoldsEachRequest checks the floor does what its figure claims: it reads the
// body and holds each request floorHold before answering, so the in-flight phase keeps its
// requests in the server.
func TestFloorServerHoldsEachRequest(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	floorCtx, stopFloor := context.WithCancel(ctx)
	go func() { served <- serveFloor(floorCtx, []string{"-addr", addr}) }()
	c := &child{name: "floor server", baseURL: "http://" + addr, adminURL: "http://" + addr}
	if err := c.awaitReady(c.adminURL + bareReadyPath); err != nil {
		t.Fatal(err)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, c.baseURL+examplePath,
		bytes.NewReader(exampleBody))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(began)
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Errorf("status: got %d, want %d; body %s", got, want, body)
	}
	if !bytes.Equal(body, floorAnswer) {
		t.Errorf("body: got %q, want %q", body, floorAnswer)
	}
	if took < floorHold {
		t.Errorf("answered after %s, want at least the hold of %s", took, floorHold)
	}

	stopFloor()
	if err := <-served; err != nil {
		t.Errorf("floor server stopped with %v", err)
	}
}

// TestShorterThanDefaults checks which settings mark the verdicts as indicative.
func TestShorterThanDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want bool
	}{
		{name: "defaults", want: false},
		{name: "longer runs", args: []string{"-rate-duration", "30s"}, want: false},
		{name: "short saturation", args: []string{"-saturation-duration", "2s"}, want: true},
		{name: "short rate", args: []string{"-rate-duration", "2s"}, want: true},
		{name: "short memory runs", args: []string{"-connections-duration", "1s"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := parseFlags(tt.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.shorterThanDefaults(); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestGatewayGOGC checks the floor server gets the collector goal the gateway runs with.
func TestGatewayGOGC(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  envList
		want string
	}{
		{name: "the gateway's own default", want: gatewayDefaultGOGC},
		{name: "set for the gateway", env: envList{"GOGC=50"}, want: "50"},
		{name: "the last one wins", env: envList{"GOGC=50", "GOMEMLIMIT=1GiB", "GOGC=off"},
			want: "off"},
		{name: "empty names none", env: envList{"GOGC="}, want: gatewayDefaultGOGC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &bench{s: settings{gatewayEnv: tt.env}}
			if got := b.gatewayGOGC(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
