package writebudget_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"tunnelgateway/internal/writebudget"
)

// TestArrivalsBetweenGrantAndAnswerStayWithinLimit is the property dating by answers buys:
// wherever between its grant and its answer Graph counts a write, no window at Graph holds more
// than the limit, even when writes take longer than the margin to arrive. Each write arrives
// just before its answer; the writes granted first (the first window's worth) take four
// margins to arrive and the next ones none, the worst case for dating by grant: there the late
// arrivals of the first window and the prompt ones of the second share a window.
func TestArrivalsBetweenGrantAndAnswerStayWithinLimit(t *testing.T) {
	t.Parallel()
	const limit, writesPerReplica = 20, 30
	const window, slowTrip = time.Second, 200 * time.Millisecond
	for _, backend := range backends {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			budgets := newBudgets(t, backend.name,
				writebudget.Config{Limit: limit, Window: window}, 2)

			var mu sync.Mutex
			var arrivals []time.Time
			var granted atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for _, b := range budgets {
				for range writesPerReplica {
					wg.Go(func() {
						slot := mustWaitSlot(t, b, time.Second)
						if granted.Add(1) <= limit {
							time.Sleep(slowTrip)
						}
						mu.Lock()
						arrivals = append(arrivals, time.Now())
						mu.Unlock()
						mustAnswer(t, slot)
					})
				}
			}
			wg.Wait()
			elapsed := time.Since(start)

			if got := maxInWindow(arrivals, window); got > limit {
				t.Errorf("most arrivals in a %s window = %d, want at most %d", window, got, limit)
			}
			// Three windows' worth: two paced windows, the first after the slow trips.
			if slowest := 2*(window+50*time.Millisecond) + slowTrip +
				200*time.Millisecond; elapsed > slowest {
				t.Errorf("burst took %s, want at most %s", elapsed, slowest)
			}
		})
	}
}

// TestSlotFreesByAnswerDate checks the dates of the log one by one. Two writes go at once,
// each allowed 600ms of flight; the second is answered after 50ms, the first never is. The
// third write starts a paced window after the second's answer, though the first, granted before
// it, is still in flight: the log is in date order. The fourth starts a paced window after the
// first's flight ended: a write whose answer never comes keeps its slot that long, no longer.
func TestSlotFreesByAnswerDate(t *testing.T) {
	t.Parallel()
	const window, flight = 300 * time.Millisecond, 600 * time.Millisecond
	paced := window + 50*time.Millisecond
	slack := 100 * time.Millisecond
	for _, backend := range backends {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			b := newBudgets(t, backend.name, writebudget.Config{Limit: 2, Window: window}, 1)[0]
			firstGranted := time.Now()
			mustWaitSlot(t, b, flight) // never answered
			second := mustWaitSlot(t, b, flight)

			third := make(chan time.Time, 1)
			go func() {
				mustWaitSlot(t, b, flight)
				third <- time.Now()
			}()
			waitQueued(t, b, 1)
			fourth := make(chan time.Time, 1)
			go func() {
				mustWaitSlot(t, b, flight)
				fourth <- time.Now()
			}()
			waitQueued(t, b, 2)

			time.Sleep(50 * time.Millisecond)
			answered := time.Now()
			mustAnswer(t, second)

			checkGrantedAfter(t, "third write", <-third, answered, paced, slack)
			checkGrantedAfter(t, "fourth write", <-fourth, firstGranted, flight+paced, slack)
		})
	}
}

// TestRedisRecordOutlivesFlight checks that the record of writes in Redis lives until its
// latest write, in flight and so dated ahead, has left the window.
func TestRedisRecordOutlivesFlight(t *testing.T) {
	t.Parallel()
	client := redisClient(t)
	key := uniqueKey(t, client)
	const window, flight = time.Second, 5 * time.Second
	b, err := writebudget.New(writebudget.Config{Limit: 2, Window: window, RedisClient: client,
		Key: key})
	if err != nil {
		t.Fatalf("New() error: %v", err)
	}
	mustWaitSlot(t, b, flight)

	ttl, err := client.PTTL(context.Background(), "{"+key+"}:recent").Result()
	if err != nil {
		t.Fatalf("PTTL error: %v", err)
	}
	if least := flight + window; ttl < least {
		t.Errorf("record of writes expires in %s, want at least %s", ttl, least)
	}
}

func TestWaitSlotRefusesNegativeFlight(t *testing.T) {
	t.Parallel()
	b := newBudgets(t, "in-process", writebudget.Config{}, 1)[0]
	slot, err := b.WaitSlot(context.Background(), -time.Second)
	if err == nil || slot != nil {
		t.Fatalf("WaitSlot(-1s) = %v, %v; want a nil slot and an error", slot, err)
	}
	if got := b.Stats().Granted; got != 0 {
		t.Errorf("Stats().Granted = %d, want 0", got)
	}
}

// TestAnsweredWithRedisGoneFailsClearly checks that a write whose answer cannot be recorded
// says so; it keeps its later date, which is safe.
func TestAnsweredWithRedisGoneFailsClearly(t *testing.T) {
	t.Parallel()
	owner := redisClient(t)
	key := uniqueKey(t, owner)
	client := redis.NewClient(&redis.Options{Addr: redisAddr})
	b, err := writebudget.New(writebudget.Config{RedisClient: client, Key: key})
	if err != nil {
		t.Fatalf("New() error: %v", err)
	}
	slot := mustWaitSlot(t, b, time.Second)
	_ = client.Close()

	var unavailable *writebudget.UnavailableError
	if err := slot.Answered(context.Background()); !errors.As(err, &unavailable) {
		t.Errorf("Answered() error: %v, want UnavailableError", err)
	}
}

// mustWaitSlot waits for a slot for a write of flight, failing the test (but not stopping it,
// so that it may run on any goroutine) when none comes.
func mustWaitSlot(tb testing.TB, b *writebudget.Budget, flight time.Duration) *writebudget.Slot {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	slot, err := b.WaitSlot(ctx, flight)
	if err != nil {
		tb.Errorf("WaitSlot() error: %v", err)
	}
	return slot
}

func mustAnswer(tb testing.TB, slot *writebudget.Slot) {
	tb.Helper()
	if err := slot.Answered(context.Background()); err != nil {
		tb.Errorf("Answered() error: %v", err)
	}
}

// checkGrantedAfter fails unless granted lies between after+least and after+least+slack.
func checkGrantedAfter(t *testing.T, what string, granted, after time.Time, least,
	slack time.Duration) {
	t.Helper()
	if got := granted.Sub(after); got < least || got > least+slack {
		t.Errorf("%s granted %s after its blocker's date, want between %s and %s", what, got,
			least, least+slack)
	}
}
