package oauth

import "time"

// SetSlowDown shortens what a slow_down answer adds to the polling
// interval, so that a test of it takes a second rather than five.
func SetSlowDown(c *LoginConfig, d time.Duration) { c.slowDown = d }
