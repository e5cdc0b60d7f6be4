package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// maxEventBytes caps one encoded event. It is also the most one batch writes at once, which
// keeps every batch within lumberjack's smallest rotation size (1 MB) so a batch is never
// refused or split across files.
const maxEventBytes = 1 << 20

var (
	// ErrClosed is returned for events recorded after Close.
	ErrClosed = errors.New("audit log is closed")
	// ErrEventTooLarge is returned for an event whose encoding exceeds 1 MiB.
	ErrEventTooLarge = errors.New("audit event exceeds 1 MiB")
)

// Error reports that an event was not recorded. For a RequestReceived event the request must
// be refused (the gateway answers 503) and must not be forwarded.
type Error struct {
	Stage Stage
	Err   error
}

func (e *Error) Error() string { return fmt.Sprintf("audit: record %s event: %v", e.Stage, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// Observer receives the log's measurements; metrics.AuditObserver implements it, so this
// package need not import the metrics package. Methods must be safe for concurrent use.
type Observer interface {
	// AuditEventsWritten counts events written and synced, by stage.
	AuditEventsWritten(stage string, count int)
	// AuditEventsFailed counts events that could not be recorded: refused when queued (log
	// closed, event too large) or lost with a batch whose write or sync failed.
	AuditEventsFailed(count int)
	// AuditSynced records one fsync (or sync attempt) and how long it took.
	AuditSynced(duration time.Duration)
}

// Option tunes a Log.
type Option func(*Log)

// WithObserver sends the log's measurements to o.
func WithObserver(o Observer) Option { return func(l *Log) { l.observer = o } }

// Stats are the log's own counters since it was opened.
type Stats struct {
	// Events is the number of events written and synced.
	Events uint64
	// Failures is the number of events that could not be recorded (see Observer).
	Failures uint64
	// Syncs is the number of sync calls made on the sink; with group commit it grows with
	// batches, not with events.
	Syncs uint64
}

// Log is the audit trail. One writer goroutine owns the sink: it takes everything queued,
// writes it in one call, syncs once, and then answers every waiter with that one result.
// Callers arriving while a sync runs form the next batch, so under load many requests share
// one fsync (group commit).
type Log struct {
	sink     Sink
	logger   *zap.Logger
	observer Observer

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []*pending
	closed bool
	// poked asks the writer to sync what it wrote without syncing (see lazySyncDelay).
	poked bool
	// timerArmed is the writer's own: a lazy sync is scheduled.
	timerArmed bool
	// probeDue asks the writer to try the failing sink again (see probeInterval).
	probeDue bool
	// probeArmed is the writer's own: a probe is scheduled.
	probeArmed bool

	done     chan struct{} // closed when the writer has drained the queue and closed the sink
	closeErr error         // set by the writer before done closes

	lastErr                 atomic.Pointer[error]
	events, failures, syncs atomic.Uint64
}

// pending is one queued line. result is nil when nobody waits for it.
type pending struct {
	line   []byte
	stage  Stage
	result chan error
}

// Open validates cfg, opens its sink and starts the writer.
func Open(cfg Config, logger *zap.Logger, opts ...Option) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sink, err := OpenSink(cfg)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	if s, ok := sink.(*streamSink); ok && !s.syncable() {
		// Said once, at start-up: every later "synced" of this trail means "handed to the
		// stream", and operators choosing where the trail goes must know that.
		logger.Warn("audit trail goes to a stream that cannot be fsynced: an event counts as "+
			"recorded once the stream's reader (the container runtime, a log collector) has "+
			"it, not once it is on stable storage; for fail-closed durability write the "+
			"audit trail to a file on a persistent volume (--audit-log PATH)",
			zap.String("audit_log", cfg.Path), zap.String("stream", s.kind()))
	}
	return New(sink, logger, opts...), nil
}

// New starts a writer on sink; the Log owns the sink and closes it in Close. A nil logger
// discards the log's own operational messages.
func New(sink Sink, logger *zap.Logger, opts ...Option) *Log {
	if logger == nil {
		logger = zap.NewNop()
	}
	l := &Log{sink: sink, logger: logger, done: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	for _, opt := range opts {
		opt(l)
	}
	go l.run()
	return l
}

// RequestReceived records e at StageRequestReceived and returns only once it is written and
// synced. It stamps the stage and StageTimestamp (and RequestReceivedTimestamp when zero).
// Any error, including ctx ending first, is an *Error: the request must not be forwarded.
// e may be changed and reused as soon as RequestReceived returns.
func (l *Log) RequestReceived(ctx context.Context, e *Event) error {
	now := time.Now().UTC()
	e.Stage, e.StageTimestamp = StageRequestReceived, now
	if e.RequestReceivedTimestamp.IsZero() {
		e.RequestReceivedTimestamp = now
	}

	p, err := l.enqueue(e, true)
	if err != nil {
		return &Error{Stage: StageRequestReceived, Err: err}
	}
	select {
	case err := <-p.result:
		if err != nil {
			return &Error{Stage: StageRequestReceived, Err: err}
		}
		return nil
	case <-ctx.Done():
		return &Error{Stage: StageRequestReceived, Err: ctx.Err()}
	}
}

// ResponseComplete records e at StageResponseComplete without waiting for the disk: the
// response has already gone to the caller, so holding the handler for an fsync would only add
// latency. The event is written at once and synced by the next waiter's fsync, or at most
// lazySyncDelay later by a timer, so events nobody waits for add no fsync of their own; if the
// sync fails, the failure is counted, logged and reported by Healthy. ResponseComplete stamps
// the stage, StageTimestamp and, when zero, LatencySeconds. It returns an *Error only when the event cannot be queued
// (log closed, event too large). Use Flush to wait for queued events.
func (l *Log) ResponseComplete(e *Event) error {
	now := time.Now().UTC()
	e.Stage, e.StageTimestamp = StageResponseComplete, now
	if e.LatencySeconds == 0 && !e.RequestReceivedTimestamp.IsZero() {
		e.LatencySeconds = now.Sub(e.RequestReceivedTimestamp).Seconds()
	}
	if _, err := l.enqueue(e, false); err != nil {
		return &Error{Stage: StageResponseComplete, Err: err}
	}
	return nil
}

// Flush returns once every event queued before it is written and synced, with the error of
// the batch that carried it.
func (l *Log) Flush(ctx context.Context) error {
	p := &pending{result: make(chan error, 1)}
	if err := l.push(p); err != nil {
		return err
	}
	select {
	case err := <-p.result:
		return err
	case <-ctx.Done():
		return fmt.Errorf("flush audit log: %w", ctx.Err())
	}
}

// Healthy returns the error of the last batch, or nil once a later batch or a probe of the
// sink succeeds; after Close it returns ErrClosed. Readiness probes use it. While it reports a
// failure the writer probes the sink every probeInterval, because an unready gateway gets no
// traffic and so no batch that could clear the failure.
func (l *Log) Healthy() error {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := l.lastErr.Load(); err != nil {
		return *err
	}
	return nil
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	return Stats{Events: l.events.Load(), Failures: l.failures.Load(), Syncs: l.syncs.Load()}
}

// Close stops accepting events, writes and syncs everything queued, and closes the sink. It
// returns the first error met doing so. If ctx ends first, Close returns its error and the
// writer finishes in the background.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()

	select {
	case <-l.done:
		return l.closeErr
	case <-ctx.Done():
		return fmt.Errorf("close audit log: %w", ctx.Err())
	}
}

// enqueue encodes e in the caller's goroutine and queues it. A refusal counts as a failure.
func (l *Log) enqueue(e *Event, wait bool) (*pending, error) {
	p, err := l.prepare(e, wait)
	if err == nil {
		err = l.push(p)
	}
	if err != nil {
		l.failures.Add(1)
		if l.observer != nil {
			l.observer.AuditEventsFailed(1)
		}
		return nil, err
	}
	return p, nil
}

func (l *Log) prepare(e *Event, wait bool) (*pending, error) {
	line, err := encode(e)
	if err != nil {
		return nil, err
	}
	if len(line) > maxEventBytes {
		return nil, ErrEventTooLarge
	}
	p := &pending{line: line, stage: e.Stage}
	if wait {
		p.result = make(chan error, 1)
	}
	return p, nil
}

func (l *Log) push(p *pending) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.queue = append(l.queue, p)
	l.cond.Signal()
	return nil
}

// run is the writer: take a batch, commit it, answer its waiters; until closed and drained.
func (l *Log) run() {
	defer close(l.done)
	var buf []byte
	var closeErr error
	var unsynced []*pending // written, not yet synced: nobody was waiting for them
	for {
		batch, closing, poked, probe := l.take()
		if probe && !closing {
			l.probe()
		}
		if err := l.write(batch, &buf); err != nil {
			l.finish(append(unsynced, batch...), err)
			unsynced = nil
			if closing && closeErr == nil {
				closeErr = err
			}
			if closing && len(batch) == 0 {
				break
			}
			continue
		}
		unsynced = append(unsynced, batch...)

		// A batch nobody waits for (ResponseComplete events) need not cost an fsync of its own:
		// the next waiter's sync covers it, or a timer does shortly after. A wake-up
		// with nothing written (a probe's) arms no timer: the timer's wake-up clears the mark
		// only when it has something to sync, so an idle one would leave it set for good.
		if !closing && !poked && len(unsynced) > 0 && !anyWaiter(unsynced) {
			l.scheduleSync()
			continue
		}
		if len(unsynced) > 0 || closing {
			err := l.sync()
			l.finish(unsynced, err)
			unsynced = nil
			l.timerArmed = false
			if closing && closeErr == nil {
				closeErr = err
			}
		}
		if closing && len(batch) == 0 {
			break
		}
	}
	if err := l.sink.Close(); err != nil && closeErr == nil {
		closeErr = fmt.Errorf("close audit sink: %w", err)
	}
	l.closeErr = closeErr
}

// lazySyncDelay bounds how long an event nobody waits for stays written but unsynced.
const lazySyncDelay = 100 * time.Millisecond

func (l *Log) scheduleSync() {
	if l.timerArmed {
		return
	}
	l.timerArmed = true
	time.AfterFunc(lazySyncDelay, func() {
		l.mu.Lock()
		l.poked = true
		l.mu.Unlock()
		l.cond.Broadcast()
	})
}

func anyWaiter(batch []*pending) bool {
	for _, p := range batch {
		if p.result != nil {
			return true
		}
	}
	return false
}

func (l *Log) take() (batch []*pending, closing, poked, probe bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.queue) == 0 && !l.closed && !l.poked && !l.probeDue {
		l.cond.Wait()
	}
	poked, l.poked = l.poked, false
	probe, l.probeDue = l.probeDue, false

	size, n := 0, 0
	for n < len(l.queue) && (n == 0 || size+len(l.queue[n].line) <= maxEventBytes) {
		size += len(l.queue[n].line)
		n++
	}
	batch = l.queue[:n:n]
	if n == len(l.queue) {
		l.queue = nil
	} else {
		l.queue = append([]*pending(nil), l.queue[n:]...)
	}
	return batch, l.closed, poked, probe
}

// probeInterval is how often a failing sink is tried again without traffic.
const probeInterval = time.Second

func (l *Log) scheduleProbe() {
	if l.probeArmed {
		return
	}
	l.probeArmed = true
	time.AfterFunc(probeInterval, func() {
		l.mu.Lock()
		l.probeDue = true
		l.mu.Unlock()
		l.cond.Broadcast()
	})
}

// probe tries a failing sink with a write of no bytes and a sync, and clears the failure when
// both succeed. The empty write lets the file sink reopen its file (lumberjack creates it again
// once its directory is back); the sync proves it reaches storage. For a stream the empty
// write proves little more than that the descriptor is open; a stream that still fails shows
// it again with the next event.
func (l *Log) probe() {
	l.probeArmed = false
	if l.lastErr.Load() == nil {
		return
	}
	_, err := l.sink.Write(nil)
	if err == nil {
		err = l.sync()
	}
	if err != nil {
		l.logger.Debug("audit trail still failing", zap.Error(err))
		l.scheduleProbe()
		return
	}
	l.lastErr.Store(nil)
	l.logger.Info("audit trail recovered")
}

// commit writes the batch in one call and syncs once.
func (l *Log) write(batch []*pending, buf *[]byte) error {
	b := (*buf)[:0]
	for _, p := range batch {
		b = append(b, p.line...)
	}
	*buf = b

	if len(b) > 0 {
		if _, err := l.sink.Write(b); err != nil {
			return fmt.Errorf("write audit events: %w", err)
		}
	}
	return nil
}

func (l *Log) sync() error {
	start := time.Now()
	err := l.sink.Sync()
	l.syncs.Add(1)
	if l.observer != nil {
		l.observer.AuditSynced(time.Since(start))
	}
	if err != nil {
		return fmt.Errorf("sync audit events: %w", err)
	}
	return nil
}

func (l *Log) finish(batch []*pending, err error) {
	l.record(batch, err)
	for _, p := range batch {
		if p.result != nil {
			p.result <- err
		}
	}
}

func (l *Log) record(batch []*pending, err error) {
	if err != nil {
		l.lastErr.Store(&err)
		l.scheduleProbe()
		n := countEvents(batch, "")
		l.failures.Add(uint64(n))
		if l.observer != nil {
			l.observer.AuditEventsFailed(n)
		}
		l.logger.Error("failed to record audit events", zap.Int("events", n), zap.Error(err))
		return
	}

	l.lastErr.Store(nil)
	for _, stage := range []Stage{StageRequestReceived, StageResponseComplete} {
		n := countEvents(batch, stage)
		l.events.Add(uint64(n))
		if l.observer != nil && n > 0 {
			l.observer.AuditEventsWritten(string(stage), n)
		}
	}
}

// countEvents counts the batch's events of one stage, or of any stage when stage is empty.
// Flush markers carry no line and are not events.
func countEvents(batch []*pending, stage Stage) int {
	n := 0
	for _, p := range batch {
		if len(p.line) > 0 && (stage == "" || p.stage == stage) {
			n++
		}
	}
	return n
}
