package policy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"tunnelgateway/internal/callers"
)

// maxFileSize bounds what Load reads; a policy for hundreds of callers is a few tens of KiB.
const maxFileSize = 4 << 20

// Store holds the current policy and swaps it atomically on reload, so a request always decides
// against one whole policy, old or new, and never waits for a reload. It is a
// callers.KeySource: API keys added or removed by a reload take effect at once.
type Store struct {
	path    string
	reload  sync.Mutex // orders concurrent reloads so the last file read wins
	current atomic.Pointer[Policy]
}

var _ callers.KeySource = (*Store)(nil)

// Load reads and validates the policy file at path.
func Load(path string) (*Store, error) {
	p, err := readFile(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path}
	s.current.Store(p)
	return s, nil
}

// NewStore holds a policy built in code; such a store has no file and cannot reload.
func NewStore(p *Policy) *Store {
	s := &Store{}
	s.current.Store(p)
	return s
}

// Reload reads the file again. If it is unreadable or invalid, the current policy stays in
// force and the error says why.
func (s *Store) Reload() error {
	if s.path == "" {
		return errors.New("reload policy: the policy was not loaded from a file")
	}
	s.reload.Lock()
	defer s.reload.Unlock()
	p, err := readFile(s.path)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	s.current.Store(p)
	return nil
}

// Current returns the policy in force. Use one Current result for all decisions of a request.
func (s *Store) Current() *Policy {
	return s.current.Load()
}

// Path returns the file the store reads, or "" for a store built in code.
func (s *Store) Path() string {
	return s.path
}

// AuthorizeWrite decides against the current policy; see Policy.AuthorizeWrite.
func (s *Store) AuthorizeWrite(c callers.Caller, siteID string, properties []string) error {
	return s.Current().AuthorizeWrite(c, siteID, properties)
}

// AuthorizeRead decides against the current policy; see Policy.AuthorizeRead.
func (s *Store) AuthorizeRead(c callers.Caller, siteID string) error {
	return s.Current().AuthorizeRead(c, siteID)
}

// Name returns the caller's name in the current policy; see Policy.Name.
func (s *Store) Name(c callers.Caller) string {
	return s.Current().Name(c)
}

// APIKeys returns the API keys of the current policy.
func (s *Store) APIKeys() []callers.APIKey {
	return s.Current().APIKeys()
}

func readFile(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read policy %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("read policy %s: larger than %d bytes", path, maxFileSize)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}
