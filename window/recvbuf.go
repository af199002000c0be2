package window

import "sync"

// maxSpans bounds how many separate out-of-order ranges are remembered. A
// segment that would need one more is dropped; the sender retransmits it.
const maxSpans = 32

// oooGrowFloor is how far the ring may always grow to store out-of-order
// data (beyond it, only in proportion to the data held: see Write).
const oooGrowFloor = 64 << 10

// span is a range of out-of-order bytes, as absolute stream positions.
type span struct{ start, end int64 }

// RecvBuffer holds received bytes the application has not read yet, and
// out-of-order bytes waiting for the gap before them to fill. Its free space
// is the receive window (RFC 9293 §3.8.6). Out-of-order data is stored in
// place, at its final position in the ring, so filling a gap costs no copy.
// The ring comes from the shared pools when bytes arrive and goes back as
// soon as nothing is held (ringpool.go); so does the array of out-of-order
// ranges.
type RecvBuffer struct {
	buf   []byte // ring.b, or nil while nothing is held
	ring  *ring
	head  int   // ring index of the next byte to read
	base  int64 // stream position of head
	n     int   // contiguous readable bytes
	limit int
	spans []span          // out-of-order ranges beyond base+n, sorted, disjoint
	arr   *[maxSpans]span // spans' array, from spanPool while any are held
	mem   *Memory         // the budget the ring is charged to (nil: none)
	sizer ringSizer
	// Refused counts segments dropped (wholly or in part) because storing
	// them would have grown the ring too far: out-of-order data landing
	// far beyond what is held, or the memory budget at its limit.
	Refused uint64
}

// NewRecvBuffer returns an empty buffer holding at most limit bytes.
func NewRecvBuffer(limit int) RecvBuffer { return RecvBuffer{limit: limit} }

// Len is the number of bytes ready to read.
func (b *RecvBuffer) Len() int { return b.n }

// Limit is the most bytes the buffer holds.
func (b *RecvBuffer) Limit() int { return b.limit }

// SetLimit changes the buffer size. Shrinking below the data held keeps it.
func (b *RecvBuffer) SetLimit(n int) { b.limit = n }

// SetMemory charges the ring to m from now on.
func (b *RecvBuffer) SetMemory(m *Memory) { b.mem = m }

// Cap is the ring memory allocated now.
func (b *RecvBuffer) Cap() int { return len(b.buf) }

// Release gives the ring back if nothing is held, readable or out of
// order, and reports whether it did. Reading the last byte does it.
func (b *RecvBuffer) Release() bool {
	if b.n != 0 || len(b.spans) != 0 || b.buf == nil {
		return false
	}
	b.mem.charge(-len(b.buf))
	b.sizer.released(len(b.buf))
	putRing(b.ring)
	b.buf, b.ring, b.head = nil, nil, 0
	return true
}

// Reset drops everything held, readable or not, and frees the ring.
func (b *RecvBuffer) Reset() {
	b.base += int64(b.n)
	b.n = 0
	b.setSpans(nil)
	b.Release()
}

// setSpans sets the out-of-order ranges to s (a slice of b.arr, or
// nil), giving the array back when none are left.
func (b *RecvBuffer) setSpans(s []span) {
	b.spans = s
	if len(s) == 0 && b.arr != nil {
		spanPool.Put(b.arr)
		b.spans, b.arr = nil, nil
	}
}

// spanPool holds the arrays of out-of-order ranges: only a connection
// receiving out of order holds one.
var spanPool = sync.Pool{New: func() any { return new([maxSpans]span) }}

// Window is the free space: how many bytes past the readable ones the
// buffer can accept.
func (b *RecvBuffer) Window() int { return max(0, b.limit-b.n) }

// HasOutOfOrder reports whether out-of-order bytes are waiting.
func (b *RecvBuffer) HasOutOfOrder() bool { return len(b.spans) > 0 }

// OutOfOrder calls f for each waiting out-of-order range, as offsets from
// the end of the readable bytes (so 0 would be the next in-order byte).
func (b *RecvBuffer) OutOfOrder(f func(start, end int)) {
	next := b.base + int64(b.n)
	for _, s := range b.spans {
		f(int(s.start-next), int(s.end-next))
	}
}

// Write stores p at off bytes past the end of the readable data (off 0 is
// the next expected byte). Bytes beyond the window are cut off. It returns
// how many bytes became readable, which may exceed len(p) when p fills a
// gap before stored out-of-order data.
func (b *RecvBuffer) Write(off int, p []byte) int {
	if off < 0 {
		if -off >= len(p) {
			return 0
		}
		p, off = p[-off:], 0
	}
	start := b.n + off
	end := min(start+len(p), b.limit)
	if start >= end {
		return 0
	}
	ringMax := b.limit
	if end > len(b.buf) {
		// Growing the ring: the memory budget decides how far (in-order
		// data, which the window promised, may grow it under pressure;
		// nothing may at the limit). Out-of-order data is stored in
		// place, so where it lands decides how big the ring must be: one
		// byte at the far edge of a 6 MiB window would take 6 MiB. It
		// grows the ring only as far as the data actually held justifies
		// (a real sender's segments beyond a loss arrive densely), or as
		// far as the previous ring had grown: a loss right after the
		// reader emptied the buffer (and its ring went back) must not
		// find the data beyond the hole refused. What does not fit is
		// dropped; the sender resends it.
		ringMax = min(ringMax, b.mem.ringMax(len(b.buf), off == 0))
		if off > 0 {
			ringMax = min(ringMax, max(4*(b.held()+end-start), oooGrowFloor, 2*len(b.buf), b.sizer.last))
		}
		if end > ringMax {
			b.Refused++
			if b.mem.constrained() {
				b.mem.refuse()
			}
			end = max(len(b.buf), ringMax)
			if start >= end {
				return 0
			}
		}
	}
	p = p[:end-start]
	extent := b.n
	if k := len(b.spans); k > 0 {
		extent = int(b.spans[k-1].end - b.base)
	}
	b.ring, b.head = ensure(b.ring, b.head, extent, end, ringMax, b.sizer.hint, b.mem)
	b.buf = b.ring.b
	copyIn(b.buf, (b.head+start)%len(b.buf), p)
	b.sizer.held(max(extent, end))

	if off > 0 {
		b.addSpan(span{b.base + int64(start), b.base + int64(end)})
		return 0
	}
	before := b.n
	b.n = end
	// Absorb out-of-order ranges the new bytes reach.
	next := b.base + int64(b.n)
	i := 0
	for ; i < len(b.spans) && b.spans[i].start <= next; i++ {
		if b.spans[i].end > next {
			next = b.spans[i].end
		}
	}
	if i > 0 {
		b.setSpans(b.spans[:copy(b.spans, b.spans[i:])])
		b.n = int(next - b.base)
	}
	return b.n - before
}

// held is the number of bytes stored, readable or out of order.
func (b *RecvBuffer) held() int {
	n := b.n
	for _, s := range b.spans {
		n += int(s.end - s.start)
	}
	return n
}

// addSpan records s, merging it with ranges it overlaps or touches.
func (b *RecvBuffer) addSpan(s span) {
	if b.arr == nil {
		b.arr = spanPool.Get().(*[maxSpans]span)
		b.spans = b.arr[:0]
	}
	// Find the first range that ends at or after s.start.
	i := 0
	for i < len(b.spans) && b.spans[i].end < s.start {
		i++
	}
	j := i
	for j < len(b.spans) && b.spans[j].start <= s.end {
		s.start = min(s.start, b.spans[j].start)
		s.end = max(s.end, b.spans[j].end)
		j++
	}
	if i == j && len(b.spans) == maxSpans {
		return // no room to remember another gap; the data will be resent
	}
	// Replace spans[i:j] with s.
	if j == i {
		b.spans = append(b.spans, span{})
		copy(b.spans[i+1:], b.spans[i:])
	} else if j > i+1 {
		b.spans = append(b.spans[:i+1], b.spans[j:]...)
	}
	b.spans[i] = s
}

// Discard drops up to n readable bytes without copying them and returns
// how many.
func (b *RecvBuffer) Discard(n int) int {
	k := min(n, b.n)
	b.consume(k)
	return k
}

// Read copies readable bytes into p and returns how many.
func (b *RecvBuffer) Read(p []byte) int {
	k := min(len(p), b.n)
	if k > 0 {
		copyOut(p[:k], b.buf, b.head)
		b.consume(k)
	}
	return k
}

// Peek copies readable bytes into p without consuming them.
func (b *RecvBuffer) Peek(p []byte) int {
	k := min(len(p), b.n)
	if k > 0 {
		copyOut(p[:k], b.buf, b.head)
	}
	return k
}

// consume removes k readable bytes from the front of the ring; the ring
// goes back to its pool when nothing is left.
func (b *RecvBuffer) consume(k int) {
	if k == 0 {
		return
	}
	b.head = (b.head + k) % len(b.buf)
	b.base += int64(k)
	b.n -= k
	if b.n == 0 && len(b.spans) == 0 {
		b.Release()
	}
}
