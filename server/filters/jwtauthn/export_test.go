package jwtauthn

import "time"

// SetClock makes filters built from now on read the time from now; the
// returned function restores the clock.
func SetClock(now func() time.Time) (restore func()) {
	old := clock
	clock = now
	return func() { clock = old }
}
