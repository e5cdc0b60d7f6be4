package audit

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStreamSinkSyncable checks which streams the start-up warning is given for: a pipe (what
// a container runtime hands the gateway as standard output) cannot be fsynced, standard output
// redirected to a regular file can.
func TestStreamSinkSyncable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		open     func(t *testing.T) *os.File
		syncable bool
		kind     string
	}{
		{name: "pipe", syncable: false, kind: "pipe", open: func(t *testing.T) *os.File {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
			return w
		}},
		{name: "regular file", syncable: true, kind: "regular file",
			open: func(t *testing.T) *os.File {
				f, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = f.Close() })
				return f
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &streamSink{file: tt.open(t)}
			if got := s.syncable(); got != tt.syncable {
				t.Errorf("syncable() = %v, want %v", got, tt.syncable)
			}
			if got := s.kind(); got != tt.kind {
				t.Errorf("kind() = %q, want %q", got, tt.kind)
			}
			if _, err := s.Write([]byte("{}\n")); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if err := s.Sync(); err != nil {
				t.Errorf("Sync() = %v, want nil (a stream's unsupported sync counts as done)", err)
			}
		})
	}
}
