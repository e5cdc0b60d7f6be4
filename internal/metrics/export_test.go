package metrics

import "time"

// SetClock makes the token lifetime read time from now, so tests need not sleep.
func (l *TokenLifetime) SetClock(now func() time.Time) { l.now = now }
