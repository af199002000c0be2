package stack

import (
	"sync"
	"time"
)

// deadline is a settable point in time that blocked calls wait on through
// a channel closed when it passes. Moving it while a call blocks takes
// effect at once, as net.Conn requires. A nil *deadline is none: it
// never passes (wait blocks forever, expired is false, stop does
// nothing).
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	ch     chan struct{}
	closed bool // ch is closed
	off    bool // the connection is closed: no timer is armed again
}

// set moves the deadline; the zero time removes it. It reports false,
// changing nothing, once shut.
func (d *deadline) set(t time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.off {
		return false
	}
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if d.closed {
		d.ch = make(chan struct{})
		d.closed = false
	}
	if t.IsZero() {
		return true
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.ch)
		d.closed = true
		return true
	}
	ch := d.ch
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.ch == ch && !d.closed {
			close(ch)
			d.closed = true
		}
	})
	return true
}

// stop stops the timer (the stack aborted the connection: every call
// now fails at once, so the deadline no longer matters). A later set
// arms it again.
func (d *deadline) stop() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// shut stops the timer for good: the connection was closed.
func (d *deadline) shut() {
	d.mu.Lock()
	d.off = true
	d.mu.Unlock()
	d.stop()
}

// expired reports whether the deadline has passed: a call must then fail
// at once, even if it could proceed (as with the kernel's sockets).
func (d *deadline) expired() bool {
	if d == nil {
		return false
	}
	select {
	case <-d.wait():
		return true
	default:
		return false
	}
}

// wait returns a channel closed once the deadline passes.
func (d *deadline) wait() <-chan struct{} {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

// notify wakes a waiter on a cap-1 channel without blocking.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
