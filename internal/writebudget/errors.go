package writebudget

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ThrottleReason says why a write was refused a slot.
type ThrottleReason string

const (
	// ReasonQueueFull means MaxQueue writes were already waiting.
	ReasonQueueFull ThrottleReason = "queue_full"
	// ReasonDeadline means the write's slot lies past its context's deadline.
	ReasonDeadline ThrottleReason = "deadline"
)

// ThrottledError refuses a write because the budget cannot grant it in time. RetryAfter is when
// a write would get a slot if it came back then, as far as this budget can see: the earliest
// possible time, which writes still in flight (counted as answered now) and, with Redis, other
// replicas taking slots meanwhile can only push later.
type ThrottledError struct {
	Reason     ThrottleReason
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("write budget exhausted (%s): retry after %s", e.Reason, e.RetryAfter)
}

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1, for the Retry-After
// header: rounding down would send the caller back before its slot.
func (e *ThrottledError) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// ErrDraining refuses a write that would have had to wait for a slot after Drain. The write was
// never sent to Graph, so the caller loses nothing by sending it again, to another replica.
var ErrDraining = errors.New("write budget draining: the gateway is shutting down")

// UnavailableError means the shared budget in Redis could not be read or changed. The budget
// fails closed: no write passes that it cannot count.
type UnavailableError struct {
	Err error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("write budget unavailable: %v", e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }
