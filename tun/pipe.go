package tun

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// pipeQueueLen is how many packets a Pipe direction buffers, like a real
// link's transmit queue. A full queue drops.
const pipeQueueLen = 1024

// queue is one direction of a Pipe: a ring of preallocated packet slots.
type queue struct {
	mu     sync.Mutex
	cond   sync.Cond
	slots  [][]byte
	lens   []int
	head   int
	n      int
	closed *atomic.Bool
	drops  atomic.Uint64
}

func newQueue(mtu int, closed *atomic.Bool) *queue {
	q := &queue{slots: make([][]byte, pipeQueueLen), lens: make([]int, pipeQueueLen), closed: closed}
	for i := range q.slots {
		q.slots[i] = make([]byte, mtu)
	}
	q.cond.L = &q.mu
	return q
}

// PipeEnd is one end of an in-memory link made by Pipe.
type PipeEnd struct {
	mtu    int
	in     *queue // packets for this end to Read
	out    *queue // packets this end Writes
	closed *atomic.Bool
	peer   *PipeEnd
}

// Pipe returns the two ends of an in-memory link: a packet written to one
// end is read from the other, in order. Each direction queues up to 1024
// packets and drops beyond that (Write still succeeds, as on a real link;
// Drops counts them). A Read into a buffer shorter than the packet
// truncates it. Closing either end closes both.
func Pipe(mtu int) (Device, Device) {
	closed := new(atomic.Bool)
	ab, ba := newQueue(mtu, closed), newQueue(mtu, closed)
	a := &PipeEnd{mtu: mtu, in: ba, out: ab, closed: closed}
	b := &PipeEnd{mtu: mtu, in: ab, out: ba, closed: closed}
	a.peer, b.peer = b, a
	return a, b
}

// Read implements Device.
func (p *PipeEnd) Read(b []byte) (int, error) {
	q := p.in
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n == 0 {
		if p.closed.Load() {
			return 0, fmt.Errorf("tun: pipe: %w", net.ErrClosed)
		}
		q.cond.Wait()
	}
	n := copy(b, q.slots[q.head][:q.lens[q.head]])
	q.head = (q.head + 1) % len(q.slots)
	q.n--
	return n, nil
}

// Write implements Device.
func (p *PipeEnd) Write(b []byte) (int, error) {
	if len(b) > p.mtu {
		return 0, ErrTooBig
	}
	if p.closed.Load() {
		return 0, fmt.Errorf("tun: pipe: %w", net.ErrClosed)
	}
	q := p.out
	q.mu.Lock()
	if q.n == len(q.slots) {
		q.mu.Unlock()
		q.drops.Add(1)
		return len(b), nil
	}
	i := (q.head + q.n) % len(q.slots)
	q.lens[i] = copy(q.slots[i], b)
	q.n++
	q.mu.Unlock()
	q.cond.Signal()
	return len(b), nil
}

// MTU implements Device.
func (p *PipeEnd) MTU() int { return p.mtu }

// Close implements Device: both ends stop, pending Reads return an error
// wrapping net.ErrClosed.
func (p *PipeEnd) Close() error {
	p.closed.Store(true)
	for _, q := range []*queue{p.in, p.out} {
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
	}
	return nil
}

// Drops is how many packets written at this end were dropped because the
// other end's queue was full.
func (p *PipeEnd) Drops() uint64 { return p.out.drops.Load() }
