// Package writebudget paces writes to Microsoft Graph so they stay within its throttling limits,
// turning a burst into a queue that drains as fast as the limit allows, in one process or shared
// by every replica through Redis.
//
// The budget is a log of recent writes, not a token bucket: a write may start once the write
// Limit places before it is Window plus Margin old. That is the fastest schedule in which no span
// of Window ever holds more than Limit writes, so it is safe however Graph counts (sliding or
// fixed windows, or a bucket of Limit refilled over Window), and a burst goes out in whole
// windows: 500 writes at 100 per 2s are done 8s after the first, where an equally safe token
// bucket (burst 1) spaces them 20ms apart and needs 10s.
//
// A write's age is measured from when Graph counted it, which the gateway cannot see; what it
// can see is a bound on either side. Graph counts a write after its slot is granted and before
// its answer comes back, so a write taken with WaitSlot is dated by its answer (Slot.Answered)
// and, until then, by the latest moment it could reach Graph: its grant plus the flight time
// the caller gives, its try timeout. Dating by the grant alone, as Wait does, is only safe
// when Margin covers the whole trip; when a hundred writes are granted at once it does not.
// The log is kept in date order, so writes answered out of order still free their slots in the
// right order, and a write whose answer never comes keeps its slot until its flight is over.
//
// Writes wait in arrival order and only the first asks the store for a slot, so a long queue
// costs Redis about one call per slot. Every attempt at Graph is a write, retries included:
// callers wait for a slot before each one.
package writebudget

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxLimit bounds Limit so the record of recent writes stays small in memory and in Redis.
const maxLimit = 1_000_000

// minPoll is the least pause between two asks for a slot, so that a prediction of zero (a
// write in flight answered just now, seen a moment later) never spins.
const minPoll = time.Millisecond

// minDefaultMargin is the least default Margin: below it, goroutine scheduling alone can bring
// two writes a window apart here closer together at Graph.
const minDefaultMargin = 50 * time.Millisecond

// Config describes one write budget. The zero value of every field but RedisClient and Key
// takes its default.
type Config struct {
	// Limit is the most writes any span of Window may hold. Default 100, Graph's limit for one
	// app on the Microsoft Tunnel endpoints.
	Limit int
	// Window is the span Limit applies to. Default 20s.
	Window time.Duration
	// Margin is added to Window when pacing. For a write dated at its grant (Wait) it absorbs
	// the time from the grant to the write's arrival at Graph, which scheduling and the network
	// add whatever the window; for a write dated by its answer (WaitSlot) it is a cushion for
	// how Graph itself counts. Default Window/100, at least 50ms.
	Margin time.Duration
	// MaxQueue is how many writes may wait at once in this process before more are refused.
	// Default 1000.
	MaxQueue int
	// RedisClient, when set, keeps the budget in Redis so that every replica shares it.
	// Nil keeps the budget in this process.
	RedisClient redis.UniversalClient
	// Key names the budget in Redis; every replica sharing the budget uses the same Key, for
	// example "tunnelgateway:writes:<tenant>:<client>". Required with RedisClient.
	Key string
}

// store holds the state of a budget: the recent writes, each with its date, and any penalty.
//
// A write in flight is dated in the future, at the latest moment it can reach Graph. The slot
// rule counts it there; the predictions of when a slot frees (the delays take and peek return)
// count it as if its answer came now, the earliest it can be dated, so that a waiter wakes in
// time to see the answer and asks again.
type store interface {
	// take records a write dated flight from now if the budget has room; otherwise it says how
	// long until the next slot may free.
	take(ctx context.Context, flight time.Duration) (w write, granted bool, delay time.Duration,
		err error)
	// redate dates w now, when its answer came back. A write that has left the window stays
	// gone.
	redate(ctx context.Context, w write) error
	// peek says how long until the slot of a write with ahead writes queued before it.
	peek(ctx context.Context, ahead int) (time.Duration, error)
	// penalize holds every write for d.
	penalize(ctx context.Context, d time.Duration) error
}

// write names one granted write in its store.
type write struct {
	id  string        // unique among every replica sharing the store (Redis only)
	seq uint64        // unique in this process (in-process only)
	at  time.Duration // its date when granted, on the store's timeline (in-process only)
}

// Budget grants write slots in arrival order within the limit. It is safe for concurrent use.
type Budget struct {
	store    store
	maxQueue int
	jitter   time.Duration // upper bound of the random pause added before polling Redis again

	// turn admits one waiter at a time to take slots; blocked senders queue in arrival order.
	turn chan struct{}
	// draining is closed by Drain: from then on a write gets a slot only if one is free at once.
	draining  chan struct{}
	drainOnce sync.Once

	mu     sync.Mutex
	queued int

	granted   atomic.Uint64
	throttled atomic.Uint64
}

// Stats is a snapshot of a budget for metrics.
type Stats struct {
	Queued    int    // writes waiting for a slot now
	Granted   uint64 // slots granted since New
	Throttled uint64 // writes refused with ThrottledError since New
}

// New checks cfg, fills in its defaults and returns a budget. It reports every problem of cfg
// at once.
func New(cfg Config) (*Budget, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}

	b := &Budget{maxQueue: cfg.MaxQueue, turn: make(chan struct{}, 1),
		draining: make(chan struct{})}
	paced := cfg.Window + cfg.Margin
	if cfg.RedisClient == nil {
		b.store = newLocalStore(cfg.Limit, paced)
		return b, nil
	}
	b.store = newRedisStore(cfg.RedisClient, cfg.Key, cfg.Limit, paced)
	b.jitter = time.Millisecond
	return b, nil
}

func (c Config) withDefaults() Config {
	if c.Limit == 0 {
		c.Limit = 100
	}
	if c.Window == 0 {
		c.Window = 20 * time.Second
	}
	if c.Margin == 0 {
		c.Margin = max(c.Window/100, minDefaultMargin)
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = 1000
	}
	return c
}

func (c Config) validate() error {
	var problems []error
	if c.Limit < 1 || c.Limit > maxLimit {
		problems = append(problems,
			fmt.Errorf("write budget Limit %d: must be between 1 and %d", c.Limit, maxLimit))
	}
	if c.Window < time.Millisecond {
		problems = append(problems,
			fmt.Errorf("write budget Window %s: must be at least 1ms", c.Window))
	}
	if c.Margin < 0 {
		problems = append(problems,
			fmt.Errorf("write budget Margin %s: must not be negative", c.Margin))
	}
	if c.MaxQueue < 0 {
		problems = append(problems,
			fmt.Errorf("write budget MaxQueue %d: must not be negative", c.MaxQueue))
	}
	if c.RedisClient != nil && c.Key == "" {
		problems = append(problems,
			errors.New("write budget Key \"\": must be set when RedisClient is"))
	}
	return errors.Join(problems...)
}

// Wait blocks until the write may go to Graph or ctx ends, and dates the write at its grant.
// Use it when the write is sent at once and answered well within Margin; otherwise use
// WaitSlot. ctx's deadline is taken as the latest moment the write may start, so callers leave
// room for the write itself.
//
// It returns a *ThrottledError at once when MaxQueue writes already wait or when the slot lies
// past the deadline, a *UnavailableError when Redis cannot be reached, and ctx's error, wrapped,
// when the caller goes away. A waiter that gives up leaves its place to the writes behind it.
func (b *Budget) Wait(ctx context.Context) error {
	_, err := b.WaitSlot(ctx, 0)
	return err
}

// WaitSlot is Wait for a write dated by its answer. flight bounds how long after its grant the
// write can reach Graph (the try timeout of the request that carries it): until the returned
// Slot is Answered the write is dated at its grant plus flight, and if Answered is never called
// it keeps that date. A negative flight is refused.
func (b *Budget) WaitSlot(ctx context.Context, flight time.Duration) (*Slot, error) {
	if flight < 0 {
		return nil, fmt.Errorf("wait for write budget: flight %s must not be negative", flight)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("wait for write budget: %w", err)
	}

	// Join the queue, or learn when a slot would be free if it is full.
	ahead, ok := b.join()
	if !ok {
		return nil, b.refuse(ctx, ReasonQueueFull, ahead)
	}
	defer b.leave()

	// Fail fast when the writes ahead take every slot before the deadline.
	if _, hasDeadline := ctx.Deadline(); hasDeadline && ahead > 0 {
		if err := b.checkDeadline(ctx, ahead); err != nil {
			return nil, err
		}
	}

	// Wait for the turn, then poll the store until it grants a slot.
	if err := b.takeTurn(ctx); err != nil {
		return nil, err
	}
	defer func() { <-b.turn }()
	w, err := b.poll(ctx, flight)
	if err != nil {
		return nil, err
	}
	return &Slot{store: b.store, write: w}, nil
}

// Penalize holds every write for d, on every replica when the budget is in Redis. Call it when
// Graph answers 429 despite the pacing, with the Retry-After Graph sent.
func (b *Budget) Penalize(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if err := b.store.penalize(ctx, d); err != nil {
		return &UnavailableError{Err: fmt.Errorf("penalize for %s: %w", d, err)}
	}
	return nil
}

// Drain makes the budget refuse, with ErrDraining, every write that would have to wait for a
// slot: those waiting now, at once, and those arriving later unless a slot is free right away.
// A process that is shutting down calls it so that writes never sent to Graph are answered
// promptly (the caller can send them to another replica) instead of holding the shutdown past
// its deadline. Calling it again does nothing.
func (b *Budget) Drain() {
	b.drainOnce.Do(func() { close(b.draining) })
}

// Stats reports the budget's queue and counters.
func (b *Budget) Stats() Stats {
	b.mu.Lock()
	queued := b.queued
	b.mu.Unlock()
	return Stats{Queued: queued, Granted: b.granted.Load(), Throttled: b.throttled.Load()}
}

// join counts the caller in and says how many writes wait before it; ok is false when the
// queue is full.
func (b *Budget) join() (ahead int, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()

	if b.queued >= b.maxQueue {
		return b.queued, false
	}
	b.queued++
	return b.queued - 1, true
}

func (b *Budget) leave() {
	b.mu.Lock()
	b.queued--
	b.mu.Unlock()
}

// takeTurn waits for the turn to ask the store. A free turn is taken even while draining, so
// that a write arriving then still gets a slot that is free at once.
func (b *Budget) takeTurn(ctx context.Context) error {
	select {
	case b.turn <- struct{}{}:
		return nil
	default:
	}
	select {
	case b.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return b.gaveUp(ctx)
	case <-b.draining:
		return fmt.Errorf("wait for write budget: %w", ErrDraining)
	}
}

func (b *Budget) isDraining() bool {
	select {
	case <-b.draining:
		return true
	default:
		return false
	}
}

func (b *Budget) checkDeadline(ctx context.Context, ahead int) error {
	delay, err := b.store.peek(ctx, ahead)
	if err != nil {
		return b.storeFailed(ctx, err)
	}
	if pastDeadline(ctx, delay) {
		return b.throttle(ReasonDeadline, delay)
	}
	return nil
}

// poll asks the store for a slot, sleeping until the next one may free between tries.
func (b *Budget) poll(ctx context.Context, flight time.Duration) (write, error) {
	for {
		w, granted, delay, err := b.store.take(ctx, flight)
		if err != nil {
			return write{}, b.storeFailed(ctx, err)
		}
		if granted {
			b.granted.Add(1)
			return w, nil
		}
		if b.isDraining() {
			return write{}, fmt.Errorf("wait for write budget: %w", ErrDraining)
		}
		if pastDeadline(ctx, delay) {
			return write{}, b.throttle(ReasonDeadline, delay)
		}
		if b.jitter > 0 {
			delay += rand.N(b.jitter)
		}
		// Drain wakes the sleeper, which then asks once more and is refused if still no slot.
		if !sleep(ctx, max(delay, minPoll), b.draining) && ctx.Err() != nil {
			return write{}, b.gaveUp(ctx)
		}
	}
}

// refuse answers a write the budget will not queue, with the time its slot would come.
func (b *Budget) refuse(ctx context.Context, reason ThrottleReason, ahead int) error {
	delay, err := b.store.peek(ctx, ahead)
	if err != nil {
		return b.storeFailed(ctx, err)
	}
	return b.throttle(reason, delay)
}

// gaveUp explains why a waiting write stopped: a caller who left gets ctx's error; one whose
// deadline passed while waiting gets the time a write arriving now would be served.
func (b *Budget) gaveUp(ctx context.Context) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("wait for write budget: %w", ctx.Err())
	}
	peekCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	delay, err := b.store.peek(peekCtx, b.Stats().Queued-1)
	if err != nil {
		return &UnavailableError{Err: err}
	}
	return b.throttle(ReasonDeadline, delay)
}

func (b *Budget) storeFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return b.gaveUp(ctx)
	}
	return &UnavailableError{Err: err}
}

func (b *Budget) throttle(reason ThrottleReason, delay time.Duration) error {
	b.throttled.Add(1)
	return &ThrottledError{Reason: reason, RetryAfter: delay}
}

func pastDeadline(ctx context.Context, delay time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return ok && time.Now().Add(delay).After(deadline)
}

// sleep waits for d and reports whether it did before ctx ended or wake was closed.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	case <-wake:
		return false
	}
}
