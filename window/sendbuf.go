package window

// minRing is the first allocation of a ring buffer.
const minRing = 4096

// SendBuffer holds the bytes an application wrote that the peer has not
// acknowledged yet: first the bytes in flight, then the unsent ones. It is a
// ring that grows by doubling up to Limit, taken from the shared pools
// when bytes are written into an empty buffer and given back as soon as
// the last byte is acknowledged (ringpool.go).
type SendBuffer struct {
	buf   []byte // ring.b, or nil while empty
	ring  *ring
	head  int // ring index of the first byte
	n     int // bytes held
	limit int
	mem   *Memory // the budget the ring is charged to (nil: none)
	sizer ringSizer
}

// NewSendBuffer returns an empty buffer that holds at most limit bytes.
func NewSendBuffer(limit int) SendBuffer { return SendBuffer{limit: limit} }

// Len is the number of bytes held.
func (b *SendBuffer) Len() int { return b.n }

// SetMemory charges the ring to m from now on.
func (b *SendBuffer) SetMemory(m *Memory) { b.mem = m }

// Free is how many more bytes Write accepts: up to the limit, as far as
// the memory budget lets the ring grow (under pressure, up to the ring
// already allocated, at least MinRing).
func (b *SendBuffer) Free() int {
	lim := b.limit
	if lim > len(b.buf) {
		lim = min(lim, b.mem.ringMax(len(b.buf), false))
	}
	return max(0, lim-b.n)
}

// Cap is the ring memory allocated now.
func (b *SendBuffer) Cap() int { return len(b.buf) }

// Release gives the ring back if it is empty and reports whether it did;
// the next Write takes one anew. Consume does it when the last byte
// goes.
func (b *SendBuffer) Release() bool {
	if b.n != 0 || b.buf == nil {
		return false
	}
	b.mem.charge(-len(b.buf))
	b.sizer.released(len(b.buf))
	putRing(b.ring)
	b.buf, b.ring, b.head = nil, nil, 0
	return true
}

// Reset drops everything held and frees the ring (the connection is gone
// or will send nothing more).
func (b *SendBuffer) Reset() {
	b.n = 0
	b.Release()
}

// Limit is the most bytes the buffer holds.
func (b *SendBuffer) Limit() int { return b.limit }

// SetLimit changes the most bytes the buffer holds. Bytes already held are
// kept even if they exceed the new limit.
func (b *SendBuffer) SetLimit(n int) { b.limit = n }

// Write appends as much of p as fits and returns how much that was.
func (b *SendBuffer) Write(p []byte) int {
	k := min(len(p), b.Free())
	if k == 0 {
		return 0
	}
	b.ring, b.head = ensure(b.ring, b.head, b.n, b.n+k, min(b.limit, b.mem.ringMax(len(b.buf), false)), b.sizer.hint, b.mem)
	b.buf = b.ring.b
	copyIn(b.buf, (b.head+b.n)%len(b.buf), p[:k])
	b.n += k
	b.sizer.held(b.n)
	return k
}

// fillStep is how much room WriteFunc offers beyond the ring already
// allocated: a read of unknown size grows the ring one step at a time,
// by doubling, instead of to the limit at once. fillMax bounds one
// fill, whatever room there is: the caller holds the connection's lock
// through it, and input arriving meanwhile waits in the connection's
// backlog (a socket read of 1 MiB is about a hundred microseconds; 256
// KiB measured some 15% slower through -forward, within the noise).
const (
	fillStep = 64 << 10
	fillMax  = 1 << 20
)

// WriteFunc appends bytes written in place by fill, which is handed the
// free room at the tail of the ring (contiguous, so possibly less than
// Free when the room wraps) and returns how many bytes it put there.
// It saves a copy when the bytes come from a read: a socket's read can
// land straight in the ring. The room offered is what the ring already
// has, or fillStep more if it is full, never more than Free or fillMax.
// It returns fill's count.
func (b *SendBuffer) WriteFunc(fill func(room []byte) int) int {
	k := min(b.Free(), max(len(b.buf)-b.n, fillStep), fillMax)
	if k <= 0 {
		return 0
	}
	b.ring, b.head = ensure(b.ring, b.head, b.n, b.n+k, min(b.limit, b.mem.ringMax(len(b.buf), false)), b.sizer.hint, b.mem)
	b.buf = b.ring.b
	i := (b.head + b.n) % len(b.buf)
	got := fill(b.buf[i:min(i+k, len(b.buf))])
	b.n += got
	if b.n == 0 {
		b.Release() // nothing came: hold no ring for nothing
		return 0
	}
	b.sizer.held(b.n)
	return got
}

// Peek returns up to max bytes starting off bytes from the front, without
// copying. The slice stops at the ring's wrap point, so it may be shorter
// than asked even when more bytes are held; it is valid until the next
// Write or Consume (which may give the ring to another connection).
func (b *SendBuffer) Peek(off, max int) []byte {
	if off >= b.n || max <= 0 {
		return nil
	}
	i := (b.head + off) % len(b.buf)
	end := min(i+min(max, b.n-off), len(b.buf))
	return b.buf[i:end]
}

// Consume drops n bytes from the front (they were acknowledged). The
// last one gives the ring back.
func (b *SendBuffer) Consume(n int) {
	n = min(n, b.n)
	if n <= 0 {
		return
	}
	b.n -= n
	if b.n == 0 {
		b.Release()
		return
	}
	b.head = (b.head + n) % len(b.buf)
}

// ensure returns a ring (and its new head) able to hold need logical bytes
// from head, keeping the used logical bytes. It grows by doubling (a new
// ring starts at hint), capped at limit (but never below need), and
// charges the growth to mem; the ring it replaces goes back to its pool.
// The caller has checked that mem allows need.
func ensure(r *ring, head, used, need, limit, hint int, mem *Memory) (*ring, int) {
	var buf []byte
	if r != nil {
		buf = r.b
	}
	if need <= len(buf) {
		return r, head
	}
	size := max(len(buf), minRing)
	if buf == nil {
		size = max(size, hint)
	}
	for size < need {
		size *= 2
	}
	size = max(min(size, limit), need)
	mem.charge(size - len(buf))
	nr := getRing(size)
	if used > 0 {
		copyOut(nr.b[:used], buf, head)
	}
	putRing(r)
	return nr, 0
}

// copyIn copies p into the ring at index i, wrapping at the end.
func copyIn(ring []byte, i int, p []byte) {
	k := copy(ring[i:], p)
	copy(ring, p[k:])
}

// copyOut fills p from the ring starting at index i, wrapping at the end.
func copyOut(p, ring []byte, i int) {
	k := copy(p, ring[i:])
	copy(p[k:], ring)
}

// ringSizer remembers how much a buffer held at most while it last had a
// ring, so that the next ring is taken at that size: a transfer whose
// reader keeps emptying the buffer would otherwise start again from
// minRing each time and copy its bytes through every doubling. One quiet
// round (little held) brings the size back down. It also remembers how
// big the previous ring was: out-of-order data may grow a new ring that
// far (RecvBuffer.Write), as it could have grown the old one had it not
// gone back in between.
type ringSizer struct {
	peak int // most bytes held since the ring was taken
	hint int // what the previous ring held at most
	last int // the previous ring's size
}

func (s *ringSizer) held(n int) { s.peak = max(s.peak, n) }

func (s *ringSizer) released(size int) { s.hint, s.peak, s.last = s.peak, 0, size }
