package shared

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDirFromEnvironment(t *testing.T) {
	tests := []struct {
		name    string
		marker  bool
		wantErr bool
	}{
		{name: "folder with the cases", marker: true},
		{name: "folder without them", marker: false, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.marker {
				if err := os.MkdirAll(filepath.Join(dir, "cases"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, marker), []byte("[]"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv(EnvDir, dir)

			got, err := File("cases/update-requests.json")
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), EnvDir) {
					t.Fatalf("err = %v, want one naming %s", err, EnvDir)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dir, "cases", "update-requests.json"); got != want {
				t.Errorf("File = %q, want %q", got, want)
			}
		})
	}
}

func TestLocalOrigin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if got := localOrigin(dir); got != "" {
		t.Errorf("localOrigin of a folder outside any repository = %q, want empty", got)
	}
}
