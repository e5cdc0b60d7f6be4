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

// takeScript keeps the shared record of recent writes as a sorted set scored by Redis's own
// clock, so replicas' clocks never matter. It grants a slot when asked (ARGV[3] = "1"), the
// window has room and no penalty holds; otherwise it returns what the caller needs to predict
// the next slots: {granted, now, penalty end, recent write times...}, all in microseconds.
var takeScript = redis.NewScript(`
redis.replicate_commands()
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local penalty_end = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[3] == '1' and penalty_end <= now and redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return {1, now, penalty_end}
end

local reply = {0, now, penalty_end}
local recent = redis.call('ZRANGE', KEYS[1], 0, limit - 1, 'WITHSCORES')
for i = 2, #recent, 2 do
  reply[#reply + 1] = tonumber(recent[i])
end
return reply
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

func (s *redisStore) take(ctx context.Context) (bool, time.Duration, error) {
	snap, err := s.run(ctx, true)
	if err != nil {
		return false, 0, err
	}
	if snap.granted {
		return true, 0, nil
	}
	return false, snap.delay(s, 0), nil
}

func (s *redisStore) peek(ctx context.Context, ahead int) (time.Duration, error) {
	snap, err := s.run(ctx, false)
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
	return slotDelay(snap.recent, snap.now, snap.until, s.window, s.limit, ahead)
}

func (s *redisStore) run(ctx context.Context, take bool) (snapshot, error) {
	flag := "0"
	member := ""
	if take {
		flag = "1"
		member = s.member + strconv.FormatUint(s.count.Add(1), 36)
	}
	reply, err := takeScript.Run(ctx, s.client, s.keys,
		s.limit, s.window.Microseconds(), flag, member).Int64Slice()
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
