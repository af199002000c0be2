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
