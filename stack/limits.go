package stack

import (
	"fmt"
	"sync/atomic"
)

// The stack's resource limits. Every one has a safe default, is a knob in
// Config, is counted in Stats when hit, and is logged once (at warn) the
// first time it is hit, so a flood does not flood the log too. What
// happens at each limit is in docs/ARCHITECTURE.md ("Limits").

// limit names a limit for limitLog.
type limit uint8

const (
	limitTimeWait limit = iota // MaxTimeWait
	numLimits
)

var limitNames = [numLimits]string{
	limitTimeWait: "TIME-WAIT table full: closing without TIME-WAIT",
}

// limitLog remembers which limits have been hit, to log each once.
type limitLog struct {
	hit [numLimits]atomic.Bool
}

// limitHit logs, the first time only, that limit l was reached.
func (s *Stack) limitHit(l limit, args ...any) {
	if s.limits.hit[l].Load() || s.limits.hit[l].Swap(true) {
		return
	}
	s.log.Warn("limit reached: "+limitNames[l]+" (logged once; see tund stats)", args...)
}

// Defaults of the limits.
const (
	defaultMaxTimeWait = 262144 // Linux's tcp_max_tw_buckets on most machines
	defaultMinPathMTU  = 552    // Linux's min_pmtu
)

// setLimitDefaults fills in the zero limits and rejects negative ones.
func (c *Config) setLimitDefaults() error {
	for _, l := range []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxTimeWait", &c.MaxTimeWait, defaultMaxTimeWait},
		{"MinPathMTU", &c.MinPathMTU, defaultMinPathMTU},
	} {
		switch {
		case *l.v < 0:
			return fmt.Errorf("stack: %s %d is negative", l.name, *l.v)
		case *l.v == 0:
			*l.v = l.def
		}
	}
	return nil
}
