package window

import "sync/atomic"

// Memory is a budget for the buffer memory of many connections, shared by
// all of a stack's rings, with the pressure behaviour of Linux's tcp_mem:
//
//   - Normal, below three quarters of the limit: buffers grow as their
//     connections need (autotuning, out-of-order data, large writes).
//   - Pressure, from three quarters of the limit until usage falls back
//     below half: nothing grows any more; receive windows shrink toward
//     the initial buffer size as data arrives, and writes wait for room
//     in the send ring they already have.
//   - Exhausted, at the limit: receive windows offer only the ring space
//     already allocated; out-of-order data that would need more is
//     dropped (the sender resends it).
//
// Every ring may always allocate its first MinRing bytes, so each
// connection can make progress and no write waits for another
// connection's memory: the budget bounds everything beyond that floor.
// Allocations are charged as they happen and returned when a ring is
// released (an idle connection's empty rings are), so Used is what the
// rings really hold.
//
// A Memory is safe for concurrent use; a nil *Memory is an unlimited
// budget that counts nothing.
type Memory struct {
	limit    int64
	used     atomic.Int64
	pressure atomic.Bool   // in pressure (sticky until below half)
	entered  atomic.Uint64 // times pressure began
	refused  atomic.Uint64 // growths refused for pressure or exhaustion
}

// MinRing is the ring allocation every buffer may always make.
const MinRing = minRing

// Level is how close a Memory is to its limit.
type Level uint8

// The levels of a Memory.
const (
	Normal Level = iota
	Pressure
	Exhausted
)

// NewMemory returns a budget of limit bytes.
func NewMemory(limit int64) *Memory { return &Memory{limit: limit} }

// Limit is the budget in bytes (0 for a nil Memory).
func (m *Memory) Limit() int64 {
	if m == nil {
		return 0
	}
	return m.limit
}

// Used is the ring memory allocated now.
func (m *Memory) Used() int64 {
	if m == nil {
		return 0
	}
	return m.used.Load()
}

// Level reports the pressure the budget is under.
func (m *Memory) Level() Level {
	if m == nil {
		return Normal
	}
	used := m.used.Load()
	switch {
	case used >= m.limit:
		m.enter()
		return Exhausted
	case used >= m.limit/4*3:
		m.enter()
		return Pressure
	case used < m.limit/2:
		m.pressure.Store(false)
		return Normal
	case m.pressure.Load():
		return Pressure // hysteresis: stay until below half
	}
	return Normal
}

func (m *Memory) enter() {
	if !m.pressure.Load() && !m.pressure.Swap(true) {
		m.entered.Add(1)
	}
}

// constrained reports whether buffers may not grow now.
func (m *Memory) constrained() bool { return m.Level() != Normal }

// ringMax is the largest a ring of cur bytes may grow to now. promised
// is set for received in-order data the window already let the peer
// send: it may still grow under pressure (within the limit), where
// nothing else may. At the limit nothing grows; the MinRing floor always
// may be allocated.
func (m *Memory) ringMax(cur int, promised bool) int {
	if m == nil {
		return int(^uint(0) >> 1)
	}
	headroom := int(max(0, m.limit-m.used.Load()))
	switch m.Level() {
	case Exhausted:
		headroom = 0
	case Pressure:
		if !promised {
			headroom = 0
		}
	}
	return max(cur+headroom, minRing)
}

// PressureEvents is how many times the budget went under pressure.
func (m *Memory) PressureEvents() uint64 {
	if m == nil {
		return 0
	}
	return m.entered.Load()
}

// Refused is how many times a ring was kept from growing by the budget.
func (m *Memory) Refused() uint64 {
	if m == nil {
		return 0
	}
	return m.refused.Load()
}

func (m *Memory) charge(n int) {
	if m != nil && n != 0 {
		m.used.Add(int64(n))
	}
}

func (m *Memory) refuse() {
	if m != nil {
		m.refused.Add(1)
	}
}
