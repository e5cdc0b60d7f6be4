package writebudget_test

import (
	"context"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"tunnelgateway/internal/writebudget"
)

const redisAddr = "127.0.0.1:6379"

// redisClient connects to the test Redis. Outside CI a missing Redis skips the test; in CI it
// fails it, because there the shared budget must be proven.
func redisClient(tb testing.TB) *redis.Client {
	tb.Helper()
	client := redis.NewClient(&redis.Options{Addr: redisAddr})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		if os.Getenv("CI") != "" {
			tb.Fatalf("redis at %s is required in CI: %v", redisAddr, err)
		}
		tb.Skipf("redis at %s unreachable, skipping (set CI to make this a failure): %v",
			redisAddr, err)
	}
	tb.Cleanup(func() { _ = client.Close() })
	return client
}

// uniqueKey returns a budget key no other test uses and deletes its Redis keys afterwards.
func uniqueKey(tb testing.TB, client *redis.Client) string {
	tb.Helper()
	key := "writebudget-test:" + strconv.FormatUint(rand.Uint64(), 36)
	tb.Cleanup(func() {
		ctx := context.Background()
		iter := client.Scan(ctx, 0, "{"+key+"}:*", 100).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
	})
	return key
}

// newBudgets returns n budgets sharing one budget: in Redis for backend "redis", otherwise the
// same in-process budget n times.
func newBudgets(
	tb testing.TB, backend string, cfg writebudget.Config, n int,
) []*writebudget.Budget {
	tb.Helper()
	if backend == "redis" {
		cfg.RedisClient = redisClient(tb)
		cfg.Key = uniqueKey(tb, cfg.RedisClient.(*redis.Client))
	}
	budgets := make([]*writebudget.Budget, n)
	for i := range budgets {
		if backend != "redis" && i > 0 {
			budgets[i] = budgets[0]
			continue
		}
		b, err := writebudget.New(cfg)
		if err != nil {
			tb.Fatalf("New(%+v) error: %v", cfg, err)
		}
		budgets[i] = b
	}
	return budgets
}

// maxInWindow is the most grants any half-open span of length window holds.
func maxInWindow(grants []time.Time, window time.Duration) int {
	sorted := append([]time.Time(nil), grants...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Before(sorted[j]) })
	most, first := 0, 0
	for last := range sorted {
		for sorted[last].Sub(sorted[first]) >= window {
			first++
		}
		most = max(most, last-first+1)
	}
	return most
}

// waitQueued waits until b has want writes queued.
func waitQueued(tb testing.TB, b *writebudget.Budget, want int) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for b.Stats().Queued != want {
		if time.Now().After(deadline) {
			tb.Fatalf("Stats().Queued = %d, want %d", b.Stats().Queued, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func mustWait(tb testing.TB, b *writebudget.Budget) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Wait(ctx); err != nil {
		tb.Fatalf("Wait() error: %v", err)
	}
}
