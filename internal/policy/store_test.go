package policy_test

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"tunnelgateway/internal/callers"
	"tunnelgateway/internal/policy"
)

const (
	renameOnly = "callers:\n- name: agent\n  apiKeySha256: %s\n  properties: [displayName]\n"
	statusOnly = "callers:\n- name: agent\n  apiKeySha256: %s\n" +
		"  properties: [tunnelServerHealthStatus]\n"
)

// writePolicy writes format with every %s replaced by hash.
func writePolicy(t *testing.T, path, format, hash string) {
	t.Helper()
	doc := strings.ReplaceAll(format, "%s", hash)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatalf("write policy: %v", err)
	}
}

func TestStoreReload(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicy(t, path, renameOnly, hashA)
	store, err := policy.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	agent := callers.Caller{Kind: callers.KindAPIKey, ID: "agent"}
	rename := []string{"displayName"}
	status := []string{"tunnelServerHealthStatus"}

	steps := []struct {
		name       string
		doc        string // "" leaves the file as it is; "-" removes it
		wantReload string // substring of Reload's error; "" means success
		wantRename bool
		wantStatus bool
		wantKey    string
	}{
		{name: "before reload", wantRename: true, wantKey: hashA},
		{name: "good reload", doc: statusOnly, wantStatus: true, wantKey: hashB},
		{name: "bad reload keeps policy", doc: "callers:\n- name: agent\n  read: maybe\n",
			wantReload: "reload: policy ", wantStatus: true, wantKey: hashB},
		{name: "invalid reload keeps policy", doc: "callers: []\n",
			wantReload: "must list at least one caller", wantStatus: true, wantKey: hashB},
		{name: "missing file keeps policy", doc: "-",
			wantReload: "no such file", wantStatus: true, wantKey: hashB},
		{name: "good reload after bad", doc: renameOnly, wantRename: true, wantKey: hashB},
	}
	// Steps run in order: each builds on the file the previous one left.
	for _, step := range steps {
		switch step.doc {
		case "":
		case "-":
			if err := os.Remove(path); err != nil {
				t.Fatalf("%s: remove: %v", step.name, err)
			}
		default:
			writePolicy(t, path, step.doc, step.wantKey)
		}
		if step.doc != "" {
			err := store.Reload()
			checkReload(t, step.name, err, step.wantReload)
		}
		gotRename := store.AuthorizeWrite(agent, westSite, rename) == nil
		gotStatus := store.AuthorizeWrite(agent, westSite, status) == nil
		if gotRename != step.wantRename || gotStatus != step.wantStatus {
			t.Errorf("%s: rename, status allowed: got %v, %v, want %v, %v", step.name,
				gotRename, gotStatus, step.wantRename, step.wantStatus)
		}
		keys := store.APIKeys()
		if len(keys) != 1 || hex.EncodeToString(keys[0].SHA256[:]) != step.wantKey {
			t.Errorf("%s: api keys: got %v, want the one hash %s", step.name, keys, step.wantKey)
		}
	}
}

func checkReload(t *testing.T, step string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: Reload: %v", step, err)
	case want != "" && err == nil:
		t.Errorf("%s: Reload: got nil error, want one containing %q", step, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("%s: Reload: got %v, want it to contain %q", step, err, want)
	}
}

func TestNewStoreCannotReload(t *testing.T) {
	t.Parallel()
	p, err := policy.New([]policy.Grant{{Name: "demo", APIKeySHA256: hashA, Read: true}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	store := policy.NewStore(p)
	if err := store.Reload(); err == nil {
		t.Error("Reload: got nil error for a store without a file, want one")
	}
	if got, want := store.Current(), p; got != want {
		t.Errorf("Current: got %p, want %p", got, want)
	}
}

// TestReloadUnderLoad reloads repeatedly, alternating good and bad files, while other
// goroutines decide. Run with -race. Every decision must match one whole policy: the caller
// may change exactly one of the two properties, never both and never neither.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	writePolicy(t, path, renameOnly, hashA)
	store, err := policy.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	agent := callers.Caller{Kind: callers.KindAPIKey, ID: "agent"}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mixed sync.Once
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				p := store.Current()
				rename := p.AuthorizeWrite(agent, westSite, []string{"displayName"}) == nil
				status := p.AuthorizeWrite(agent, westSite,
					[]string{"tunnelServerHealthStatus"}) == nil
				if rename == status {
					mixed.Do(func() { t.Errorf("rename %v, status %v: want exactly one", rename, status) })
				}
				_ = store.APIKeys()
			}
		})
	}

	docs := []string{statusOnly, "callers: [", renameOnly, "callers: []\n"}
	for i := range 40 {
		tmp := filepath.Join(dir, "next.yaml")
		writePolicy(t, tmp, docs[i%len(docs)], hashA)
		// Rename so a reload never reads a half-written file, as editors and config tools do.
		if err := os.Rename(tmp, path); err != nil {
			t.Fatalf("rename: %v", err)
		}
		err := store.Reload()
		if bad := i%2 == 1; bad != (err != nil) {
			t.Fatalf("reload %d: got error %v, want error: %v", i, err, bad)
		}
	}
	close(stop)
	wg.Wait()

	var denied *policy.Denied
	err = store.AuthorizeWrite(agent, westSite, []string{"tunnelServerHealthStatus"})
	if !errors.As(err, &denied) {
		t.Errorf("after the last good reload (rename only): got %v, want *Denied", err)
	}
}
