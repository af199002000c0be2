package stack

import (
	"sort"
	"sync"
	"time"
)

// Clock is where the stack gets its time and its timers. The default is
// the monotonic wall clock; tests pass a ManualClock so retransmission,
// persist and 2MSL timers run in virtual time, minutes in microseconds.
// (Deadlines set with SetDeadline stay on the wall clock: they are the
// application's time, not the protocol's.)
type Clock interface {
	// Now is the time since an arbitrary fixed origin.
	Now() time.Duration
	// AfterFunc calls f in its own goroutine once d has passed, like
	// time.AfterFunc.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a stopped-and-restarted timer, like *time.Timer.
type Timer interface {
	Reset(d time.Duration) bool
	Stop() bool
}

// wallClock is the default Clock.
type wallClock struct{ start time.Time }

// Now implements Clock.
func (w wallClock) Now() time.Duration { return time.Since(w.start) }

// AfterFunc implements Clock.
func (w wallClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// ManualClock is a Clock that moves only when Advance is called: the
// timers due by then fire, in order, on the caller's goroutine.
type ManualClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*manualTimer
}

// NewManualClock returns a ManualClock at time 0.
func NewManualClock() *ManualClock { return &ManualClock{} }

type manualTimer struct {
	c     *ManualClock
	f     func()
	at    time.Duration
	armed bool
}

// Now implements Clock.
func (m *ManualClock) Now() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// AfterFunc implements Clock.
func (m *ManualClock) AfterFunc(d time.Duration, f func()) Timer {
	t := &manualTimer{c: m, f: f}
	t.Reset(d)
	return t
}

// Reset implements Timer.
func (t *manualTimer) Reset(d time.Duration) bool {
	m := t.c
	m.mu.Lock()
	defer m.mu.Unlock()
	was := t.armed
	if !was {
		m.timers = append(m.timers, t)
	}
	t.at, t.armed = m.now+max(d, 0), true
	return was
}

// Stop implements Timer.
func (t *manualTimer) Stop() bool {
	m := t.c
	m.mu.Lock()
	defer m.mu.Unlock()
	was := t.armed
	t.armed = false
	return was
}

// NextTimer returns when the earliest armed timer fires; ok is false if
// none is armed. A driver that must look at the world between timers
// advances to each in turn.
func (m *ManualClock) NextTimer() (at time.Duration, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.timers {
		if t.armed && (!ok || t.at < at) {
			at, ok = t.at, true
		}
	}
	return at, ok
}

// Advance moves the clock forward by d, firing every timer that falls due
// on the way, earliest first, each at its own time.
func (m *ManualClock) Advance(d time.Duration) {
	m.mu.Lock()
	end := m.now + d
	m.mu.Unlock()
	for {
		m.mu.Lock()
		live := m.timers[:0]
		for _, t := range m.timers {
			if t.armed {
				live = append(live, t)
			}
		}
		clear(m.timers[len(live):]) // let stopped timers (and what they hold) go
		m.timers = live
		sort.Slice(live, func(i, j int) bool { return live[i].at < live[j].at })
		if len(live) == 0 || live[0].at > end {
			m.now = end
			m.mu.Unlock()
			return
		}
		t := live[0]
		m.now = max(m.now, t.at)
		t.armed = false
		m.mu.Unlock()
		t.f()
	}
}
