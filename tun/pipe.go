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

// queue is one direction of a Pipe: a ring of packet slots of one MTU,
// and a slot that has to hold a bigger super-segment grows to it once.
type queue struct {
	mu     sync.Mutex
	cond   sync.Cond
	slots  [][]byte
	offs   []Offload
	head   int
	n      int
	closed *atomic.Bool
	drops  atomic.Uint64
}

func newQueue(mtu int, closed *atomic.Bool) *queue {
	q := &queue{slots: make([][]byte, pipeQueueLen), offs: make([]Offload, pipeQueueLen), closed: closed}
	block := make([]byte, pipeQueueLen*mtu)
	for i := range q.slots {
		q.slots[i] = block[i*mtu : i*mtu : (i+1)*mtu]
	}
	q.cond.L = &q.mu
	return q
}

// PipeEnd is one end of an in-memory link made by Pipe or PipeOffload.
type PipeEnd struct {
	mtu     int
	offload bool
	in      *queue // packets for this end to Read
	out     *queue // packets this end Writes
	closed  *atomic.Bool
	peer    *PipeEnd
	rmu     sync.Mutex
	cut     cutter // Read's pieces of a super-segment
}

// Pipe returns the two ends of an in-memory link: a packet written to one
// end is read from the other, in order. Each direction queues up to 1024
// packets and drops beyond that (Write still succeeds, as on a real link;
// Drops counts them). A Read into a buffer shorter than the packet
// truncates it. Closing either end closes both.
func Pipe(mtu int) (Device, Device) { return newPipe(mtu, false) }

// PipeOffload is Pipe with offloads, as a TUN device opened with
// Config.Offload: both ends are Offloaders that carry TCP super-segments
// of up to MaxOffloadSize bytes and packets with partial checksums to the
// other end as they are, so two stacks joined by it exercise segmentation
// offload. Read and Write still carry ordinary packets (a super-segment is
// handed to Read in pieces).
func PipeOffload(mtu int) (Device, Device) { return newPipe(mtu, true) }

func newPipe(mtu int, offload bool) (*PipeEnd, *PipeEnd) {
	closed := new(atomic.Bool)
	ab, ba := newQueue(mtu, closed), newQueue(mtu, closed)
	a := &PipeEnd{mtu: mtu, offload: offload, in: ba, out: ab, closed: closed}
	b := &PipeEnd{mtu: mtu, offload: offload, in: ab, out: ba, closed: closed}
	a.peer, b.peer = b, a
	return a, b
}

// Read implements Device.
func (p *PipeEnd) Read(b []byte) (int, error) {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	for {
		if p.cut.pending() {
			return p.cut.next(b), nil
		}
		n, o, err := p.take(b, true)
		if err != nil || o.GSOSize == 0 {
			if err == nil && o.CsumPartial && !completeChecksum(b[:n], o) {
				p.in.drops.Add(1)
				continue
			}
			return n, err
		}
		if !p.cut.start(n, o, len(b)) {
			p.in.drops.Add(1)
		}
	}
}

// ReadOffload implements Offloader.
func (p *PipeEnd) ReadOffload(b []byte) (int, Offload, error) {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	return p.take(b, false)
}

// take dequeues the next packet into b, or, if it is a super-segment and
// cut is set, into the cutter's buffer.
func (p *PipeEnd) take(b []byte, cut bool) (int, Offload, error) {
	q := p.in
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n == 0 {
		if p.closed.Load() {
			return 0, Offload{}, fmt.Errorf("tun: pipe: %w", net.ErrClosed)
		}
		q.cond.Wait()
	}
	o := q.offs[q.head]
	if cut && o.GSOSize > 0 {
		b = p.cut.buffer()
	}
	n := copy(b, q.slots[q.head])
	q.head = (q.head + 1) % len(q.slots)
	q.n--
	return n, o, nil
}

// Write implements Device.
func (p *PipeEnd) Write(b []byte) (int, error) {
	if len(b) > p.mtu {
		return 0, ErrTooBig
	}
	if err := p.put(b, nil, Offload{}); err != nil {
		return 0, err
	}
	return len(b), nil
}

// WriteOffload implements Offloader. A pipe made by Pipe cuts a
// super-segment into ordinary packets.
func (p *PipeEnd) WriteOffload(head, payload []byte, o Offload) error {
	if !p.offload {
		return writeCut(p, head, payload, o, p.mtu)
	}
	if n := len(head) + len(payload); n > MaxOffloadSize || (o.GSOSize == 0 && n > p.mtu) ||
		(o.GSOSize > 0 && len(head)+int(o.GSOSize) > p.mtu) {
		return ErrTooBig
	}
	return p.put(head, payload, o)
}

// MaxOffload implements Offloader: MaxOffloadSize for a pipe made by
// PipeOffload, 0 for one made by Pipe.
func (p *PipeEnd) MaxOffload() int {
	if p.offload {
		return MaxOffloadSize
	}
	return 0
}

// put queues head+payload with o for the other end; a full queue drops.
func (p *PipeEnd) put(head, payload []byte, o Offload) error {
	if p.closed.Load() {
		return fmt.Errorf("tun: pipe: %w", net.ErrClosed)
	}
	q := p.out
	q.mu.Lock()
	if q.n == len(q.slots) {
		q.mu.Unlock()
		q.drops.Add(1)
		return nil
	}
	i := (q.head + q.n) % len(q.slots)
	n := len(head) + len(payload)
	if cap(q.slots[i]) < n {
		// A slot outgrowing the MTU takes the largest size at once, so
		// a transfer of super-segments of varying sizes grows each slot
		// once, not again for every larger one (steady state allocates
		// nothing).
		size := p.mtu
		if n > p.mtu {
			size = max(n, MaxOffloadSize)
		}
		q.slots[i] = make([]byte, size)
	}
	s := q.slots[i][:n]
	copy(s[copy(s, head):], payload)
	q.slots[i], q.offs[i] = s, o
	q.n++
	q.mu.Unlock()
	q.cond.Signal()
	return nil
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
