package delivery

import (
	"fmt"
	"time"
)

// The defaults of a zero Retry.
const (
	DefaultRetries    = 5
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = 5 * time.Minute
	DefaultTimeout    = 60 * time.Second
)

// Retry says how a route tries a batch of events again. A zero field takes
// its default. After the last failed try, the batch goes to the dead
// letter.
type Retry struct {
	// Retries is how many times a failed batch is tried again, after the
	// first try: 0 means DefaultRetries (6 tries in all), a negative
	// number none.
	Retries int

	// Backoff is the delay before the first retry, doubled before each
	// next one up to MaxBackoff, each delay varied by ±25% at random so
	// that lanes failing together do not retry in step.
	Backoff    time.Duration
	MaxBackoff time.Duration

	// Timeout bounds each try: Deliver's ctx ends after it.
	Timeout time.Duration
}

// withDefaults returns r with its zero fields set to the defaults.
func (r Retry) withDefaults() Retry {
	switch {
	case r.Retries == 0:
		r.Retries = DefaultRetries
	case r.Retries < 0:
		r.Retries = 0
	}
	if r.Backoff <= 0 {
		r.Backoff = DefaultBackoff
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = DefaultMaxBackoff
	}
	if r.Timeout <= 0 {
		r.Timeout = DefaultTimeout
	}
	return r
}

// delay returns how long to wait before retry n (1 for the first retry),
// given rnd, a random number in [0, 1): Backoff·2ⁿ⁻¹ capped at MaxBackoff,
// then varied by ±25%, and never more than MaxBackoff. r has its
// defaults.
func (r Retry) delay(n int, rnd float64) time.Duration {
	d := r.Backoff
	for i := 1; i < n && d < r.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.MaxBackoff)
	d = time.Duration(float64(d) * (0.75 + 0.5*rnd))
	return min(d, r.MaxBackoff)
}

// timeoutError is the cause of a try's ctx ending on Retry.Timeout, so that
// a sink's error can say "try timed out after 1m0s" rather than
// "context deadline exceeded".
type timeoutError struct{ d time.Duration }

func (e timeoutError) Error() string { return fmt.Sprintf("try timed out after %v", e.d) }
