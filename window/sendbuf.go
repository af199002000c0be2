package window

// minRing is the first allocation of a ring buffer.
const minRing = 4096

// SendBuffer holds the bytes an application wrote that the peer has not
// acknowledged yet: first the bytes in flight, then the unsent ones. It is a
// ring that grows by doubling up to Limit.
type SendBuffer struct {
	buf   []byte
	head  int // ring index of the first byte
	n     int // bytes held
	limit int
}

// NewSendBuffer returns an empty buffer that holds at most limit bytes.
func NewSendBuffer(limit int) SendBuffer { return SendBuffer{limit: limit} }

// Len is the number of bytes held.
func (b *SendBuffer) Len() int { return b.n }

// Free is how many more bytes Write accepts.
func (b *SendBuffer) Free() int { return max(0, b.limit-b.n) }

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
	b.buf, b.head = ensure(b.buf, b.head, b.n, b.n+k, b.limit)
	copyIn(b.buf, (b.head+b.n)%len(b.buf), p[:k])
	b.n += k
	return k
}

// Peek returns up to max bytes starting off bytes from the front, without
// copying. The slice stops at the ring's wrap point, so it may be shorter
// than asked even when more bytes are held; it is valid until the next
// Write or Consume.
func (b *SendBuffer) Peek(off, max int) []byte {
	if off >= b.n || max <= 0 {
		return nil
	}
	i := (b.head + off) % len(b.buf)
	end := min(i+min(max, b.n-off), len(b.buf))
	return b.buf[i:end]
}

// Consume drops n bytes from the front (they were acknowledged).
func (b *SendBuffer) Consume(n int) {
	n = min(n, b.n)
	if n <= 0 {
		return
	}
	b.n -= n
	if b.n == 0 {
		b.head = 0
		return
	}
	b.head = (b.head + n) % len(b.buf)
}

// ensure returns a ring (and its new head) able to hold need logical bytes
// from head, keeping the used logical bytes. It grows by doubling, capped
// at limit (but never below need).
func ensure(buf []byte, head, used, need, limit int) ([]byte, int) {
	if need <= len(buf) {
		return buf, head
	}
	size := max(len(buf), minRing)
	for size < need {
		size *= 2
	}
	size = max(min(size, limit), need)
	nb := make([]byte, size)
	if used > 0 {
		copyOut(nb[:used], buf, head)
	}
	return nb, 0
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
