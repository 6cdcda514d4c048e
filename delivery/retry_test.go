package delivery

import (
	"testing"
	"time"
)

func TestRetryDefaults(t *testing.T) {
	tests := []struct {
		in, want Retry
	}{
		{Retry{}, Retry{Retries: 5, Backoff: time.Second, MaxBackoff: 5 * time.Minute, Timeout: time.Minute}},
		{Retry{Retries: -1, Backoff: time.Millisecond, MaxBackoff: time.Second, Timeout: 3 * time.Second},
			Retry{Retries: 0, Backoff: time.Millisecond, MaxBackoff: time.Second, Timeout: 3 * time.Second}},
		{Retry{Retries: 2}, Retry{Retries: 2, Backoff: time.Second, MaxBackoff: 5 * time.Minute, Timeout: time.Minute}},
	}
	for _, tt := range tests {
		if got := tt.in.withDefaults(); got != tt.want {
			t.Errorf("%+v.withDefaults() = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	r := Retry{Backoff: time.Second, MaxBackoff: 10 * time.Second}.withDefaults()
	tests := []struct {
		n        int
		rnd      float64
		min, max time.Duration
	}{
		{1, 0.5, time.Second, time.Second}, // the middle of the jitter: no change
		{2, 0.5, 2 * time.Second, 2 * time.Second},
		{3, 0.5, 4 * time.Second, 4 * time.Second},
		{4, 0.5, 8 * time.Second, 8 * time.Second},
		{5, 0.5, 10 * time.Second, 10 * time.Second}, // capped
		{1000, 0.5, 10 * time.Second, 10 * time.Second},
		{1, 0, 750 * time.Millisecond, 750 * time.Millisecond}, // -25%
		{3, 0.9999, 4990 * time.Millisecond, 5 * time.Second},  // +25%
		{5, 0, 7500 * time.Millisecond, 7500 * time.Millisecond},
		{5, 0.9999, 10 * time.Second, 10 * time.Second}, // never above MaxBackoff
	}
	for _, tt := range tests {
		if got := r.delay(tt.n, tt.rnd); got < tt.min || got > tt.max {
			t.Errorf("delay(%d, %v) = %v, want %v to %v", tt.n, tt.rnd, got, tt.min, tt.max)
		}
	}
}
