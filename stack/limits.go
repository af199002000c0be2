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
	limitConns                 // MaxConnections
	limitOrphans               // MaxOrphans
	numLimits
)

var limitNames = [numLimits]string{
	limitTimeWait: "TIME-WAIT table full: closing without TIME-WAIT",
	limitConns:    "connection table full: refusing dials, dropping SYNs",
	limitOrphans:  "too many orphaned connections: resetting at close",
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
	defaultMaxTimeWait    = 262144 // Linux's tcp_max_tw_buckets on most machines
	defaultMinPathMTU     = 552    // Linux's min_pmtu
	defaultMaxConnections = 65536
	defaultMaxOrphans     = 16384
	defaultMemLimit       = 1 << 30
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
		{"MaxConnections", &c.MaxConnections, defaultMaxConnections},
		{"MaxOrphans", &c.MaxOrphans, defaultMaxOrphans},
	} {
		switch {
		case *l.v < 0:
			return fmt.Errorf("stack: %s %d is negative", l.name, *l.v)
		case *l.v == 0:
			*l.v = l.def
		}
	}
	switch {
	case c.MemLimit < 0:
		return fmt.Errorf("stack: MemLimit %d is negative", c.MemLimit)
	case c.MemLimit == 0:
		c.MemLimit = defaultMemLimit
	}
	if c.MinPathMTU < 68 {
		return fmt.Errorf("stack: MinPathMTU %d is below the IPv4 minimum 68", c.MinPathMTU)
	}
	return nil
}
