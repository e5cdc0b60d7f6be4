package writebudget

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"
)

// slotDelay says how long the write that has ahead writes queued before it must wait.
//
// The rule it keeps is the whole budget: any write and the write limit places before it are at
// least window apart, so no span of length window ever holds more than limit writes. recent holds
// the times of the writes still inside the window, oldest first; until is the end of a penalty
// (zero or past when none holds). All times are on one timeline that ends at now.
//
// A write still in flight is dated at the latest moment it can reach Graph, but its answer, and
// so its final date, may come at any moment: a recent date past now counts as now. date reads
// the i-th of the n recent dates, so callers need not copy their log.
func slotDelay(
	n int, date func(i int) time.Duration, now, until, window time.Duration, limit, ahead int,
) time.Duration {
	start := max(now, until)

	// at gives the earliest time of the write with index i, counting recent writes first.
	var at func(i int) time.Duration
	at = func(i int) time.Duration {
		switch {
		case i < n:
			return min(date(i), now)
		case i < limit:
			return start
		default:
			return max(start, at(i-limit)+window)
		}
	}
	return at(n+ahead) - now
}

// localStore keeps the budget in this process: the dated recent writes and a penalty.
type localStore struct {
	limit  int
	window time.Duration
	origin time.Time // monotonic zero of the timeline

	mu sync.Mutex
	// recent holds the writes inside the window, in date order. Its entries hold no pointer,
	// so the collector never walks the log, which at a high limit holds a window's worth of
	// writes.
	recent []dated
	until  time.Duration // penalty end
	count  uint64        // writes granted, for their sequence numbers
}

// dated is one write in the log: its sequence number and its date.
type dated struct {
	seq uint64
	at  time.Duration
}

func newLocalStore(limit int, window time.Duration) *localStore {
	return &localStore{limit: limit, window: window, origin: time.Now()}
}

func (s *localStore) take(_ context.Context, flight time.Duration) (
	write, bool, time.Duration, error,
) {
	s.mu.Lock()
	defer s.mu.Unlock()

	now := s.prune()
	if s.until <= now && len(s.recent) < s.limit {
		s.count++
		w := write{seq: s.count, at: now + flight}
		s.insert(dated{seq: w.seq, at: w.at})
		return w, true, 0, nil
	}
	return write{}, false, s.delay(now, 0), nil
}

func (s *localStore) redate(_ context.Context, w write) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	now := s.prune()
	i, ok := s.find(w)
	if !ok {
		return nil
	}
	s.recent = slices.Delete(s.recent, i, i+1)
	s.insert(dated{seq: w.seq, at: now})
	return nil
}

func (s *localStore) peek(_ context.Context, ahead int) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	now := s.prune()
	return s.delay(now, ahead), nil
}

func (s *localStore) penalize(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.until = max(s.until, time.Since(s.origin)+d)
	return nil
}

func (s *localStore) delay(now time.Duration, ahead int) time.Duration {
	date := func(i int) time.Duration { return s.recent[i].at }
	return slotDelay(len(s.recent), date, now, s.until, s.window, s.limit, ahead)
}

// insert adds w after every write dated no later, keeping recent in date order.
func (s *localStore) insert(w dated) {
	i := sort.Search(len(s.recent), func(i int) bool { return s.recent[i].at > w.at })
	s.recent = slices.Insert(s.recent, i, w)
}

// find returns the index of w in recent, looking among the writes of its date.
func (s *localStore) find(w write) (int, bool) {
	i := sort.Search(len(s.recent), func(i int) bool { return s.recent[i].at >= w.at })
	for ; i < len(s.recent) && s.recent[i].at == w.at; i++ {
		if s.recent[i].seq == w.seq {
			return i, true
		}
	}
	return 0, false
}

// prune drops writes that have left the window and returns the current time on the timeline.
func (s *localStore) prune() time.Duration {
	now := time.Since(s.origin)
	keep := 0
	for keep < len(s.recent) && s.recent[keep].at <= now-s.window {
		keep++
	}
	s.recent = s.recent[keep:]
	// Reslicing keeps the whole array the log once grew into: after a burst it would stay
	// that large for as long as the log takes to walk through it at a quieter rate. Once the
	// log fills less than a quarter of what lies ahead of it, it moves to an array of its size.
	if cap(s.recent) >= minCompactCap && len(s.recent) < cap(s.recent)/4 {
		s.recent = append([]dated(nil), s.recent...)
	}
	return now
}

// minCompactCap is the smallest log array worth moving out of: below it the copy costs more
// than the array.
const minCompactCap = 1024
