package window

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestSendBufferWrapAndGrow(t *testing.T) {
	b := NewSendBuffer(10000)
	var model []byte
	r := rand.New(rand.NewPCG(1, 2))
	next := byte(0)
	for i := 0; i < 5000; i++ {
		// Write a random amount, consume a random amount, compare all views.
		p := make([]byte, r.IntN(3000))
		for j := range p {
			p[j] = next
			next++
		}
		n := b.Write(p)
		if n != min(len(p), 10000-len(model)) {
			t.Fatalf("step %d: wrote %d of %d with %d held", i, n, len(p), len(model))
		}
		model = append(model, p[:n]...)
		off := 0
		if len(model) > 0 {
			off = r.IntN(len(model))
		}
		var got []byte
		for o := off; o < len(model); {
			s := b.Peek(o, 1<<20)
			if len(s) == 0 {
				t.Fatalf("step %d: empty peek at %d of %d", i, o, len(model))
			}
			got = append(got, s...)
			o += len(s)
		}
		if !bytes.Equal(got, model[off:]) {
			t.Fatalf("step %d: peek mismatch", i)
		}
		c := r.IntN(len(model) + 1)
		b.Consume(c)
		model = model[c:]
		if b.Len() != len(model) {
			t.Fatalf("len %d, want %d", b.Len(), len(model))
		}
	}
}

// TestSendBufferWriteFunc: bytes written in place by WriteFunc read
// back like Write's, across the ring's wrap and growth; the room offered
// never passes the limit, nor fillMax; a fill that writes nothing into an empty
// buffer leaves no ring held.
func TestSendBufferWriteFunc(t *testing.T) {
	const limit = 300000
	b := NewSendBuffer(limit)
	if n := b.WriteFunc(func(room []byte) int { return 0 }); n != 0 || b.Cap() != 0 {
		t.Fatalf("an empty fill: %d bytes, ring of %d held; want 0 and none", n, b.Cap())
	}
	var model []byte
	r := rand.New(rand.NewPCG(3, 4))
	next := byte(0)
	for i := 0; i < 5000; i++ {
		want := r.IntN(100000)
		n := b.WriteFunc(func(room []byte) int {
			if len(room) == 0 || len(room) > fillMax || len(model)+len(room) > limit {
				t.Fatalf("step %d: room %d with %d held, limit %d", i, len(room), len(model), limit)
			}
			k := min(want, len(room))
			for j := range room[:k] {
				room[j] = next
				next++
			}
			return k
		})
		model = append(model, make([]byte, n)...)
		for j := range n {
			model[len(model)-n+j] = next - byte(n-j)
		}
		var got []byte
		for o := 0; o < len(model); {
			s := b.Peek(o, 1<<20)
			got = append(got, s...)
			o += len(s)
		}
		if !bytes.Equal(got, model) {
			t.Fatalf("step %d: the ring does not hold what fill wrote", i)
		}
		c := r.IntN(len(model) + 1)
		b.Consume(c)
		model = model[c:]
	}
}

func TestRecvBufferReassembly(t *testing.T) {
	for seed := uint64(0); seed < 50; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		const total = 200000
		stream := make([]byte, total)
		for i := range stream {
			stream[i] = byte(r.Uint32())
		}
		b := NewRecvBuffer(64 << 10)
		var got []byte
		next := 0 // stream position of the next in-order byte (rcvNxt)
		for next < total {
			// A random segment somewhere at or after next, maybe overlapping.
			start := next - r.IntN(500) + r.IntN(20000)
			start = max(0, min(start, total-1))
			l := 1 + r.IntN(3000)
			end := min(start+l, total)
			adv := b.Write(start-next, stream[start:end])
			next += adv
			if b.Len() != next-len(got) {
				t.Fatalf("seed %d: readable %d, want %d", seed, b.Len(), next-len(got))
			}
			if r.IntN(3) == 0 {
				p := make([]byte, r.IntN(40000))
				n := b.Read(p)
				got = append(got, p[:n]...)
			}
			if b.Window() != 64<<10-b.Len() {
				t.Fatalf("window %d with %d readable", b.Window(), b.Len())
			}
		}
		p := make([]byte, total)
		got = append(got, p[:b.Read(p)]...)
		if !bytes.Equal(got, stream) {
			t.Fatalf("seed %d: reassembled stream differs", seed)
		}
	}
}

func TestRecvBufferWindowBound(t *testing.T) {
	b := NewRecvBuffer(1000)
	if adv := b.Write(900, make([]byte, 500)); adv != 0 {
		t.Fatalf("out-of-order write advanced %d", adv)
	}
	// Only 100 bytes of it fit; filling the gap makes exactly 1000 readable.
	if adv := b.Write(0, make([]byte, 900)); adv != 1000 {
		t.Fatalf("advanced %d, want 1000", adv)
	}
	if b.Window() != 0 {
		t.Fatalf("window %d, want 0", b.Window())
	}
	if adv := b.Write(0, []byte{1}); adv != 0 {
		t.Fatalf("write into a zero window advanced %d", adv)
	}
}

func TestRecvBufferNoAllocSteadyState(t *testing.T) {
	b := NewRecvBuffer(1 << 20)
	seg := make([]byte, 1460)
	out := make([]byte, 1460)
	b.Write(0, seg)
	b.Read(out)
	allocs := testing.AllocsPerRun(1000, func() {
		b.Write(0, seg)
		b.Read(out)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per segment", allocs)
	}
}

func BenchmarkRecvBuffer(b *testing.B) {
	rb := NewRecvBuffer(1 << 20)
	seg := make([]byte, 1460)
	out := make([]byte, 64<<10)
	b.ReportAllocs()
	b.SetBytes(1460)
	for i := 0; i < b.N; i++ {
		rb.Write(0, seg)
		if rb.Len() > 32<<10 {
			rb.Read(out)
		}
	}
}

func TestRecvBufferDiscard(t *testing.T) {
	b := NewRecvBuffer(100)
	b.Write(0, []byte("hello world"))
	if n := b.Discard(6); n != 6 || b.Len() != 5 {
		t.Fatalf("Discard(6) = %d, Len %d", n, b.Len())
	}
	p := make([]byte, 10)
	if n := b.Read(p); string(p[:n]) != "world" {
		t.Fatalf("read %q after discard", p[:n])
	}
	if b.Discard(5) != 0 {
		t.Fatal("discarded from an empty buffer")
	}
}

// TestOutOfOrderAfterRingReturned: a loss just after the reader emptied
// the buffer, whose ring then went back, does not get the data beyond the
// hole refused: the new ring may grow for it as far as the old one had.
func TestOutOfOrderAfterRingReturned(t *testing.T) {
	b := NewRecvBuffer(6 << 20)
	if n := b.Write(0, make([]byte, 1<<20)); n != 1<<20 {
		t.Fatalf("wrote %d", n)
	}
	grown := b.Cap()
	b.Read(make([]byte, 1<<20))
	if b.Cap() != 0 {
		t.Fatalf("emptied buffer still holds a ring of %d bytes", b.Cap())
	}
	// The first 512 KiB are lost; 64 KiB super-segments arrive behind.
	for off := 512 << 10; off < 1<<20; off += 64 << 10 {
		b.Write(off, make([]byte, 64<<10))
	}
	if b.Refused != 0 || b.Cap() > grown {
		t.Fatalf("data beyond the hole: refused %d times, ring %d bytes (the old one had %d)", b.Refused, b.Cap(), grown)
	}
}

// TestOutOfOrderGrowthBounded: one out-of-order byte at the far edge of a
// large window must not allocate the whole window; out-of-order data that
// arrives densely (a real sender's segments beyond a loss) still grows
// the ring and is kept.
func TestOutOfOrderGrowthBounded(t *testing.T) {
	b := NewRecvBuffer(6 << 20)
	b.Write(6<<20-1, []byte{1})
	if b.Cap() > oooGrowFloor || b.HasOutOfOrder() || b.Refused != 1 {
		t.Fatalf("one byte at the window edge: ring %d bytes, out of order %v, refused %d; want at most %d, false, 1",
			b.Cap(), b.HasOutOfOrder(), b.Refused, oooGrowFloor)
	}
	// A loss of the first segment, then 2 MiB arriving in order behind it.
	const mss = 1460
	for off := mss; off < 2<<20; off += mss {
		b.Write(off, make([]byte, mss))
	}
	if b.Refused != 1 {
		t.Fatalf("dense out-of-order data refused %d times", b.Refused)
	}
	if got := b.Write(0, make([]byte, mss)); got < 2<<20-mss {
		t.Fatalf("filling the hole made %d bytes readable, want all %d", got, 2<<20)
	}
}

// TestMemoryBudget: rings charge what they allocate and give it back when
// released; under pressure nothing grows beyond the floor.
func TestMemoryBudget(t *testing.T) {
	m := NewMemory(128 << 10)
	s := NewSendBuffer(1 << 20)
	s.SetMemory(m)
	r := NewRecvBuffer(1 << 20)
	r.SetMemory(m)
	if n := s.Write(make([]byte, 40<<10)); n != 40<<10 {
		t.Fatalf("wrote %d under a fresh budget", n)
	}
	if m.Used() != int64(s.Cap()) || m.Level() != Normal {
		t.Fatalf("used %d for a ring of %d, level %d", m.Used(), s.Cap(), m.Level())
	}
	r.Write(0, make([]byte, 40<<10))
	if m.Level() != Exhausted {
		t.Fatalf("used %d of %d: level %d, want Exhausted", m.Used(), m.Limit(), m.Level())
	}
	// No growth: the send ring takes only what fits in its allocation.
	before := s.Cap()
	s.Write(make([]byte, 1<<20))
	if s.Cap() != before || s.Len() != before {
		t.Fatalf("send ring grew to %d (held %d) with the budget exhausted", s.Cap(), s.Len())
	}
	// Out-of-order data needing growth is refused; promised in-order data is not.
	r.Write(70<<10, make([]byte, 10<<10))
	if r.HasOutOfOrder() || m.Refused() == 0 {
		t.Fatalf("out-of-order data grew the ring under an exhausted budget")
	}
	// Emptied rings go back at once, and give their memory back.
	s.Consume(s.Len())
	r.Discard(r.Len())
	if s.Cap() != 0 || r.Cap() != 0 || s.Release() || r.Release() || m.Used() != 0 || m.Level() != Normal {
		t.Fatalf("after emptying: rings %d and %d, used %d, level %d", s.Cap(), r.Cap(), m.Used(), m.Level())
	}
	if m.PressureEvents() != 1 {
		t.Fatalf("pressure began %d times, want 1", m.PressureEvents())
	}
}
