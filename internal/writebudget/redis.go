package writebudget

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// clockAndExpiry is the start of every script that changes the record of recent writes: the
// time now on Redis's clock, in microseconds, and keep(), which makes the record outlive its
// latest write by the window (ARGV[2], microseconds), so an idle budget leaves nothing behind.
const clockAndExpiry = `
redis.replicate_commands()
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local function keep(key, window)
  local latest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if latest[2] then
    local ttl = math.max(tonumber(latest[2]) - now, 0) + window
    redis.call('PEXPIRE', key, math.ceil(ttl / 1000) + 1000)
  end
end
`

// takeScript keeps the shared record of recent writes as a sorted set scored by each write's
// date on Redis's own clock, so replicas' clocks never matter. It grants a slot when asked
// (ARGV[3] = "1"), the window has room and no penalty holds, and dates the write ARGV[5]
// microseconds ahead (its flight); otherwise it returns what the caller needs to predict the
// next slots: {granted, now, penalty end, recent write dates...}, all in microseconds.
var takeScript = redis.NewScript(clockAndExpiry + `
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local penalty_end = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[3] == '1' and penalty_end <= now and redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[4])
  keep(KEYS[1], window)
  return {1, now, penalty_end}
end

local reply = {0, now, penalty_end}
local recent = redis.call('ZRANGE', KEYS[1], 0, limit - 1, 'WITHSCORES')
for i = 2, #recent, 2 do
  reply[#reply + 1] = tonumber(recent[i])
end
return reply
`)

// redateScript dates the write ARGV[1] now, if it is still inside the window (ARGV[2],
// microseconds); a write that left it stays gone.
var redateScript = redis.NewScript(clockAndExpiry + `
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now, ARGV[1]) == 1 then
  keep(KEYS[1], window)
end
return 0
`)

// penalizeScript moves the penalty end to now + ARGV[1] microseconds unless it is already later.
var penalizeScript = redis.NewScript(`
redis.replicate_commands()
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local hold = tonumber(ARGV[1])
local penalty_end = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + hold > penalty_end then
  redis.call('SET', KEYS[1], string.format('%.0f', now + hold), 'PX', math.ceil(hold / 1000) + 1000)
end
return 0
`)

// redisStore keeps the budget in Redis, shared by every replica using the same key.
type redisStore struct {
	client redis.UniversalClient
	keys   []string // recent writes, penalty end; one hash slot so a cluster runs the scripts
	limit  int
	window time.Duration

	// Members of the sorted set must be unique across replicas: a random prefix and a count.
	member string
	count  atomic.Uint64
}

func newRedisStore(
	client redis.UniversalClient, key string, limit int, window time.Duration,
) *redisStore {
	tagged := "{" + key + "}"
	return &redisStore{
		client: client,
		keys:   []string{tagged + ":recent", tagged + ":penalty"},
		limit:  limit,
		window: window,
		member: strconv.FormatUint(rand.Uint64(), 36) + ":",
	}
}

func (s *redisStore) take(ctx context.Context, flight time.Duration) (
	write, bool, time.Duration, error,
) {
	w := write{id: s.member + strconv.FormatUint(s.count.Add(1), 36)}
	snap, err := s.run(ctx, w.id, flight)
	if err != nil {
		return write{}, false, 0, err
	}
	if snap.granted {
		return w, true, 0, nil
	}
	return write{}, false, snap.delay(s, 0), nil
}

func (s *redisStore) redate(ctx context.Context, w write) error {
	err := redateScript.Run(ctx, s.client, s.keys[:1], w.id, s.window.Microseconds()).Err()
	if err != nil {
		return fmt.Errorf("date write in redis: %w", err)
	}
	return nil
}

func (s *redisStore) peek(ctx context.Context, ahead int) (time.Duration, error) {
	snap, err := s.run(ctx, "", 0)
	if err != nil {
		return 0, err
	}
	return snap.delay(s, ahead), nil
}

func (s *redisStore) penalize(ctx context.Context, d time.Duration) error {
	err := penalizeScript.Run(ctx, s.client, s.keys[1:], d.Microseconds()).Err()
	if err != nil {
		return fmt.Errorf("set penalty in redis: %w", err)
	}
	return nil
}

// snapshot is one reply of takeScript on Redis's timeline.
type snapshot struct {
	granted    bool
	now, until time.Duration
	recent     []time.Duration
}

func (snap snapshot) delay(s *redisStore, ahead int) time.Duration {
	date := func(i int) time.Duration { return snap.recent[i] }
	return slotDelay(len(snap.recent), date, snap.now, snap.until, s.window, s.limit, ahead)
}

// run runs takeScript: to take a slot for the write member, dated flight ahead, or with no
// member to look only.
func (s *redisStore) run(ctx context.Context, member string, flight time.Duration) (
	snapshot, error,
) {
	flag := "0"
	if member != "" {
		flag = "1"
	}
	reply, err := takeScript.Run(ctx, s.client, s.keys, s.limit, s.window.Microseconds(),
		flag, member, flight.Microseconds()).Int64Slice()
	if err != nil {
		return snapshot{}, fmt.Errorf("take write slot in redis: %w", err)
	}
	return parseSnapshot(reply)
}

func parseSnapshot(reply []int64) (snapshot, error) {
	if len(reply) < 3 {
		return snapshot{}, errors.New("take write slot in redis: reply too short")
	}
	snap := snapshot{
		granted: reply[0] == 1,
		now:     time.Duration(reply[1]) * time.Microsecond,
		until:   time.Duration(reply[2]) * time.Microsecond,
	}
	for _, at := range reply[3:] {
		snap.recent = append(snap.recent, time.Duration(at)*time.Microsecond)
	}
	return snap, nil
}
