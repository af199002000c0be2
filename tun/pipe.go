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
// cut from one block. A super-segment bigger than a slot borrows a big
// buffer from the queue's spares for as long as it is queued, so the
// queue holds at most as many big buffers as super-segments were ever
// queued at once, and a steady flow allocates none.
type queue struct {
	mu     sync.Mutex
	cond   sync.Cond
	mtu    int
	block  []byte // the slots' own buffers
	slots  [][]byte
	offs   []Offload
	spare  [][]byte // big buffers not in a slot
	head   int
	n      int
	closed *atomic.Bool
	drops  atomic.Uint64
}

func newQueue(mtu int, closed *atomic.Bool) *queue {
	q := &queue{mtu: mtu, block: make([]byte, pipeQueueLen*mtu), slots: make([][]byte, pipeQueueLen),
		offs: make([]Offload, pipeQueueLen), closed: closed}
	for i := range q.slots {
		q.slots[i] = q.ownSlot(i)
	}
	q.cond.L = &q.mu
	return q
}

// ownSlot is slot i's own buffer, of one MTU.
func (q *queue) ownSlot(i int) []byte { return q.block[i*q.mtu : i*q.mtu : (i+1)*q.mtu] }

// slotFor makes slot i hold n bytes, with a big buffer if it must.
func (q *queue) slotFor(i, n int) []byte {
	if n > cap(q.slots[i]) {
		var big []byte
		if k := len(q.spare); k > 0 {
			big, q.spare = q.spare[k-1], q.spare[:k-1]
		} else {
			big = make([]byte, MaxOffloadSize)
		}
		q.slots[i] = big
	}
	q.slots[i] = q.slots[i][:n]
	return q.slots[i]
}

// release gives slot i's big buffer, if it has one, back to the spares.
func (q *queue) release(i int) {
	if cap(q.slots[i]) > q.mtu {
		q.spare = append(q.spare, q.slots[i][:0])
		q.slots[i] = q.ownSlot(i)
	}
}

// PipeEnd is one end of an in-memory link made by Pipe or PipeOffload.
type PipeEnd struct {
	mtu     int
	offload bool
	in      *queue // packets for this end to Read
	out     *queue // packets this end Writes
	closed  *atomic.Bool
	peer    *PipeEnd
	more    []*PipeEnd // queues 1… of a PipeMultiqueue end
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

// PipeMultiqueue is a pipe of n queues, each a link of its own (as made
// by Pipe, or PipeOffload if offload): a packet written to queue i at one
// end is read from queue i at the other, so a stack that writes each flow
// to one queue finds the flow's packets on the same queue of its own end,
// as the TUN driver's flow steering does for a multi-queue TUN. Both ends
// are Multiqueues; Read and Write on an end are those of its queue 0.
// Closing either end closes every queue of both.
func PipeMultiqueue(mtu, n int, offload bool) (Multiqueue, Multiqueue) {
	a, b := newPipe(mtu, offload)
	for range max(n, 1) - 1 {
		qa, qb := newPipe(mtu, offload)
		qa.closed, qb.closed = a.closed, a.closed
		qa.in.closed, qa.out.closed = a.closed, a.closed
		a.more, b.more = append(a.more, qa), append(b.more, qb)
	}
	return a, b
}

// Queues implements Multiqueue: 1 but for an end of PipeMultiqueue.
func (p *PipeEnd) Queues() int { return 1 + len(p.more) }

// Queue implements Multiqueue.
func (p *PipeEnd) Queue(i int) Offloader {
	if i == 0 {
		return p
	}
	return p.more[i-1]
}

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
	q.release(q.head)
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
	s := q.slotFor(i, len(head)+len(payload))
	copy(s[copy(s, head):], payload)
	q.offs[i] = o
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
	for _, e := range append([]*PipeEnd{p}, p.more...) {
		for _, q := range []*queue{e.in, e.out} {
			q.mu.Lock()
			q.cond.Broadcast()
			q.mu.Unlock()
		}
	}
	return nil
}

// Drops is how many packets written at this end (on any of its queues)
// were dropped because the other end's queue was full.
func (p *PipeEnd) Drops() uint64 {
	n := p.out.drops.Load()
	for _, q := range p.more {
		n += q.out.drops.Load()
	}
	return n
}
