package oauth

import "time"

// SetLimiterClock makes l read the time from now.
func SetLimiterClock(l *Limiter, now func() time.Time) { l.now = now }
