package writebudget

import (
	"context"
	"testing"
	"time"
)

func TestSlotDelay(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name   string
		recent []time.Duration
		now    time.Duration
		until  time.Duration
		limit  int
		ahead  int
		want   time.Duration
	}{
		{name: "empty window grants now", limit: 3, want: 0},
		{name: "queue within the limit grants now", limit: 3, ahead: 2, want: 0},
		{name: "queue one past the limit waits a window", limit: 3, ahead: 3, want: 100 * ms},
		{name: "deep queue waits whole windows", limit: 3, ahead: 7, want: 200 * ms},
		{name: "room left in window", recent: []time.Duration{0}, now: 50 * ms, limit: 2,
			want: 0},
		{name: "full window waits for oldest", recent: []time.Duration{0, 10 * ms},
			now: 50 * ms, limit: 2, want: 50 * ms},
		{name: "second in queue waits for second oldest", recent: []time.Duration{0, 10 * ms},
			now: 50 * ms, limit: 2, ahead: 1, want: 60 * ms},
		{name: "third in queue waits for a slot granted in the future",
			recent: []time.Duration{0, 10 * ms}, now: 50 * ms, limit: 2, ahead: 2,
			want: 150 * ms},
		{name: "penalty holds the first slot", recent: []time.Duration{0, 10 * ms},
			now: 50 * ms, until: 300 * ms, limit: 2, want: 250 * ms},
		{name: "penalty pushes later windows", recent: []time.Duration{0, 10 * ms},
			now: 50 * ms, until: 300 * ms, limit: 2, ahead: 2, want: 350 * ms},
		{name: "past penalty is ignored", now: 50 * ms, until: 20 * ms, limit: 1, want: 0},
		{name: "a write in flight counts as answered now", recent: []time.Duration{0, 400 * ms},
			now: 50 * ms, limit: 2, ahead: 1, want: 100 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			date := func(i int) time.Duration { return tt.recent[i] }
			got := slotDelay(len(tt.recent), date, tt.now, tt.until, 100*ms, tt.limit, tt.ahead)
			if got != tt.want {
				t.Errorf("slotDelay() = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestLocalLogShrinksAfterBurst checks that a log which once held a burst lets go of the
// burst's array once its writes leave the window, instead of walking through it for minutes.
func TestLocalLogShrinksAfterBurst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const burstCap = 50_000
	s := newLocalStore(burstCap, time.Minute)
	// The array a burst of writes grew the log into.
	s.recent = make([]dated, 0, burstCap)
	for i := range 1000 {
		if _, granted, _, err := s.take(ctx, 0); !granted || err != nil {
			t.Fatalf("take %d: got granted %v, error %v; want granted", i, granted, err)
		}
	}

	// The burst leaves the window; a quieter rate follows.
	s.mu.Lock()
	s.origin = s.origin.Add(-2 * time.Minute)
	s.mu.Unlock()
	w, granted, _, err := s.take(ctx, 0)
	if !granted || err != nil {
		t.Fatalf("take after the window: got granted %v, error %v; want granted", granted, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if got := len(s.recent); got != 1 {
		t.Fatalf("log length: got %d, want 1 (the burst left the window)", got)
	}
	if got := cap(s.recent); got >= minCompactCap {
		t.Errorf("log capacity: got %d, want under %d: the burst's array is still held", got,
			minCompactCap)
	}
	if got := s.recent[0].seq; got != w.seq {
		t.Errorf("log entry: got write %d, want %d", got, w.seq)
	}
}
