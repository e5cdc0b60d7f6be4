package writebudget

import (
	"context"
	"sync"
	"time"
)

// slotDelay says how long the write that has ahead writes queued before it must wait.
//
// The rule it keeps is the whole budget: any write and the write limit places before it are at
// least window apart, so no span of length window ever holds more than limit writes. recent holds
// the times of the writes still inside the window, oldest first; until is the end of a penalty
// (zero or past when none holds). All times are on one timeline that ends at now.
func slotDelay(
	recent []time.Duration, now, until, window time.Duration, limit, ahead int,
) time.Duration {
	start := max(now, until)

	// at gives the earliest time of the write with index i, counting recent writes first.
	var at func(i int) time.Duration
	at = func(i int) time.Duration {
		switch {
		case i < len(recent):
			return recent[i]
		case i < limit:
			return start
		default:
			return max(start, at(i-limit)+window)
		}
	}
	return at(len(recent)+ahead) - now
}

// localStore keeps the budget in this process: the times of recent writes and a penalty.
type localStore struct {
	limit  int
	window time.Duration
	origin time.Time // monotonic zero of the timeline

	mu     sync.Mutex
	recent []time.Duration // writes inside the window, oldest first
	until  time.Duration   // penalty end
}

func newLocalStore(limit int, window time.Duration) *localStore {
	return &localStore{limit: limit, window: window, origin: time.Now()}
}

func (s *localStore) take(_ context.Context) (bool, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	now := s.prune()
	if s.until <= now && len(s.recent) < s.limit {
		s.recent = append(s.recent, now)
		return true, 0, nil
	}
	return false, slotDelay(s.recent, now, s.until, s.window, s.limit, 0), nil
}

func (s *localStore) peek(_ context.Context, ahead int) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	now := s.prune()
	return slotDelay(s.recent, now, s.until, s.window, s.limit, ahead), nil
}

func (s *localStore) penalize(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.until = max(s.until, time.Since(s.origin)+d)
	return nil
}

// prune drops writes that have left the window and returns the current time on the timeline.
func (s *localStore) prune() time.Duration {
	now := time.Since(s.origin)
	keep := 0
	for keep < len(s.recent) && s.recent[keep] <= now-s.window {
		keep++
	}
	s.recent = s.recent[keep:]
	return now
}
