package writebudget

import (
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
