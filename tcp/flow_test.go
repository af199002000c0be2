package tcp

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Flow control through the pair harness, on the virtual clock: Nagle,
// delayed ACKs, the persist timer, the window update rule, silly window
// avoidance on both sides, bounded reassembly and receive-buffer
// autotuning.

// tap calls f for every segment w carries, as it is sent, and drops none.
func tap(w *wire, f func(seg *Segment)) {
	w.drop = func(seg *Segment) bool { f(seg); return false }
}

// flowBuf is readSome's scratch buffer.
var flowBuf = make([]byte, 256<<10)

// readSome reads everything c has ready and appends it to got.
func readSome(t *testing.T, c *Conn, now time.Duration, got []byte) []byte {
	t.Helper()
	return readUpTo(t, c, now, got, -1)
}

// readUpTo reads at most limit bytes (all if limit < 0) from c.
func readUpTo(t *testing.T, c *Conn, now time.Duration, got []byte, limit int) []byte {
	t.Helper()
	for limit != 0 {
		buf := flowBuf
		if limit > 0 {
			buf = buf[:min(limit, len(buf))]
		}
		n, err := c.Read(buf, now)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if n == 0 {
			return got
		}
		got = append(got, buf[:n]...)
		if limit > 0 {
			limit -= n
		}
	}
	return got
}

// logTail is the last n lines of p's segment log.
func logTail(p *pair, n int) string {
	return strings.Join(p.log[max(0, len(p.log)-n):], "\n")
}

// payloadSegs counts the segments with data queued on w.
func payloadSegs(t *testing.T, w *wire) (n int, lens []int) {
	t.Helper()
	for _, b := range w.queue {
		var seg Segment
		if err := Parse(b, &seg); err != nil {
			t.Fatal(err)
		}
		if len(seg.Payload) > 0 {
			n++
			lens = append(lens, len(seg.Payload))
		}
	}
	return n, lens
}

// newWarmPair is newPair after one byte went from a to b and was read, so
// b has advertised its whole buffer (its SYN+ACK could offer only 64 KiB
// unscaled, and the first read would otherwise send a window update).
func newWarmPair(t *testing.T, cfg Config) *pair {
	p := newPair(t, cfg)
	p.a.Write([]byte{0}, p.now)
	p.run()
	readSome(t, p.b, p.now, nil)
	p.advance(time.Second)
	offered, free := p.b.rcvAdvEdge.Sub(p.b.rcvNxt), p.b.rcvWindow()
	if free-offered >= min(p.b.RcvBuf()/2, p.b.rcvMSS()) {
		t.Fatalf("warm-up: b offers %d of %d free\n%s", offered, free, p.dump())
	}
	return p
}

func TestNagle(t *testing.T) {
	t.Run("first small write with nothing in flight goes at once", func(t *testing.T) {
		p := newPair(t, Config{})
		p.a.Write([]byte("0123456789"), p.now)
		if n, lens := payloadSegs(t, p.aOut); n != 1 || lens[0] != 10 {
			t.Fatalf("after one 10-byte write with nothing in flight: %d data segments %v queued, want one of 10 bytes\n%s", n, lens, p.dump())
		}
	})

	t.Run("small writes are held while data is in flight", func(t *testing.T) {
		p := newPair(t, Config{})
		p.a.Write(pattern(10), p.now) // goes: nothing in flight
		for i := 0; i < 50; i++ {
			p.a.Write(pattern(10), p.now) // held: the first is unacknowledged
		}
		if n, lens := payloadSegs(t, p.aOut); n != 1 {
			t.Fatalf("51 small writes with the first unacknowledged sent %d segments %v, want 1 (Nagle)\n%s", n, lens, p.dump())
		}
		// The ACK of the first (delayed) releases the rest as one segment.
		p.run()
		p.advance(DefaultConfig().DelayedAck)
		if p.a.sndMax != p.a.sndBufSeq.Add(p.a.SendQueue()) {
			t.Fatalf("not everything was sent after the ACK\n%s", p.dump())
		}
		n := 0
		for _, l := range p.log {
			if strings.HasPrefix(l, "a> ") && !strings.Contains(l, " len=0") {
				n++
			}
		}
		if n != 2 {
			t.Fatalf("%d data segments in all, want 2 (10 bytes, then the 500 held)\n%s", n, p.dump())
		}
	})

	// A writer producing 10 bytes every millisecond for 100 ms.
	trickle := func(t *testing.T, p *pair) (segs int) {
		tap(p.aOut, func(seg *Segment) {
			if len(seg.Payload) > 0 {
				segs++
			}
		})
		data := pattern(1000)
		var got []byte
		for i := 0; i < 100; i++ {
			if n, err := p.a.Write(data[i*10:i*10+10], p.now); n != 10 || err != nil {
				t.Fatalf("write: %d, %v", n, err)
			}
			p.run()
			got = readSome(t, p.b, p.now, got)
			p.advance(time.Millisecond)
		}
		p.advance(time.Second)
		got = readSome(t, p.b, p.now, got)
		if !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes, want %d intact", len(got), len(data))
		}
		return segs
	}
	t.Run("many small writes go out as few segments", func(t *testing.T) {
		p := newWarmPair(t, Config{})
		// One segment per delayed ACK (40 ms) of the previous one, plus
		// the first: 0, 40, 80 ms and the rest.
		if segs := trickle(t, p); segs > 4 {
			t.Fatalf("100 10-byte writes, 1 ms apart, went out as %d segments; with Nagle at most 4 (one per round trip, which the 40 ms delayed ACK sets)\n%s", segs, p.dump())
		}
	})
	t.Run("SetNoDelay sends each write at once", func(t *testing.T) {
		p := newPair(t, Config{})
		p.a.SetNoDelay(true, p.now)
		if segs := trickle(t, p); segs != 100 {
			t.Fatalf("100 writes with NoDelay went out as %d segments, want 100", segs)
		}
	})
	t.Run("Config.NoDelay sends each write at once", func(t *testing.T) {
		p := newPair(t, Config{NoDelay: true})
		if segs := trickle(t, p); segs != 100 {
			t.Fatalf("100 writes with NoDelay went out as %d segments, want 100", segs)
		}
	})
	t.Run("SetNoDelay(true) flushes what Nagle holds", func(t *testing.T) {
		p := newPair(t, Config{})
		p.a.Write(pattern(10), p.now)
		p.a.Write(pattern(10), p.now)
		if n, _ := payloadSegs(t, p.aOut); n != 1 {
			t.Fatalf("%d segments before SetNoDelay, want 1", n)
		}
		p.a.SetNoDelay(true, p.now)
		if n, _ := payloadSegs(t, p.aOut); n != 2 {
			t.Fatalf("%d segments after SetNoDelay(true), want 2: the held write should go at once", n)
		}
	})
	t.Run("closing sends what Nagle holds, with the FIN", func(t *testing.T) {
		p := newPair(t, Config{})
		p.a.Write(pattern(10), p.now)
		p.a.Write(pattern(10), p.now)
		p.a.CloseWrite(p.now)
		seg := p.take(p.aOut)
		seg = p.take(p.aOut)
		if len(seg.Payload) != 10 || !seg.Flags.Has(FlagFIN) {
			t.Fatalf("after CloseWrite got %s, want the held 10 bytes with FIN", seg.String())
		}
	})
}

func TestDelayedAck(t *testing.T) {
	delack := DefaultConfig().DelayedAck
	if delack != 40*time.Millisecond {
		t.Fatalf("default DelayedAck %v, want 40ms", delack)
	}
	t.Run("one small segment is ACKed exactly at DelayedAck", func(t *testing.T) {
		p := newPair(t, Config{})
		var ackAt []time.Duration
		var acks []Seq
		tap(p.bOut, func(seg *Segment) { ackAt, acks = append(ackAt, p.now), append(acks, seg.Ack) })
		p.now = 5 * time.Second // any start
		t0 := p.now
		p.a.Write(pattern(100), p.now)
		p.run()
		if len(ackAt) != 0 {
			t.Fatalf("small segment ACKed at once\n%s", p.dump())
		}
		p.advance(delack - time.Millisecond)
		if len(ackAt) != 0 {
			t.Fatalf("ACK sent at %v, before the %v delay\n%s", ackAt[0]-t0, delack, p.dump())
		}
		p.advance(time.Millisecond)
		if len(ackAt) != 1 || ackAt[0] != t0+delack || acks[0] != p.a.sndMax {
			t.Fatalf("ACKs at %v (of %v), want one at %v acknowledging %d\n%s", ackAt, acks, t0+delack, uint32(p.a.sndMax), p.dump())
		}
	})
	t.Run("a configured DelayedAck is honoured", func(t *testing.T) {
		p := newPair(t, Config{DelayedAck: 200 * time.Millisecond})
		p.a.Write(pattern(100), p.now)
		p.run()
		p.advance(199 * time.Millisecond)
		if len(p.bOut.queue) != 0 || p.a.sndUna != p.a.sndNxt-100 {
			t.Fatalf("ACK before 200ms\n%s", p.dump())
		}
		p.advance(time.Millisecond)
		if p.a.sndUna != p.a.sndNxt {
			t.Fatalf("no ACK at 200ms\n%s", p.dump())
		}
	})
	t.Run("two full-sized segments are ACKed at once", func(t *testing.T) {
		p := newPair(t, Config{})
		mss := p.a.segMSS()
		p.a.Write(pattern(2*mss), p.now)
		s1, s2 := p.take(p.aOut), p.take(p.aOut)
		if len(s1.Payload) != mss || len(s2.Payload) != mss {
			t.Fatalf("segments of %d and %d bytes, want %d", len(s1.Payload), len(s2.Payload), mss)
		}
		p.b.Handle(&s1, p.now)
		if len(p.bOut.queue) != 0 {
			t.Fatalf("one full segment ACKed at once; may wait")
		}
		p.b.Handle(&s2, p.now)
		if len(p.bOut.queue) != 1 {
			t.Fatalf("second full segment: %d segments from b, want an immediate ACK", len(p.bOut.queue))
		}
		if ack := p.take(p.bOut); ack.Ack != s2.Seq.Add(mss) {
			t.Fatalf("ACK %d, want %d", uint32(ack.Ack), uint32(s2.Seq.Add(mss)))
		}
		if p.b.timers.armed(tDelAck) {
			t.Fatalf("delayed-ACK timer still armed after the ACK went")
		}
	})
	t.Run("an out-of-order segment gets an immediate duplicate ACK", func(t *testing.T) {
		p := newPair(t, Config{})
		mss := p.a.segMSS()
		p.a.Write(pattern(4*mss), p.now)
		s := []Segment{p.take(p.aOut), p.take(p.aOut), p.take(p.aOut), p.take(p.aOut)}
		p.b.Handle(&s[0], p.now)
		p.b.Handle(&s[1], p.now)
		first := p.take(p.bOut)
		p.b.Handle(&s[3], p.now) // s[2] missing
		if len(p.bOut.queue) != 1 {
			t.Fatalf("out-of-order segment: %d segments from b, want an immediate ACK\n%s", len(p.bOut.queue), p.dump())
		}
		dup := p.take(p.bOut)
		if dup.Ack != first.Ack || dup.Window != first.Window || len(dup.Payload) != 0 {
			t.Fatalf("ACK %s after %s: want a duplicate (same ack and window)", dup.String(), first.String())
		}
		p.b.Handle(&s[2], p.now) // fills the gap
		if len(p.bOut.queue) != 1 {
			t.Fatalf("gap filled: %d segments from b, want an immediate ACK", len(p.bOut.queue))
		}
		if ack := p.take(p.bOut); ack.Ack != s[3].Seq.Add(mss) {
			t.Fatalf("ACK %d after the gap filled, want %d", uint32(ack.Ack), uint32(s[3].Seq.Add(mss)))
		}
	})
	t.Run("DelayedAck < 0 ACKs every segment at once", func(t *testing.T) {
		p := newPair(t, Config{DelayedAck: -1, NoDelay: true})
		for i := 0; i < 5; i++ {
			p.a.Write(pattern(10+i), p.now)
			seg := p.take(p.aOut)
			p.b.Handle(&seg, p.now)
			if len(p.bOut.queue) != 1 {
				t.Fatalf("segment %d: %d segments from b, want an immediate ACK", i, len(p.bOut.queue))
			}
			ack := p.take(p.bOut)
			p.a.Handle(&ack, p.now)
			if ack.Ack != seg.Seq.Add(len(seg.Payload)) {
				t.Fatalf("ACK %d, want %d", uint32(ack.Ack), uint32(seg.Seq.Add(len(seg.Payload))))
			}
		}
	})
}

// fillWindow writes n bytes of pattern on p.a and runs until b's buffer
// (never read) is full and a sits on a zero window with nothing in
// flight. It returns the data and when a learned of the zero window.
func fillWindow(t *testing.T, p *pair, n int) (data []byte, closedAt time.Duration) {
	t.Helper()
	data = pattern(n)
	if w, err := p.a.Write(data, p.now); w != n || err != nil {
		t.Fatalf("write %d: %d, %v", n, w, err)
	}
	closedAt = -1
	prev := p.bOut.drop
	p.bOut.drop = func(seg *Segment) bool {
		if closedAt < 0 && seg.Window == 0 && seg.Ack == p.a.sndMax {
			closedAt = p.now
		}
		return prev != nil && prev(seg)
	}
	for i := 0; i < 1000 && closedAt < 0; i++ {
		p.advance(10 * time.Millisecond)
	}
	p.run()
	p.bOut.drop = prev
	if closedAt < 0 || p.a.sndWnd != 0 || p.a.sndUna != p.a.sndMax {
		t.Fatalf("window never closed: SndWnd %d, in flight %d\n%s", p.a.sndWnd, p.a.sndMax.Sub(p.a.sndUna), p.dump())
	}
	return data, closedAt
}

func TestPersist(t *testing.T) {
	cfg := DefaultConfig()
	isProbe := func(c *Conn, seg *Segment) bool {
		return len(seg.Payload) == 0 && seg.Flags == FlagACK && seg.Seq == c.sndUna.Add(-1)
	}

	t.Run("probes back off exponentially to MaxRTO; answered probes keep the connection", func(t *testing.T) {
		traced := 0
		p := newPair(t, Config{Trace: func(tr Transition, _ *Segment) {
			if tr.From == Established && tr.To == Established && tr.On == TimeoutPersist && tr.Action == "send window probe" {
				traced++
			}
		}})
		data, closedAt := fillWindow(t, p, 300<<10)
		rto := p.a.rto.Timeout()
		var probes []time.Duration
		answers := 0
		tap(p.aOut, func(seg *Segment) {
			if isProbe(p.a, seg) {
				probes = append(probes, p.now)
			}
		})
		tap(p.bOut, func(seg *Segment) {
			answers++
			if seg.Window != 0 {
				t.Errorf("b opened its window %d without reading", seg.Window)
			}
		})
		p.advance(10 * time.Minute)
		p.wantState(p.a, Established)
		p.wantState(p.b, Established)
		if p.a.Err() != nil {
			t.Fatalf("sender failed with %v while its probes were answered", p.a.Err())
		}
		if len(probes) < 10 {
			t.Fatalf("only %d probes in 10 minutes of zero window", len(probes))
		}
		if answers < len(probes) {
			t.Fatalf("%d probes but %d answers", len(probes), answers)
		}
		if traced != len(probes) {
			t.Errorf("%d probes, %d traced as persist-timeout loops", len(probes), traced)
		}
		prev, capped := closedAt, 0
		for i, at := range probes {
			want := min(rto<<i, cfg.MaxRTO)
			if at-prev != want {
				t.Fatalf("probe %d came %v after the previous event, want %v (RTO %v doubling, capped at %v); probes at %v (window closed at %v)",
					i, at-prev, want, rto, cfg.MaxRTO, probes, closedAt)
			}
			if want == cfg.MaxRTO {
				capped++
			}
			prev = at
		}
		t.Logf("window closed at %v, RTO %v, probes at %v", closedAt, rto, probes)
		if capped < 3 {
			t.Fatalf("only %d probe intervals reached MaxRTO", capped)
		}

		// The receiver reads: the window update restarts the transfer at
		// once, not at the next probe.
		p.aOut.drop, p.bOut.drop = nil, nil
		sent := p.a.sndMax
		got := readSome(t, p.b, p.now, nil)
		p.run()
		if !p.a.sndMax.GreaterThan(sent) {
			t.Fatalf("sender did not resume at once on the window update\n%s", p.dump())
		}
		for i := 0; i < 10000 && len(got) < len(data); i++ {
			p.advance(10 * time.Millisecond)
			got = readSome(t, p.b, p.now, got)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes, want %d intact", len(got), len(data))
		}
	})

	t.Run("a lost window update is recovered by the next probe", func(t *testing.T) {
		p := newPair(t, Config{})
		data, _ := fillWindow(t, p, 300<<10)
		p.advance(3 * time.Second) // a few probes: the interval is now several RTOs
		next := p.a.timers.at(tPersist)
		interval := next - p.now
		p.bOut.drop = func(seg *Segment) bool { return true }
		got := readSome(t, p.b, p.now, nil) // its window update is lost
		p.run()
		p.bOut.drop = nil
		sent := p.a.sndMax
		p.advance(next - p.now - time.Millisecond)
		if p.a.sndMax != sent {
			t.Fatalf("sender sent before the probe")
		}
		p.advance(time.Millisecond)
		if !p.a.sndMax.GreaterThan(sent) {
			t.Fatalf("the probe at %v (interval %v) did not restart the transfer\n%s", next, interval, p.dump())
		}
		for i := 0; i < 10000 && len(got) < len(data); i++ {
			p.advance(10 * time.Millisecond)
			got = readSome(t, p.b, p.now, got)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes, want %d intact", len(got), len(data))
		}
	})

	t.Run("with the receiver gone the sender fails with ETIMEDOUT after MaxRetries probes", func(t *testing.T) {
		p := newPair(t, Config{})
		fillWindow(t, p, 300<<10)
		p.advance(30 * time.Second) // answered probes first: they must not count
		probes := 0
		tap(p.aOut, func(seg *Segment) {
			if isProbe(p.a, seg) {
				probes++
			}
		})
		p.bOut.drop = func(seg *Segment) bool { return true }
		for i := 0; i < 1000 && p.a.State() != Closed; i++ {
			p.advance(10 * time.Second)
		}
		p.wantState(p.a, Closed)
		if !errors.Is(p.a.Err(), syscall.ETIMEDOUT) {
			t.Fatalf("sender failed with %v, want ETIMEDOUT", p.a.Err())
		}
		if probes != cfg.MaxRetries {
			t.Fatalf("failed after %d unanswered probes, want MaxRetries = %d", probes, cfg.MaxRetries)
		}
	})
}

// TestWindowUpdateRule: an old segment, reordered behind a newer one,
// carries a smaller window; RFC 9293's SND.WL1/SND.WL2 rule must keep the
// newer window.
func TestWindowUpdateRule(t *testing.T) {
	p := newPair(t, Config{})
	// Fill most of b's buffer so its window is visibly smaller, and a
	// read frees enough to be worth a window update of its own.
	const held = 100000
	p.a.Write(pattern(held), p.now)
	p.run()
	p.advance(time.Second)
	if p.b.RecvQueue() != held {
		t.Fatalf("b holds %d bytes, want %d", p.b.RecvQueue(), held)
	}
	// Older: b's data segment carrying the small window.
	p.b.Write(pattern(100), p.now)
	older := p.take(p.bOut)
	// Newer: b reads, and its window update carries a larger window and a
	// later sequence number (after the 100 bytes).
	readSome(t, p.b, p.now, nil)
	newer := p.take(p.bOut)
	if !newer.Seq.GreaterThan(older.Seq) || newer.Window <= older.Window {
		t.Fatalf("setup: older %s, newer %s: want the newer to have a later seq and a larger window", older.String(), newer.String())
	}
	shift := p.a.sndWScale
	p.a.Handle(&newer, p.now)
	if want := int(newer.Window) << shift; p.a.Info().SndWnd != want {
		t.Fatalf("SndWnd %d after the newer segment, want %d", p.a.Info().SndWnd, want)
	}
	p.a.Handle(&older, p.now)
	if want := int(newer.Window) << shift; p.a.Info().SndWnd != want {
		t.Fatalf("the older segment (seq %d, window %d) set SndWnd to %d after the newer (seq %d, window %d): want %d; SND.WL1 < SEG.SEQ fails for it",
			uint32(older.Seq), older.Window, p.a.Info().SndWnd, uint32(newer.Seq), newer.Window, want)
	}
	if p.a.RecvQueue() != 100 {
		t.Fatalf("the older segment's data was not taken: %d bytes ready", p.a.RecvQueue())
	}
}

// link carries segments between a pair's wires with a one-way delay on the
// virtual clock, in order, where p.run delivers at once: a path with a
// round-trip time.
type link struct {
	p     *pair
	delay time.Duration
	fly   []flying
}

type flying struct {
	at  time.Duration
	toB bool
	b   []byte
}

// collect puts what the connections sent since on the link.
func (l *link) collect() {
	for _, b := range l.p.aOut.queue {
		l.fly = append(l.fly, flying{l.p.now + l.delay, true, b})
	}
	for _, b := range l.p.bOut.queue {
		l.fly = append(l.fly, flying{l.p.now + l.delay, false, b})
	}
	l.p.aOut.queue, l.p.bOut.queue = nil, nil
}

// step moves the clock to the next arrival or timer, but not past until,
// and delivers and fires everything due then.
func (l *link) step(until time.Duration) {
	p := l.p
	l.collect()
	next := until
	if len(l.fly) > 0 && l.fly[0].at < next {
		next = l.fly[0].at
	}
	for _, c := range []*Conn{p.a, p.b} {
		if at := c.NextTimer(); at != 0 && at < next {
			next = at
		}
	}
	p.now = max(p.now, next)
	for len(l.fly) > 0 && l.fly[0].at <= p.now {
		f := l.fly[0]
		l.fly = l.fly[1:]
		var seg Segment
		if err := Parse(f.b, &seg); err != nil {
			p.t.Fatal(err)
		}
		if f.toB {
			p.b.Handle(&seg, p.now)
		} else {
			p.a.Handle(&seg, p.now)
		}
		l.collect() // answers leave now and arrive a delay later
	}
	p.a.Tick(p.now)
	p.b.Tick(p.now)
	l.collect()
}

// newLinkPair is newPair over a link with the given one-way delay, the
// handshake included (so both sides measure the real round trip).
func newLinkPair(t *testing.T, cfg Config, delay time.Duration) (*pair, *link) {
	t.Helper()
	p := &pair{t: t}
	p.aOut = &wire{name: "a>", log: &p.log, owner: &p.a, t: t}
	p.bOut = &wire{name: "b>", log: &p.log, owner: &p.b, t: t}
	p.a = NewActive(cfg, p.aOut, 40000, 80, 1000, p.now)
	syn := p.take(p.aOut)
	p.now += delay
	if OnListen(&syn) != ListenAccept {
		t.Fatalf("listener refused %v", syn.String())
	}
	p.b = NewPassive(cfg, p.bOut, &syn, 5000, p.now)
	l := &link{p: p, delay: delay}
	for i := 0; i < 100 && !(p.a.State() == Established && p.b.State() == Established); i++ {
		l.step(p.now + time.Second)
	}
	p.wantState(p.a, Established)
	p.wantState(p.b, Established)
	return p, l
}

// TestSenderRespectsShrinkingWindow: whatever the peer does to its
// window, the sender never has more outstanding than SND.UNA+SND.WND
// allows, nor sends beyond any right edge the peer offered.
func TestSenderRespectsShrinkingWindow(t *testing.T) {
	// check taps both wires: every segment a sends must end within the
	// window a holds when it sends (SND.UNA+SND.WND, from the last window
	// it accepted) and within the furthest edge b ever offered.
	check := func(t *testing.T, p *pair) {
		var bEdge Seq
		bEdgeSet := false
		tap(p.bOut, func(seg *Segment) {
			if seg.Flags.Has(FlagACK) && !seg.Flags.Has(FlagSYN) {
				e := seg.Ack.Add(int(seg.Window) << p.b.rcvWScale)
				if !bEdgeSet || e.GreaterThan(bEdge) {
					bEdge, bEdgeSet = e, true
				}
			}
		})
		tap(p.aOut, func(seg *Segment) {
			if len(seg.Payload) == 0 {
				return
			}
			end := seg.Seq.Add(len(seg.Payload))
			if edge := p.a.sndUna.Add(p.a.sndWnd); end.GreaterThan(edge) {
				t.Errorf("a sent %s ending at %d, beyond SND.UNA %d + SND.WND %d = %d",
					seg.String(), uint32(end), uint32(p.a.sndUna), p.a.sndWnd, uint32(edge))
			}
			if bEdgeSet && end.GreaterThan(bEdge) {
				t.Errorf("a sent %s ending at %d, beyond the furthest edge b offered, %d", seg.String(), uint32(end), uint32(bEdge))
			}
		})
	}

	t.Run("receiver shrinks its buffer mid-transfer (SetRcvBuf)", func(t *testing.T) {
		p, l := newLinkPair(t, Config{}, 5*time.Millisecond)
		check(t, p)
		data := pattern(600 << 10)
		rest := data
		var got []byte
		shrunk := false
		minWnd := 1 << 30
		for i := 0; i < 200000 && len(got) < len(data); i++ {
			if len(rest) > 0 {
				n, _ := p.a.Write(rest, p.now)
				rest = rest[n:]
			}
			l.step(p.now + 5*time.Millisecond)
			if !shrunk && p.a.sndMax.Sub(p.a.iss) > 100<<10 {
				// The 128 KiB window is in use: shrink to 8 KiB.
				p.b.SetRcvBuf(8192, p.now)
				shrunk = true
				if p.b.RcvBuf() != 8192 {
					t.Fatalf("RcvBuf %d after SetRcvBuf(8192)", p.b.RcvBuf())
				}
			}
			if shrunk {
				minWnd = min(minWnd, p.a.sndWnd)
				// A slow reader: 4 KiB each 5 ms.
				got = readUpTo(t, p.b, p.now, got, 4096)
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes, want %d intact\n%s", len(got), len(data), p.dump())
		}
		if minWnd > 8192 {
			t.Fatalf("a's window never fell to the new 8 KiB buffer: smallest %d", minWnd)
		}
		if p.a.sndWnd > 8192+1<<p.b.rcvWScale {
			t.Fatalf("a's window is %d after b shrank its buffer to 8192", p.a.sndWnd)
		}
		if p.a.Retransmits != 0 {
			t.Errorf("%d retransmissions on a lossless path: b dropped data it had offered room for", p.a.Retransmits)
		}
	})

	t.Run("peer moves its right edge left (crafted ACK)", func(t *testing.T) {
		p := newWarmPair(t, Config{})
		check(t, p)
		data := pattern(100 << 10)
		p.a.Write(data, p.now)
		var flight []Segment
		for len(p.aOut.queue) > 0 {
			flight = append(flight, p.take(p.aOut))
		}
		if len(flight) < 4 {
			t.Fatalf("setup: initial flight of %d segments", len(flight))
		}
		// b takes the first two and ACKs them.
		p.b.Handle(&flight[0], p.now)
		p.b.Handle(&flight[1], p.now)
		ack := p.take(p.bOut)
		// The ACK arrives with its window cut so its right edge lies left
		// of what a already sent.
		ack.Window = 1000 >> p.a.sndWScale
		wantEdge := ack.Ack.Add(int(ack.Window) << p.a.sndWScale)
		sent := p.a.sndMax
		if !wantEdge.LessThan(sent) {
			t.Fatalf("setup: edge %d not left of SND.MAX %d", uint32(wantEdge), uint32(sent))
		}
		p.a.Handle(&ack, p.now)
		if got := p.a.sndUna.Add(p.a.Info().SndWnd); got != wantEdge {
			t.Fatalf("a's window edge %d after the shrinking ACK, want %d (a must accept a shrunk window)", uint32(got), uint32(wantEdge))
		}
		if p.a.sndMax != sent || len(p.aOut.queue) != 0 {
			t.Fatalf("a sent after its window shrank below what is in flight\n%s", p.dump())
		}
		for _, s := range flight[2:] {
			p.b.Handle(&s, p.now)
		}
		p.run()
		got := readSome(t, p.b, p.now, nil)
		for i := 0; i < 10000 && len(got) < len(data); i++ {
			p.advance(10 * time.Millisecond)
			got = readSome(t, p.b, p.now, got)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes, want %d intact", len(got), len(data))
		}
	})
}

// TestReceiverSWS: a full receiver whose application reads 100 bytes at a
// time announces no window until min(buf/2, MSS) is free, then one.
func TestReceiverSWS(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"64 KiB fixed", Config{RcvBuf: 64 << 10, NoAutoTune: true}},
		{"64 KiB autotuned", Config{RcvBuf: 64 << 10}},
		{"2000 bytes: half the buffer is below MSS", Config{RcvBuf: 2000, NoAutoTune: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, tc.cfg)
			data, _ := fillWindow(t, p, 3*tc.cfg.RcvBuf)
			buf := p.b.RcvBuf()
			threshold := min(buf/2, p.b.rcvMSS())
			held0 := p.b.RecvQueue()
			if unit := 1 << p.b.rcvWScale; held0 > buf+unit {
				t.Errorf("BUG: the full receiver holds %d bytes, more than its %d-byte buffer plus one window-scale unit (%d): "+
					"advertise() rounds the remaining window up to the scale unit on every ACK, so each ACK moved the right edge "+
					"right by up to %d bytes the buffer did not have (see TestZeroWindowWithSmallSegments)", held0, buf, unit, unit-1)
			}
			// Reads of 100 bytes until min(buf/2, MSS) is free, counted in
			// whole window-scale units (the window field cannot say less).
			unit := 1 << p.b.rcvWScale
			aligned := func(free int) int { return free &^ (unit - 1) }
			wantReads := 0
			for f := buf - held0; aligned(f) < threshold; f += 100 {
				wantReads++
			}
			type ev struct {
				free int
				win  int
			}
			var evs []ev
			tap(p.bOut, func(seg *Segment) {
				evs = append(evs, ev{p.b.rcvWindow(), int(seg.Window) << p.b.rcvWScale})
			})
			var got []byte
			updated := false
			for i := 1; !updated && i <= 100; i++ {
				evs = evs[:0]
				got = readUpTo(t, p.b, p.now, got, 100)
				free := aligned(buf - p.b.RecvQueue())
				// Whatever b sends at once is the window update, if any.
				var upd []ev
				for _, e := range evs {
					if e.win > 0 {
						upd = append(upd, e)
					}
				}
				if free < threshold && len(upd) > 0 {
					t.Fatalf("read %d: b announced window %d with only %d bytes free (< min(buf/2, MSS) = %d)\n%s",
						i, upd[0].win, free, threshold, p.dump())
				}
				if free >= threshold {
					if len(evs) != 1 || len(upd) != 1 {
						t.Fatalf("read %d: %d bytes free (>= %d) and b sent %v, want exactly one window update", i, free, threshold, evs)
					}
					if i != wantReads {
						t.Fatalf("window update after %d reads of 100, want %d", i, wantReads)
					}
					if upd[0].win < threshold {
						t.Errorf("BUG: read %d: %d bytes free, and the window update offers only %d (field %d << scale %d), "+
							"less than min(buf/2, MSS) = %d: maybeWindowUpdate/ReceiveWindow test the threshold on the unscaled free space, "+
							"then advertise() rounds it down to the %d-byte scale unit, so the right edge moves by less than RFC 1122 §4.2.3.3 allows "+
							"(and the sender's SWS rule then waits for the persist timer)",
							i, free, upd[0].win, upd[0].win>>p.b.rcvWScale, p.b.rcvWScale, threshold, 1<<p.b.rcvWScale)
					}
					updated = true
				}
				// Time passes: a's probes are answered with a zero window.
				evs = evs[:0]
				p.advance(10 * time.Millisecond)
				if !updated {
					for _, e := range evs {
						if e.win != 0 {
							t.Fatalf("read %d: b answered with window %d while %d bytes are free (< %d)\n%s", i, e.win, e.free, threshold, p.dump())
						}
					}
				}
			}
			if !updated {
				t.Fatalf("no window update after 100 reads")
			}
			p.bOut.drop = nil
			for i := 0; i < 10000 && len(got) < len(data); i++ {
				p.advance(10 * time.Millisecond)
				got = readSome(t, p.b, p.now, got)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, want %d intact", len(got), len(data))
			}
		})
	}
}

// advanceHooked is p.advance with a hook that runs before each round of
// timers, so a test knows which timer is about to fire.
func advanceHooked(p *pair, d time.Duration, before func()) {
	p.run()
	end := p.now + d
	for {
		next := end
		for _, c := range []*Conn{p.a, p.b} {
			if at := c.NextTimer(); at != 0 && at < next {
				next = at
			}
		}
		p.now = max(p.now, next)
		before()
		p.a.Tick(p.now)
		p.b.Tick(p.now)
		p.run()
		if p.now >= end {
			return
		}
	}
}

// TestSenderSWS: with a small receive buffer and a slow reader, the
// sender sends no segment smaller than min(MSS, max window/2) but the last
// one and those the persist timer forces out.
func TestSenderSWS(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		chunk  int
		period time.Duration
	}{
		{"3000-byte buffer, 500 bytes each 20 ms", Config{RcvBuf: 3000, NoAutoTune: true}, 500, 20 * time.Millisecond},
		{"3000-byte buffer, 100 bytes each 5 ms", Config{RcvBuf: 3000, NoAutoTune: true}, 100, 5 * time.Millisecond},
		{"5000-byte buffer, 700 bytes each 30 ms", Config{RcvBuf: 5000, NoAutoTune: true}, 700, 30 * time.Millisecond},
		// Slower than the persist timer: small windows are forced out.
		{"3000-byte buffer, 100 bytes each 50 ms", Config{RcvBuf: 3000, NoAutoTune: true}, 100, 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, tc.cfg)
			data := pattern(50_000)
			if n, _ := p.a.Write(data, p.now); n != len(data) {
				t.Fatalf("wrote %d", n)
			}
			streamEnd := p.a.sndBufSeq.Add(p.a.SendQueue())
			persist := false
			small, overrides := 0, 0
			tap(p.aOut, func(seg *Segment) {
				n := len(seg.Payload)
				if n == 0 {
					return
				}
				floor := min(p.a.segMSS(), p.a.maxSndWnd/2)
				switch {
				case n >= floor:
				case seg.Seq.Add(n) == streamEnd:
					small++
				case persist:
					overrides++
				default:
					t.Errorf("at %v a sent %d bytes (%s): below min(MSS %d, max window %d / 2) = %d, not the last segment nor a persist override",
						p.now, n, seg.String(), p.a.segMSS(), p.a.maxSndWnd, floor)
				}
			})
			var got []byte
			for i := 0; i < 100000 && len(got) < len(data); i++ {
				advanceHooked(p, tc.period, func() {
					persist = p.a.timers.due(tPersist, p.now)
				})
				persist = false
				got = readUpTo(t, p.b, p.now, got, tc.chunk)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, want %d intact", len(got), len(data))
			}
			t.Logf("%d small final segments, %d persist overrides, done at %v", small, overrides, p.now)
		})
	}
}

// TestReassemblyBounded: out-of-order segments, some beyond the window,
// duplicates and overlaps; the stream read is exact, and the receiver never
// holds bytes beyond the right edge it offered, nor more than its buffer
// (plus one window-scale unit of rounding).
func TestReassemblyBounded(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"20000 fixed, no scaling", Config{RcvBuf: 20000, NoAutoTune: true}},
		{"16 KiB autotuned, scale 7", Config{RcvBuf: 16 << 10}},
		{"64 KiB fixed, scale 1", Config{RcvBuf: 64 << 10, NoAutoTune: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newWarmPair(t, tc.cfg)
			b := p.b
			seq0 := p.a.sndNxt
			mk := func(start int, payload []byte) Segment {
				return Segment{SrcPort: p.a.LocalPort, DstPort: p.a.RemotePort, Seq: seq0.Add(start),
					Ack: b.sndNxt, Flags: FlagACK, Window: 0xffff, Payload: payload}
			}
			stored := func() (end int) {
				b.rcv.OutOfOrder(func(s, e int) { end = max(end, e) })
				return end
			}
			overfull := false
			checkInv := func(what string) {
				t.Helper()
				ooo := stored()
				if edge := b.rcvNxt.Add(ooo); edge.GreaterThan(b.rcvAdvEdge) {
					t.Fatalf("%s: out-of-order bytes stored up to %d, beyond the right edge offered, %d", what, uint32(edge), uint32(b.rcvAdvEdge))
				}
				if held, lim := b.RecvQueue()+ooo, b.RcvBuf()+1<<b.rcvWScale; held > lim && !overfull {
					overfull = true // reported once; the stream is still checked
					t.Errorf("BUG: %s: %d readable + %d out-of-order extent = %d bytes held, more than RcvBuf %d + one scale unit %d "+
						"(setRcvLimit's promise): the bytes lie within the offered edge, but advertise() rounded the remaining "+
						"window up on successive ACKs, moving the edge past the buffer (see TestZeroWindowWithSmallSegments)",
						what, b.RecvQueue(), ooo, held, b.RcvBuf(), 1<<b.rcvWScale)
				}
			}
			r := rand.New(rand.NewPCG(uint64(len(tc.name)), 9))
			const total = 400_000
			stream := make([]byte, total)
			for i := range stream {
				stream[i] = byte(r.Uint32())
			}

			// Deterministic first: beyond the edge, straddling it.
			wnd := b.rcvAdvEdge.Sub(b.rcvNxt)
			s := mk(wnd, stream[wnd:wnd+500])
			b.Handle(&s, p.now)
			if b.rcv.HasOutOfOrder() {
				t.Fatalf("a segment wholly beyond the window (at %d, window %d) was stored", wnd, wnd)
			}
			s = mk(wnd-300, stream[wnd-300:wnd+500])
			b.Handle(&s, p.now)
			if end := stored(); end != wnd {
				t.Fatalf("a segment straddling the right edge was stored up to %d, want trimmed at %d", end, wnd)
			}
			checkInv("straddling")
			p.bOut.queue = nil

			var got []byte
			for i := 0; len(got) < total && i < 1_000_000; i++ {
				next := b.rcvNxt.Sub(seq0)
				wnd := b.rcvAdvEdge.Sub(b.rcvNxt)
				var start int
				switch r.IntN(10) {
				case 0:
					start = next
				case 1:
					start = next - r.IntN(3000) // duplicate, maybe overlapping new data
				case 2:
					start = next + wnd - 1000 + r.IntN(2000) // around the right edge
				case 3:
					start = next + wnd + r.IntN(20000) // beyond the window
				default:
					start = next + r.IntN(max(wnd, 1)) // out of order, in the window
				}
				start = max(0, min(start, total-1))
				end := min(start+1+r.IntN(2000), total)
				seg := mk(start, stream[start:end])
				b.Handle(&seg, p.now)
				checkInv("after a segment")
				p.bOut.queue = nil
				if r.IntN(4) == 0 {
					got = readUpTo(t, b, p.now, got, r.IntN(30000))
					checkInv("after a read")
					p.bOut.queue = nil
				}
				if r.IntN(8) == 0 {
					p.now += time.Millisecond
					b.Tick(p.now)
					p.bOut.queue = nil
				}
			}
			if !bytes.Equal(got, stream) {
				n := 0
				for n < len(got) && got[n] == stream[n] {
					n++
				}
				t.Fatalf("read %d bytes, want the %d-byte stream; first difference at %d", len(got), total, n)
			}
		})
	}
}

// TestAutotune: over a path with a round trip, a reader that keeps up
// grows the receive buffer from RcvBuf toward RcvBufMax; a slow reader
// never does; SetRcvBuf fixes it.
func TestAutotune(t *testing.T) {
	const delay = 5 * time.Millisecond // 10 ms round trip
	// run transfers total bytes a->b over l; the reader reads at most
	// perStep bytes (-1: all) each step of at most step; after each step
	// hook runs. It returns the largest RcvBuf seen.
	run := func(t *testing.T, p *pair, l *link, total, perStep int, step time.Duration, hook func()) int {
		data := pattern(total)
		rest := data
		var got []byte
		prev, most := p.b.RcvBuf(), p.b.RcvBuf()
		for i := 0; i < 5_000_000 && len(got) < total; i++ {
			if len(rest) > 0 {
				n, err := p.a.Write(rest, p.now)
				if err != nil {
					t.Fatalf("write: %v", err)
				}
				rest = rest[n:]
			}
			l.step(p.now + step)
			got = readUpTo(t, p.b, p.now, got, perStep)
			size := p.b.RcvBuf()
			if size < prev && hook == nil {
				t.Fatalf("RcvBuf shrank from %d to %d", prev, size)
			}
			if size > p.b.cfg.RcvBufMax {
				t.Fatalf("RcvBuf %d beyond RcvBufMax %d", size, p.b.cfg.RcvBufMax)
			}
			prev, most = size, max(most, size)
			if hook != nil {
				hook()
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes, want %d intact", len(got), total)
		}
		return most
	}
	cfg := Config{SndBuf: 16 << 20, RcvBufMax: 4 << 20}

	t.Run("fast reader grows the buffer to RcvBufMax", func(t *testing.T) {
		p, l := newLinkPair(t, cfg, delay)
		if p.b.RcvBuf() != 128<<10 {
			t.Fatalf("RcvBuf starts at %d, want 128 KiB", p.b.RcvBuf())
		}
		var sizes []int
		var at []time.Duration
		most := run(t, p, l, 32<<20, -1, time.Millisecond, func() {
			if s := p.b.RcvBuf(); len(sizes) == 0 || sizes[len(sizes)-1] != s {
				sizes, at = append(sizes, s), append(at, p.now)
			}
		})
		t.Logf("grown at %v", at)
		t.Logf("RcvBuf went %v; done at %v, SRTT %v", sizes, p.now, p.b.rcvRTTEstimate())
		if most != cfg.RcvBufMax {
			t.Fatalf("a reader keeping up with a 10 ms path grew RcvBuf only to %d (steps %v), want RcvBufMax %d", most, sizes, cfg.RcvBufMax)
		}
	})
	t.Run("slow reader never grows it", func(t *testing.T) {
		p, l := newLinkPair(t, cfg, delay)
		// 16 KiB each 10 ms: an eighth of the buffer per round trip.
		if most := run(t, p, l, 2<<20, 16<<10, 10*time.Millisecond, nil); most != 128<<10 {
			t.Fatalf("a slow reader grew RcvBuf to %d", most)
		}
	})
	t.Run("SetRcvBuf before the transfer fixes the size", func(t *testing.T) {
		p, l := newLinkPair(t, cfg, delay)
		p.b.SetRcvBuf(200_000, p.now)
		most := run(t, p, l, 16<<20, -1, time.Millisecond, func() {
			if s := p.b.RcvBuf(); s != 200_000 {
				t.Fatalf("RcvBuf %d after SetRcvBuf(200000)", s)
			}
		})
		if most != 200_000 {
			t.Fatalf("RcvBuf reached %d", most)
		}
	})
	t.Run("SetRcvBuf mid-transfer stops growth", func(t *testing.T) {
		p, l := newLinkPair(t, cfg, delay)
		fixed := 0
		run(t, p, l, 24<<20, -1, time.Millisecond, func() {
			s := p.b.RcvBuf()
			switch {
			case fixed == 0 && s >= 256<<10:
				fixed = 2 * s
				p.b.SetRcvBuf(fixed, p.now)
				if p.b.RcvBuf() != fixed {
					t.Fatalf("RcvBuf %d after SetRcvBuf(%d)", p.b.RcvBuf(), fixed)
				}
			case fixed != 0 && s != fixed:
				t.Fatalf("RcvBuf changed to %d after SetRcvBuf(%d)", s, fixed)
			}
		})
		if fixed == 0 {
			t.Fatalf("RcvBuf never grew to 256 KiB before SetRcvBuf")
		}
	})
}

// TestZeroWindowWithSmallSegments: a receiver that never reads must close
// its window and hold no more than its buffer, whatever the segment sizes.
// With window scaling, segments smaller than the scale unit that are
// acknowledged one at a time (an interactive sender, or DelayedAck < 0)
// must still use the window up.
func TestZeroWindowWithSmallSegments(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		every time.Duration
	}{
		{"default config, 100 bytes each 50 ms (each ACKed by the delayed-ACK timer)", Config{}, 50 * time.Millisecond},
		{"DelayedAck < 0, 100 bytes each 10 ms", Config{RcvBuf: 64 << 10, NoDelay: true, DelayedAck: -1}, 10 * time.Millisecond},
		{"no window scaling, 100 bytes each 50 ms", Config{RcvBuf: 64 << 10, NoWScale: true}, 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, tc.cfg)
			buf := p.b.RcvBuf()
			unit := 1 << p.b.rcvWScale
			writes := 2 * buf / 100
			for i := 0; i < writes; i++ {
				p.a.Write(pattern(100), p.now)
				p.advance(tc.every)
				if held := p.b.RecvQueue(); held > buf+unit {
					t.Fatalf("BUG: after %d 100-byte writes the receiver, which never reads, holds %d bytes with a %d-byte buffer "+
						"(scale unit %d) and still offers %d: advertise() rounds the remaining window up to the scale unit whenever "+
						"rounding down would move the right edge left, so each ACK of a segment smaller than the unit moves the edge "+
						"right again by the segment's length; the window never closes and advertise() grows the ring (rcv.SetLimit) "+
						"without bound\n%s", i+1, held, buf, unit, p.b.rcvAdvEdge.Sub(p.b.rcvNxt), logTail(p, 4))
				}
			}
			if p.a.Info().SndWnd != 0 {
				t.Fatalf("the sender still sees a window of %d after %d bytes into a %d-byte buffer nobody reads", p.a.Info().SndWnd, writes*100, buf)
			}
		})
	}
}

// TestLostSmallSegmentRetransmitted: data in flight that fits the window
// is retransmitted on a timeout even when it is smaller than the sender
// SWS rule likes (RFC 9293 §3.8.6.2.1: after a shrink "retransmit normally
// the old unacknowledged data between SND.UNA and SND.UNA+SND.WND"; RFC
// 6298 §5.4: retransmit the earliest segment). Otherwise nothing is sent,
// the receiver has nothing to answer, and a live connection times out.
func TestLostSmallSegmentRetransmitted(t *testing.T) {
	t.Run("lost persist override into a small window, receiver not reading", func(t *testing.T) {
		p := newPair(t, Config{RcvBuf: 3000, NoAutoTune: true})
		p.a.Write(pattern(50_000), p.now)
		persist, dropped := false, false
		var lost Segment
		p.aOut.drop = func(seg *Segment) bool {
			if persist && !dropped && len(seg.Payload) > 0 {
				dropped, lost = true, *seg
				return true
			}
			return false
		}
		for i := 0; i < 120 && p.a.State() == Established; i++ {
			advanceHooked(p, 10*time.Second, func() { persist = p.a.timers.due(tPersist, p.now) })
			persist = false
		}
		if !dropped {
			t.Fatalf("setup: no persist override was sent\n%s", p.dump())
		}
		if p.a.State() != Established {
			t.Fatalf("BUG: the %d-byte persist override (seq %d) filling b's %d-byte window was lost; a then failed with %v at %v "+
				"after %d retransmission timeouts that sent nothing: retransmitTimeout rewinds SND.NXT and leaves the resend to "+
				"sendData, whose window.SendSize applies the sender SWS rule (usable %d < MSS %d and < max window/2 %d, more queued) "+
				"and returns 0, and armPersist does nothing while data is in flight; the peer, alive and never asked again, stays silent\n%s",
				len(lost.Payload), uint32(lost.Seq), len(lost.Payload), p.a.Err(), p.now, p.a.Retransmits,
				len(lost.Payload), p.a.segMSS(), p.a.maxSndWnd/2, logTail(p, 8))
		}
	})

	t.Run("peer shrank its window below MSS, then the data beyond was lost", func(t *testing.T) {
		p := newWarmPair(t, Config{})
		data := pattern(100 << 10)
		p.a.Write(data, p.now)
		var flight []Segment
		for len(p.aOut.queue) > 0 {
			flight = append(flight, p.take(p.aOut))
		}
		p.b.Handle(&flight[0], p.now)
		p.b.Handle(&flight[1], p.now)
		ack := p.take(p.bOut)
		ack.Window = 1000 >> p.a.sndWScale // right edge moved left of SND.MAX
		p.a.Handle(&ack, p.now)
		wnd := p.a.sndWnd
		// flight[2:] is lost; b, which has read nothing yet, has nothing to
		// say. The first bytes of it lie within the window and must be
		// retransmitted; b takes them and its ACK reopens the window.
		una := p.a.sndUna
		for i := 0; i < 120 && p.a.State() == Established && p.a.sndUna == una; i++ {
			p.advance(10 * time.Second)
		}
		if p.a.State() != Established || p.a.sndUna == una {
			t.Fatalf("BUG: after the peer shrank the window to %d bytes (< MSS %d) and the segments beyond SND.UNA were lost, "+
				"a is %v (%v) at %v with %d retransmission timeouts and SND.UNA still %d: on a timeout it never resends "+
				"the old data within [SND.UNA, SND.UNA+SND.WND) because window.SendSize's SWS rule refuses a %d-byte segment "+
				"while more is queued (and no persist timer runs with data in flight)\n%s",
				wnd, p.a.segMSS(), p.a.State(), p.a.Err(), p.now, p.a.Retransmits, uint32(p.a.sndUna), wnd, logTail(p, 8))
		}
		var got []byte
		for i := 0; i < 1000 && len(got) < len(data); i++ {
			got = readSome(t, p.b, p.now, got)
			p.advance(10 * time.Millisecond)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes, want %d intact", len(got), len(data))
		}
	})
}

// TestRetransmitTimeoutAnsweredWithShutWindowIsNotFatal: data in flight
// is lost and a stale update makes the sender believe the window shut; the
// retransmission timer then probes with the segment at SND.UNA (see
// TestRTOResendsHeadIntoShutWindow). Here the peer's window really is
// shut: it answers every probe with a zero window. A peer that answers is
// alive (RFC 1122 §4.2.2.17): the connection must outlive MaxRetries
// timeouts, and the data goes once the peer reads.
func TestRetransmitTimeoutAnsweredWithShutWindowIsNotFatal(t *testing.T) {
	p := newPair(t, Config{NoSACK: true}) // no tail loss probe to do it instead
	data, _ := fillWindow(t, p, 300<<10)  // b's buffer is full: its window is shut
	// A bogus update says b's window is wide open: a sends into it, b
	// drops the data and answers, every time, that its window is zero.
	bogus := Segment{SrcPort: 80, DstPort: 40000, Seq: p.b.sndMax, Ack: p.a.sndUna, Flags: FlagACK, Window: 0xffff}
	p.a.Handle(&bogus, p.now)
	p.run()
	if p.a.sndWnd != 0 || p.a.sndUna == p.a.sndMax {
		t.Fatalf("setup: sndWnd %d, in flight %d", p.a.sndWnd, p.a.sndMax.Sub(p.a.sndUna))
	}
	p.advance(60 * time.Minute)
	if p.a.Err() != nil || p.a.State() != Established {
		t.Fatalf("a peer answering with a shut window was given up: %v, %v (%d timeouts)", p.a.State(), p.a.Err(), p.a.Timeouts)
	}
	var got []byte
	for i := 0; i < 100000 && len(got) < len(data); i++ {
		got = readSome(t, p.b, p.now, got)
		p.advance(10 * time.Millisecond)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("b got %d of %d bytes intact", len(got), len(data))
	}
}

// TestRequestReadWithoutWindowUpdate: a server that reads a small request
// sends no ACK of its own for the read (the window its read opened is a
// few bytes, whatever the buffer has grown to since the handshake): the
// response, written just after, carries the ACK.
func TestRequestReadWithoutWindowUpdate(t *testing.T) {
	p := newPair(t, Config{})
	p.a.Write(pattern(60), p.now)
	p.run()
	var bare int
	tap(p.bOut, func(seg *Segment) {
		if len(seg.Payload) == 0 && seg.Flags == FlagACK {
			bare++
		}
	})
	buf := make([]byte, 100)
	if n, _ := p.b.Read(buf, p.now); n != 60 {
		t.Fatalf("read %d bytes, want 60", n)
	}
	p.run()
	if bare != 0 {
		t.Fatalf("%d bare ACKs after reading a 60-byte request", bare)
	}
	p.b.Write(pattern(200), p.now)
	p.run()
	if bare != 0 || p.a.RecvQueue() != 200 {
		t.Fatalf("%d bare ACKs; a got %d bytes of the response", bare, p.a.RecvQueue())
	}
}
