package writebudget_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"tunnelgateway/internal/writebudget"
)

var backends = []struct{ name string }{{name: "in-process"}, {name: "redis"}}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { _ = client.Close() })
	tests := []struct {
		name string
		cfg  writebudget.Config
		want []string // substrings of the error; none means valid
	}{
		{name: "zero value takes defaults", cfg: writebudget.Config{}},
		{name: "negative limit", cfg: writebudget.Config{Limit: -1},
			want: []string{"Limit -1"}},
		{name: "limit too large", cfg: writebudget.Config{Limit: 2_000_000},
			want: []string{"Limit 2000000"}},
		{name: "window too short", cfg: writebudget.Config{Window: time.Microsecond},
			want: []string{"Window 1µs"}},
		{name: "redis without key", cfg: writebudget.Config{RedisClient: client},
			want: []string{"Key"}},
		{name: "every problem at once",
			cfg:  writebudget.Config{Limit: -5, Window: -time.Second, Margin: -1, MaxQueue: -2},
			want: []string{"Limit -5", "Window -1s", "Margin -1ns", "MaxQueue -2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := writebudget.New(tt.cfg)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("New() error: %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New() error: nil, want one naming %q", tt.want)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("New() error: %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

// TestBurstStaysWithinLimit sends three windows' worth of writes at once from two replicas and
// checks that no window ever holds more than the limit and that the burst drains near the
// fastest the budget allows.
func TestBurstStaysWithinLimit(t *testing.T) {
	t.Parallel()
	const limit, writesPerReplica = 20, 30
	window := time.Second
	for _, backend := range backends {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			cfg := writebudget.Config{Limit: limit, Window: window}
			budgets := newBudgets(t, backend.name, cfg, 2)

			var mu sync.Mutex
			var grants []time.Time
			var wg sync.WaitGroup
			start := time.Now()
			for _, b := range budgets {
				for range writesPerReplica {
					wg.Go(func() {
						mustWait(t, b)
						mu.Lock()
						grants = append(grants, time.Now())
						mu.Unlock()
					})
				}
			}
			wg.Wait()
			elapsed := time.Since(start)

			if got := maxInWindow(grants, window); got > limit {
				t.Errorf("most writes in a %s window = %d, want at most %d", window, got, limit)
			}
			// 60 writes at 20 per window: the last batch can start two windows after the first.
			fastest := 2 * window
			if elapsed < fastest || elapsed > fastest*115/100 {
				t.Errorf("burst took %s, want between %s and %s", elapsed, fastest,
					fastest*115/100)
			}
		})
	}
}

// TestQueueFullRetryAfterIsTruthful checks that a refused write is told exactly when it may
// come back: earlier it is refused again, at that time it passes at once.
func TestQueueFullRetryAfterIsTruthful(t *testing.T) {
	t.Parallel()
	window := 500 * time.Millisecond
	for _, backend := range backends {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			cfg := writebudget.Config{Limit: 2, Window: window, MaxQueue: 2}
			b := newBudgets(t, backend.name, cfg, 1)[0]

			// Use the window's two slots, then fill the queue with writes for the next window.
			start := time.Now()
			mustWait(t, b)
			mustWait(t, b)
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() { mustWait(t, b) })
			}
			waitQueued(t, b, 2)

			err := b.Wait(context.Background())
			var throttled *writebudget.ThrottledError
			if !errors.As(err, &throttled) || throttled.Reason != writebudget.ReasonQueueFull {
				t.Fatalf("Wait() on a full queue error: %v, want ThrottledError (queue_full)", err)
			}
			// The third window opens two paced windows (window + 50ms margin) after the first
			// writes.
			wantAt := start.Add(2 * (window + 50*time.Millisecond))
			retryAt := time.Now().Add(throttled.RetryAfter)
			if off := retryAt.Sub(wantAt); off < -20*time.Millisecond || off > 20*time.Millisecond {
				t.Errorf("RetryAfter points %s past start, want %s", retryAt.Sub(start),
					wantAt.Sub(start))
			}
			wg.Wait()

			// Shortly before RetryAfter the slot is not there yet.
			time.Sleep(time.Until(retryAt.Add(-150 * time.Millisecond)))
			if err := waitWithin(b, 50*time.Millisecond); !errors.As(err, &throttled) {
				t.Errorf("Wait() 150ms before RetryAfter error: %v, want ThrottledError", err)
			}

			// At RetryAfter it is.
			time.Sleep(time.Until(retryAt))
			if err := waitWithin(b, 50*time.Millisecond); err != nil {
				t.Errorf("Wait() at RetryAfter error: %v, want none", err)
			}
		})
	}
}

func TestDeadlineShorterThanWaitFailsFast(t *testing.T) {
	t.Parallel()
	window := time.Second
	for _, backend := range backends {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			b := newBudgets(t, backend.name, writebudget.Config{Limit: 1, Window: window}, 1)[0]
			mustWait(t, b)

			start := time.Now()
			err := waitWithin(b, 100*time.Millisecond)
			elapsed := time.Since(start)

			var throttled *writebudget.ThrottledError
			if !errors.As(err, &throttled) || throttled.Reason != writebudget.ReasonDeadline {
				t.Fatalf("Wait() error: %v, want ThrottledError (deadline)", err)
			}
			if elapsed > 50*time.Millisecond {
				t.Errorf("Wait() returned after %s, want at once", elapsed)
			}
			paced := window + 50*time.Millisecond
			if got := throttled.RetryAfter; got < 900*time.Millisecond || got > paced {
				t.Errorf("RetryAfter = %s, want between 900ms and %s", got, paced)
			}
			// The paced window is one second plus its margin, so the header says two.
			if got, want := throttled.RetryAfterSeconds(), 2; got != want {
				t.Errorf("RetryAfterSeconds() = %d, want %d", got, want)
			}
		})
	}
}

// TestPenalizeHoldsEveryReplica penalizes through one replica and checks that the other holds
// its writes for the penalty.
func TestPenalizeHoldsEveryReplica(t *testing.T) {
	t.Parallel()
	const hold = 600 * time.Millisecond
	for _, backend := range backends {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			budgets := newBudgets(t, backend.name, writebudget.Config{Limit: 100}, 2)
			start := time.Now()
			if err := budgets[0].Penalize(context.Background(), hold); err != nil {
				t.Fatalf("Penalize() error: %v", err)
			}

			err := waitWithin(budgets[1], 100*time.Millisecond)
			var throttled *writebudget.ThrottledError
			if !errors.As(err, &throttled) {
				t.Fatalf("Wait() during penalty error: %v, want ThrottledError", err)
			}
			if got := throttled.RetryAfter; got < hold-100*time.Millisecond || got > hold {
				t.Errorf("RetryAfter = %s, want between %s and %s", got, hold-100*time.Millisecond,
					hold)
			}

			mustWait(t, budgets[1])
			if elapsed := time.Since(start); elapsed < hold {
				t.Errorf("write granted %s after Penalize(%s), want no earlier than %s", elapsed,
					hold, hold)
			}
		})
	}
}

// TestCancelReleasesPlace checks that a waiter who gives up lets the next write take its slot.
func TestCancelReleasesPlace(t *testing.T) {
	t.Parallel()
	window := 400 * time.Millisecond
	for _, backend := range backends {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			b := newBudgets(t, backend.name, writebudget.Config{Limit: 1, Window: window}, 1)[0]
			start := time.Now()
			mustWait(t, b)

			ctx, cancel := context.WithCancel(context.Background())
			gaveUp := make(chan error, 1)
			go func() { gaveUp <- b.Wait(ctx) }()
			waitQueued(t, b, 1)
			granted := make(chan time.Duration, 1)
			go func() {
				mustWait(t, b)
				granted <- time.Since(start)
			}()
			waitQueued(t, b, 2)

			cancel()
			if err := <-gaveUp; !errors.Is(err, context.Canceled) {
				t.Errorf("canceled Wait() error: %v, want context.Canceled", err)
			}
			// Had the canceled waiter kept its slot, the next would wait a second window.
			if got := <-granted; got > window*3/2 {
				t.Errorf("next write granted after %s, want before %s", got, window*3/2)
			}
		})
	}
}

func TestWaitWithEndedContext(t *testing.T) {
	t.Parallel()
	b := newBudgets(t, "in-process", writebudget.Config{}, 1)[0]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait() error: %v, want context.Canceled", err)
	}
	if got := b.Stats().Granted; got != 0 {
		t.Errorf("Stats().Granted = %d, want 0", got)
	}
}

// TestRedisDownFailsClosed checks that no write passes uncounted when Redis cannot be reached.
func TestRedisDownFailsClosed(t *testing.T) {
	t.Parallel()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := listener.Addr().String()
	_ = listener.Close()
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = client.Close() })
	b, err := writebudget.New(writebudget.Config{RedisClient: client, Key: "unreachable"})
	if err != nil {
		t.Fatalf("New() error: %v", err)
	}

	tests := []struct {
		name string
		call func() error
	}{
		{name: "wait", call: func() error { return waitWithin(b, time.Second) }},
		{name: "penalize", call: func() error {
			return b.Penalize(context.Background(), time.Second)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var unavailable *writebudget.UnavailableError
			if err := tt.call(); !errors.As(err, &unavailable) {
				t.Errorf("error: %v, want UnavailableError", err)
			}
		})
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		retryAfter time.Duration
		want       int
	}{
		{name: "zero still sends one second", retryAfter: 0, want: 1},
		{name: "part of a second rounds up", retryAfter: time.Millisecond, want: 1},
		{name: "whole seconds stay", retryAfter: 20 * time.Second, want: 20},
		{name: "just past a second rounds up", retryAfter: 20*time.Second + 1, want: 21},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := &writebudget.ThrottledError{RetryAfter: tt.retryAfter}
			if got := err.RetryAfterSeconds(); got != tt.want {
				t.Errorf("RetryAfterSeconds() = %d, want %d", got, tt.want)
			}
		})
	}
}

func waitWithin(b *writebudget.Budget, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return b.Wait(ctx)
}

// TestDrainRefusesOnlyWaiters checks that Drain answers every write waiting for a slot at
// once with ErrDraining, while a write that finds a slot free still gets it.
func TestDrainRefusesOnlyWaiters(t *testing.T) {
	t.Parallel()
	const window = time.Minute
	for _, backend := range backends {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			b := newBudgets(t, backend.name, writebudget.Config{Limit: 2, Window: window}, 1)[0]
			mustWait(t, b)

			// Drained with a slot free: a write arriving then takes it without waiting.
			b.Drain()
			mustWait(t, b)

			// The budget is now full: one write asks the store, one waits for the turn behind
			// it, and both learn at once that they will not be served.
			start := time.Now()
			expectDrained(t, startWaiters(b, 2, 10*window), 2)
			if got := time.Since(start); got > time.Second {
				t.Errorf("refusals took %s, want them at once", got)
			}
			if got := b.Stats().Queued; got != 0 {
				t.Errorf("Stats().Queued after the refusals = %d, want 0", got)
			}
		})
	}
}

// TestDrainWakesWaiters checks that writes already waiting for a slot when Drain is called
// are answered at once with ErrDraining, not when their slot or deadline comes.
func TestDrainWakesWaiters(t *testing.T) {
	t.Parallel()
	const window = time.Minute
	for _, backend := range backends {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			b := newBudgets(t, backend.name, writebudget.Config{Limit: 1, Window: window}, 1)[0]
			mustWait(t, b)

			refused := startWaiters(b, 2, 10*window)
			waitQueued(t, b, 2)

			b.Drain()
			expectDrained(t, refused, 2)
		})
	}
}

// startWaiters starts n writes waiting on b, each for at most timeout, and returns where
// their results arrive.
func startWaiters(b *writebudget.Budget, n int, timeout time.Duration) <-chan error {
	results := make(chan error, n)
	for range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			results <- b.Wait(ctx)
		}()
	}
	return results
}

// expectDrained wants n results, each ErrDraining, within 2s.
func expectDrained(t *testing.T, results <-chan error, n int) {
	t.Helper()
	for range n {
		select {
		case err := <-results:
			if !errors.Is(err, writebudget.ErrDraining) {
				t.Errorf("Wait() on a draining budget: got %v, want ErrDraining", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("a write to a draining budget was not answered within 2s")
		}
	}
}
