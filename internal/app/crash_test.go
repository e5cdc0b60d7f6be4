package app_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/graphsim"
)

// buildGateway compiles cmd/gateway once per test binary run.
var buildGateway = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tunnelgateway-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "gateway")
	out, err := exec.Command("go", "build", "-o", bin, "tunnelgateway/cmd/gateway").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestCrashKeepsAuditOfEveryUpdate kills the gateway process with SIGKILL while it serves a
// load of updates, then checks that every update the simulator applied has its
// RequestReceived event on disk.
func TestCrashKeepsAuditOfEveryUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the gateway binary")
	}
	t.Parallel()

	// One site with many servers, so each update names its own server.
	const servers = 80
	seed := graphsim.Site{ID: site, DisplayName: "crash"}
	for i := range servers {
		seed.Servers = append(seed.Servers, map[string]any{
			"id": fmt.Sprintf("00000000-0000-4000-8000-%012d", i), "displayName": "seed",
			"tunnelServerHealthStatus": "healthy",
		})
	}
	sim, err := graphsim.Start(graphsim.Options{Seed: []graphsim.Site{seed},
		Limits: graphsim.Limits{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	p := startProcess(t, sim, "", "GATEWAY_WRITE_LIMIT=100000")
	addr, auditFile := strings.TrimPrefix(p.url, "http://"), p.auditPath

	// Load: workers update distinct servers until the process is killed mid-way.
	client := &http.Client{Timeout: 5 * time.Second}
	var answered atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= servers {
					return
				}
				id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
				req, _ := http.NewRequest(http.MethodPatch, "http://"+addr+v1Server(site, id),
					strings.NewReader(fmt.Sprintf(`{"displayName":"crash-%d"}`, i)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Api-Key", testAPIKey)
				resp, err := client.Do(req)
				if err != nil {
					return // the gateway is gone
				}
				resp.Body.Close()
				answered.Add(1)
			}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); answered.Load() < servers/3; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d updates answered in 10s; gateway log:\n%s", answered.Load(),
				p.stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	p.signal(t, syscall.SIGKILL)
	<-p.exited
	wg.Wait()

	// Every server the simulator changed must have its RequestReceived event on disk.
	events, err := audit.ReadEvents(auditFile)
	if err != nil {
		t.Fatalf("read the audit trail after the crash: %v", err)
	}
	received := map[string]bool{}
	for _, e := range events {
		if e.Stage == audit.StageRequestReceived && e.ObjectRef != nil {
			received[e.ObjectRef.ServerID] = true
		}
	}
	applied := 0
	for i := range servers {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		obj, _ := sim.Server(site, id)
		if name, _ := obj["displayName"].(string); strings.HasPrefix(name, "crash-") {
			applied++
			if !received[id] {
				t.Errorf("server %s was updated at Graph but has no RequestReceived event", id)
			}
		}
	}
	if applied == 0 {
		t.Fatal("no update reached the simulator; the test proved nothing")
	}
	t.Logf("%d updates applied before SIGKILL, %d RequestReceived events on disk", applied, len(received))
}

// lockedBuffer collects a child's output while the test may read it.
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

func waitReady(t *testing.T, url string, log *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("gateway never became ready at %s; its log:\n%s", url, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
