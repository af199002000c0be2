package tcp

import (
	"bytes"
	"testing"
	"time"

	"github.com/tund-project/tund/window"
)

// TestIdleRingsReleased: the moment a transfer is read and acknowledged,
// the connections give their send and receive rings back (to the budget,
// which then reads zero) without waiting for a timer, and take them
// again when data comes.
func TestIdleRingsReleased(t *testing.T) {
	mem := window.NewMemory(1 << 30)
	p := newPair(t, Config{Memory: mem})
	data := pattern(2 << 20)
	if got := p.transfer(p.a, p.b, data[:1<<20]); !bytes.Equal(got, data[:1<<20]) {
		t.Fatalf("transfer: %d of %d bytes", len(got), 1<<20)
	}
	// Unacknowledged or unread bytes keep their ring.
	if n, _ := p.a.Write(data, p.now); n == 0 || p.a.snd.Cap() == 0 || mem.Used() == 0 {
		t.Fatalf("wrote %d bytes: send ring %d, budget used %d", n, p.a.snd.Cap(), mem.Used())
	}
	p.run()
	if p.b.rcv.Cap() == 0 {
		t.Fatalf("received bytes not yet read hold no ring")
	}
	for buf := make([]byte, 64<<10); p.a.snd.Len() > 0 || p.b.rcv.Len() > 0; p.advance(time.Millisecond) {
		for n := 1; n > 0; {
			n, _ = p.b.Read(buf, p.now)
		}
		p.run()
	}
	if c := p.a.snd.Cap() + p.a.rcv.Cap() + p.b.snd.Cap() + p.b.rcv.Cap(); c != 0 || mem.Used() != 0 {
		t.Fatalf("all read and acknowledged: rings hold %d bytes, budget used %d; want 0", c, mem.Used())
	}
	if at := p.a.NextTimer(); at != 0 {
		t.Errorf("an idle connection still has a timer at %v", at)
	}
	back := pattern(100 << 10)[3:]
	if got := p.transfer(p.b, p.a, back); !bytes.Equal(got, back) {
		t.Fatalf("transfer after release: %d of %d bytes", len(got), len(back))
	}
}

// TestMemoryBudgetBoundsBuffers: two connections share a small budget;
// their receivers do not read. Windows stop growing at the budget, the
// rings stay within it (plus each ring's MinRing floor), and once the
// readers read, every byte arrives intact.
func TestMemoryBudgetBoundsBuffers(t *testing.T) {
	const budget = 512 << 10
	mem := window.NewMemory(budget)
	cfg := Config{Memory: mem}
	p1, p2 := newPair(t, cfg), newPair(t, cfg)
	d1, d2 := pattern(2<<20), pattern(2 << 20)[7:]
	rest1, rest2 := d1, d2
	var got1, got2 []byte
	peak := int64(0)
	write := func(p *pair, rest []byte) []byte {
		n, err := p.a.Write(rest, p.now)
		if err != nil {
			t.Fatal(err)
		}
		return rest[n:]
	}
	for i := 0; i < 200; i++ {
		rest1, rest2 = write(p1, rest1), write(p2, rest2)
		p1.advance(10 * time.Millisecond)
		p2.advance(10 * time.Millisecond)
		peak = max(peak, mem.Used())
	}
	if mem.Level() == window.Normal {
		t.Fatalf("budget used %d of %d after the receivers stalled: never under pressure", mem.Used(), int64(budget))
	}
	if floor := int64(8 * window.MinRing); peak > budget+floor {
		t.Fatalf("rings took %d bytes at their peak, budget %d (+%d floors)", peak, budget, floor)
	}
	for i := 0; i < 5000 && (len(got1) < len(d1) || len(got2) < len(d2)); i++ {
		rest1, rest2 = write(p1, rest1), write(p2, rest2)
		got1 = readSome(t, p1.b, p1.now, got1)
		got2 = readSome(t, p2.b, p2.now, got2)
		p1.advance(10 * time.Millisecond)
		p2.advance(10 * time.Millisecond)
		peak = max(peak, mem.Used())
	}
	if !bytes.Equal(got1, d1) || !bytes.Equal(got2, d2) {
		t.Fatalf("received %d and %d bytes, want %d and %d intact", len(got1), len(got2), len(d1), len(d2))
	}
	if floor := int64(8 * window.MinRing); peak > budget+floor {
		t.Fatalf("rings took %d bytes at their peak, budget %d (+%d floors)", peak, budget, floor)
	}
	t.Logf("peak %d bytes of a %d budget; pressure began %d times; %d growths refused", peak, budget, mem.PressureEvents(), mem.Refused())
}
