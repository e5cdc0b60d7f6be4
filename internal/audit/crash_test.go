package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const crashPathVariable = "AUDIT_CRASH_TEST_PATH"

// TestAcknowledgedEventsSurviveKill runs a writer in a child process, kills it with SIGKILL
// while many events are in flight, and checks that every event the child saw acknowledged is
// in the file, which must still read back despite a possibly torn last line. (A process kill
// leaves the page cache intact, so this checks that acknowledgement follows the write; the
// fsync itself only matters when the machine itself goes down.)
func TestAcknowledgedEventsSurviveKill(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWriterProcess$")
	cmd.Env = append(os.Environ(), crashPathVariable+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	acked := map[string]bool{}
	scanner := bufio.NewScanner(stdout)
	for len(acked) < 2000 && scanner.Scan() {
		if id, ok := strings.CutPrefix(scanner.Text(), "acked "); ok {
			acked[id] = true
		}
	}
	_ = cmd.Process.Kill()
	for scanner.Scan() { // acknowledgements already in the pipe still count
		if id, ok := strings.CutPrefix(scanner.Text(), "acked "); ok {
			acked[id] = true
		}
	}
	_ = cmd.Wait()
	if len(acked) < 2000 {
		t.Fatalf("child acknowledged %d events before ending, want 2000", len(acked))
	}

	events, err := ReadEvents(path)
	if err != nil {
		t.Fatalf("ReadEvents after kill: %v", err)
	}
	onDisk := map[string]bool{}
	for _, e := range events {
		onDisk[e.AuditID] = true
	}
	missing := 0
	for id := range acked {
		if !onDisk[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged events missing from the file", missing, len(acked))
	}
	t.Logf("%d acknowledged, %d on disk", len(acked), len(events))
}

// TestCrashWriterProcess is the child of TestAcknowledgedEventsSurviveKill; it does nothing
// when run on its own.
func TestCrashWriterProcess(t *testing.T) {
	path := os.Getenv(crashPathVariable)
	if path == "" {
		t.Skip("runs only as the child of TestAcknowledgedEventsSurviveKill")
	}
	l, err := Open(Config{Path: path}, nil)
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("crash-%d-%d", g, i)
				if err := l.RequestReceived(context.Background(), testEvent(id)); err != nil {
					fmt.Println("failed:", err)
					os.Exit(2)
				}
				out.Lock()
				fmt.Println("acked", id)
				out.Unlock()
			}
		}()
	}
	wg.Wait()
}
