package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// openTestLog opens a file-backed log in a fresh directory and closes it when the test ends.
func openTestLog(t testing.TB, cfg Config) (*Log, string) {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "audit.log")
	}
	l, err := Open(cfg, nil)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l, cfg.Path
}

func testEvent(id string) *Event {
	return &Event{
		Level:      LevelRequest,
		AuditID:    id,
		Verb:       VerbPatch,
		RequestURI: "/deviceManagement/microsoftTunnelSites/s/microsoftTunnelServers/x",
		User:       User{Kind: UserKindAPIKey, Name: "deploy-bot"},
		ObjectRef:  &ObjectRef{SiteID: "s", ServerID: "x"},
		RequestObject: map[string]any{
			"displayName": "edge-" + id,
		},
	}
}

// gatedSink holds the first Sync until release is closed, so a test can pile events up behind
// one fsync without depending on how the scheduler happens to run goroutines.
type gatedSink struct {
	Sink
	entered chan struct{} // closed when the first Sync begins
	release chan struct{}
	once    sync.Once
}

func (s *gatedSink) Sync() error {
	first := false
	s.once.Do(func() { first = true; close(s.entered) })
	if first {
		<-s.release
	}
	return s.Sink.Sync()
}

func (l *Log) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}

// TestRequestReceivedConcurrentSharesSyncs checks group commit: events queued while a sync
// runs are all written and synced together by the next one, not one fsync each.
func TestRequestReceivedConcurrentSharesSyncs(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	file, err := OpenSink(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	sink := &gatedSink{Sink: file, entered: make(chan struct{}), release: make(chan struct{})}
	l := New(sink, nil)
	t.Cleanup(func() { _ = l.Close(context.Background()) })

	const callers = 200
	errs := make(chan error, callers)
	record := func(i int) {
		errs <- l.RequestReceived(context.Background(), testEvent(fmt.Sprintf("req-%03d", i)))
	}
	go record(0)
	<-sink.entered // the writer now holds event 0 in a sync that cannot finish yet
	for i := 1; i < callers; i++ {
		go record(i)
	}
	for deadline := time.Now().Add(10 * time.Second); l.queued() < callers-1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			close(sink.release)
			t.Fatalf("only %d of %d events queued behind the held sync after 10s", l.queued(), callers-1)
		}
	}
	close(sink.release)
	for range callers {
		if err := <-errs; err != nil {
			t.Fatalf("RequestReceived: %v", err)
		}
	}

	// Every event is on disk before its caller returned, so no Close or Flush is needed here.
	events, err := ReadEvents(path)
	if err != nil {
		t.Fatalf("ReadEvents: %v", err)
	}
	seen := map[string]bool{}
	for _, e := range events {
		seen[e.AuditID] = true
	}
	if got, want := len(seen), callers; got != want {
		t.Errorf("distinct events on disk: got %d, want %d", got, want)
	}
	stats := l.Stats()
	if got, want := stats.Events, uint64(callers); got != want {
		t.Errorf("Stats().Events: got %d, want %d", got, want)
	}
	// One sync for event 0, one for the 199 that queued behind it.
	if got, want := stats.Syncs, uint64(2); got != want {
		t.Errorf("Stats().Syncs: got %d for %d callers, want %d", got, callers, want)
	}
}

func TestRequestReceivedFailsWhenDirectoryVanishes(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "audit")
	path := filepath.Join(dir, "audit.log")
	l, _ := openTestLog(t, Config{Path: path})
	ctx := context.Background()
	if err := l.RequestReceived(ctx, testEvent("before")); err != nil {
		t.Fatalf("RequestReceived before failure: %v", err)
	}

	// Replace the directory by a regular file: writes to the old inode would not be on the
	// trail, and lumberjack cannot recreate the directory.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	errs := recordConcurrently(l, 50, "during")
	for i, err := range errs {
		var auditErr *Error
		if !errors.As(err, &auditErr) {
			t.Fatalf("caller %d: got %v, want an *audit.Error", i, err)
		}
	}
	if l.Healthy() == nil {
		t.Error("Healthy() = nil after failed writes, want an error")
	}
	if got, want := l.Stats().Failures, uint64(50); got < want {
		t.Errorf("Stats().Failures: got %d, want at least %d", got, want)
	}

	// Once the directory can be made again, the next event succeeds and health recovers.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := l.RequestReceived(ctx, testEvent("after")); err != nil {
		t.Fatalf("RequestReceived after recovery: %v", err)
	}
	if err := l.Healthy(); err != nil {
		t.Errorf("Healthy() after recovery: %v", err)
	}
	events, err := ReadEvents(path)
	if err != nil {
		t.Fatalf("ReadEvents: %v", err)
	}
	if len(events) != 1 || events[0].AuditID != "after" {
		t.Errorf("events in recreated file: got %+v, want only %q", events, "after")
	}
}

// TestHealthRecoversWithoutTraffic breaks the audit directory, fails one event and, for the
// sink that comes back, expects Healthy to clear with no further event: an unready gateway
// gets no traffic, so only the log's own probe can make it ready again. A sink still broken
// must stay unhealthy.
func TestHealthRecoversWithoutTraffic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		restore bool
	}{
		{name: "directory comes back", restore: true},
		{name: "directory stays broken", restore: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "audit")
			l, _ := openTestLog(t, Config{Path: filepath.Join(dir, "audit.log")})
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir, []byte("in the way"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := l.RequestReceived(context.Background(), testEvent("lost")); err == nil {
				t.Fatal("RequestReceived with the directory gone: got nil, want an error")
			}
			if tt.restore {
				// lumberjack makes the directory again when it reopens the file.
				if err := os.Remove(dir); err != nil {
					t.Fatal(err)
				}
			}

			wait := 3 * probeInterval
			deadline := time.Now().Add(wait)
			for l.Healthy() != nil && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if got := l.Healthy() == nil; got != tt.restore {
				t.Errorf("healthy %s after the failure with no traffic: got %v, want %v (%v)",
					wait, got, tt.restore, l.Healthy())
			}
			if !tt.restore {
				return
			}

			// Once recovered, and after the wake-ups the recovery itself caused, an event nobody
			// waits for is still synced by the timer.
			time.Sleep(3 * lazySyncDelay)
			before := l.Stats().Events
			if err := l.ResponseComplete(testEvent("after recovery")); err != nil {
				t.Fatal(err)
			}
			deadline = time.Now().Add(500 * time.Millisecond)
			for l.Stats().Events == before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if l.Stats().Events == before {
				t.Error("a ResponseComplete after recovery was not synced within 500ms")
			}
		})
	}
}

func TestRequestReceivedFailsWhenFileIsClosed(t *testing.T) {
	t.Parallel()
	f, err := os.Create(filepath.Join(t.TempDir(), "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	l := New(f, nil)
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	if err := l.RequestReceived(context.Background(), testEvent("ok")); err != nil {
		t.Fatalf("RequestReceived on open file: %v", err)
	}

	_ = f.Close()
	for i, err := range recordConcurrently(l, 20, "closed") {
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("caller %d: got %v, want os.ErrClosed", i, err)
		}
	}
	if err := l.Healthy(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Healthy(): got %v, want os.ErrClosed", err)
	}
}

func recordConcurrently(l *Log, n int, prefix string) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := testEvent(fmt.Sprintf("%s-%d", prefix, i))
			errs[i] = l.RequestReceived(context.Background(), e)
		}()
	}
	wg.Wait()
	return errs
}

func TestRotationBySize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, path := openTestLog(t, Config{Path: filepath.Join(dir, "audit.log"), MaxSizeMB: 1})
	sink := l.sink.(*fileSink)
	firstInode, err := sink.held.Stat()
	if err != nil {
		t.Fatal(err)
	}

	// 300 events of about 10 KB: about three files' worth.
	const events = 300
	padding := strings.Repeat("x", 10_000)
	for i := range events {
		e := testEvent(fmt.Sprintf("rot-%03d", i))
		e.RequestObject["serverImageDigest"] = padding
		if err := l.RequestReceived(context.Background(), e); err != nil {
			t.Fatalf("RequestReceived %d: %v", i, err)
		}
	}

	files, err := filepath.Glob(filepath.Join(dir, "audit*.log"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(files), 3; got < want {
		t.Errorf("files after rotation: got %d (%v), want at least %d", got, files, want)
	}
	total := 0
	for _, f := range files {
		got, err := ReadEvents(f)
		if err != nil {
			t.Fatalf("ReadEvents(%s): %v", f, err)
		}
		total += len(got)
	}
	if total != events {
		t.Errorf("events across rotated files: got %d, want %d", total, events)
	}

	// The descriptor used for fsync must follow the rotation to the current file.
	held, err := sink.held.Stat()
	if err != nil {
		t.Fatal(err)
	}
	current, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(held, current) {
		t.Error("sync descriptor does not name the current audit file after rotation")
	}
	if os.SameFile(held, firstInode) {
		t.Error("sync descriptor still names the first file after rotation")
	}
}

func TestCloseFlushesQueuedEvents(t *testing.T) {
	t.Parallel()
	l, path := openTestLog(t, Config{})
	const events = 100
	for i := range events {
		if err := l.ResponseComplete(testEvent(fmt.Sprintf("done-%d", i))); err != nil {
			t.Fatalf("ResponseComplete: %v", err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	got, err := ReadEvents(path)
	if err != nil {
		t.Fatalf("ReadEvents: %v", err)
	}
	if len(got) != events {
		t.Errorf("events after Close: got %d, want %d", len(got), events)
	}
	err = l.RequestReceived(context.Background(), testEvent("late"))
	if !errors.Is(err, ErrClosed) {
		t.Errorf("RequestReceived after Close: got %v, want ErrClosed", err)
	}
	if err := l.ResponseComplete(testEvent("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("ResponseComplete after Close: got %v, want ErrClosed", err)
	}
	if err := l.Healthy(); !errors.Is(err, ErrClosed) {
		t.Errorf("Healthy after Close: got %v, want ErrClosed", err)
	}
}

func TestFlushWaitsForResponseComplete(t *testing.T) {
	t.Parallel()
	l, path := openTestLog(t, Config{})
	e := testEvent("flush")
	e.RequestReceivedTimestamp = time.Now().Add(-1500 * time.Millisecond)
	if err := l.ResponseComplete(e); err != nil {
		t.Fatalf("ResponseComplete: %v", err)
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	got, err := ReadEvents(path)
	if err != nil {
		t.Fatalf("ReadEvents: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("events after Flush: got %d, want 1", len(got))
	}
	if got[0].Stage != StageResponseComplete {
		t.Errorf("stage: got %q, want %q", got[0].Stage, StageResponseComplete)
	}
	if got[0].LatencySeconds < 1.5 || got[0].LatencySeconds > 60 {
		t.Errorf("latencySeconds: got %v, want about 1.5", got[0].LatencySeconds)
	}
}

func TestRequestReceivedHonoursContext(t *testing.T) {
	t.Parallel()
	l, _ := openTestLog(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The event may or may not win the race with the cancelled context; either answer is
	// legal, but a cancelled wait must come back as an *Error the handler maps to 503.
	err := l.RequestReceived(ctx, testEvent("cancelled"))
	var auditErr *Error
	if err != nil && (!errors.As(err, &auditErr) || !errors.Is(err, context.Canceled)) {
		t.Errorf("RequestReceived with cancelled context: got %v, want nil or a cancelled *Error",
			err)
	}
}

func TestEventTooLargeIsRefusedAlone(t *testing.T) {
	t.Parallel()
	l, _ := openTestLog(t, Config{})
	e := testEvent("huge")
	e.RequestObject["displayName"] = strings.Repeat("y", maxEventBytes)
	if err := l.RequestReceived(context.Background(), e); !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("RequestReceived of a huge event: got %v, want ErrEventTooLarge", err)
	}
	if err := l.Healthy(); err != nil {
		t.Errorf("Healthy after a refused event: got %v, want nil", err)
	}
	if got, want := l.Stats().Failures, uint64(1); got != want {
		t.Errorf("Stats().Failures: got %d, want %d", got, want)
	}
}

func TestStreamSinkToleratesUnsyncablePipe(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l := New(&streamSink{file: w}, nil)
	done := make(chan []Event)
	go func() {
		events, _ := DecodeEvents(r)
		done <- events
	}()

	if err := l.RequestReceived(context.Background(), testEvent("piped")); err != nil {
		t.Fatalf("RequestReceived on a pipe: %v", err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_ = w.Close()
	events := <-done
	if len(events) != 1 || events[0].AuditID != "piped" {
		t.Errorf("events read from pipe: got %+v, want one %q", events, "piped")
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	blocker := filepath.Join(t.TempDir(), "not-a-directory")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"empty path", Config{}, "path is empty"},
		{"negative sizes", Config{Path: "x", MaxSizeMB: -1, MaxBackups: -2},
			"max size (MB) is -1: must be 0 or more; audit log max backups is -2"},
		{"parent is a file", Config{Path: filepath.Join(blocker, "audit.log")}, "not a directory"},
		{"stdout", Config{Path: StdoutPath}, ""},
		{"file", Config{Path: filepath.Join(t.TempDir(), "a", "b", "audit.log")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := Open(tt.cfg, nil)
			if err == nil {
				defer l.Close(context.Background())
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Open: got %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Open: got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRotationPrunesBackups(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := Config{Path: filepath.Join(dir, "audit.log"), MaxSizeMB: 1, MaxBackups: 1}
	l, _ := openTestLog(t, cfg)
	padding := strings.Repeat("z", 50_000)
	for i := range 80 { // about 4 MB: three or four rotations
		e := testEvent(fmt.Sprintf("prune-%d", i))
		e.RequestObject["agentImageDigest"] = padding
		if err := l.RequestReceived(context.Background(), e); err != nil {
			t.Fatalf("RequestReceived %d: %v", i, err)
		}
	}

	// lumberjack prunes in a goroutine of its own after each rotation.
	deadline := time.Now().Add(5 * time.Second)
	for {
		files, err := filepath.Glob(filepath.Join(dir, "audit*.log"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("files: got %v, want the current file and one backup", files)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestResponseCompleteSyncsLazily checks that events nobody waits for cost no fsync of their
// own: they are written at once, synced by the next waiter's sync, or by a timer soon after.
func TestResponseCompleteSyncsLazily(t *testing.T) {
	t.Parallel()
	l, path := openTestLog(t, Config{})
	for i := range 20 {
		if err := l.ResponseComplete(testEvent(fmt.Sprintf("done-%d", i))); err != nil {
			t.Fatal(err)
		}
	}

	// The timer syncs them without any waiter, well within a second.
	deadline := time.Now().Add(2 * time.Second)
	for l.Stats().Events < 20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stats := l.Stats()
	if stats.Events != 20 {
		t.Fatalf("Stats().Events = %d after 2s, want 20 synced by the timer", stats.Events)
	}
	if stats.Syncs > 3 {
		t.Errorf("Stats().Syncs = %d for 20 ResponseComplete events, want a few at most", stats.Syncs)
	}

	// A waiter's sync covers events written before it.
	if err := l.ResponseComplete(testEvent("before-waiter")); err != nil {
		t.Fatal(err)
	}
	if err := l.RequestReceived(context.Background(), testEvent("waiter")); err != nil {
		t.Fatal(err)
	}
	if got := l.Stats().Events; got != 22 {
		t.Errorf("after a waiter's sync Stats().Events = %d, want 22", got)
	}
	events, err := ReadEvents(path)
	if err != nil || len(events) != 22 {
		t.Errorf("file holds %d events (err %v), want 22", len(events), err)
	}
}
