package tun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// numbered returns a 16-byte test packet carrying seq, with a fixed tail so
// that a flipped bit anywhere shows.
func numbered(seq uint32) []byte {
	p := make([]byte, 16)
	binary.BigEndian.PutUint32(p, seq)
	for i := 4; i < len(p); i++ {
		p[i] = byte(0xa0 + i)
	}
	return p
}

func seqOf(p []byte) uint32 { return binary.BigEndian.Uint32(p) }

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// newImpaired wraps one end of a Pipe; the test talks to the other end.
// A watchdog closes the pipe if the test hangs, so a blocked Read fails
// instead of running into go test's timeout.
func newImpaired(t *testing.T, cfg ImpairConfig) (*Impaired, *PipeEnd) {
	t.Helper()
	a, b := Pipe(1500)
	d, err := Impair(a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	watchdog := time.AfterFunc(20*time.Second, func() { a.Close() })
	t.Cleanup(func() {
		watchdog.Stop()
		d.Close()
	})
	return d, b.(*PipeEnd)
}

// flow sends n numbered packets through one direction of an Impaired (Out:
// written to it; In: written to the pipe's far end and Read from it) and
// returns what came out, in order, with the direction's counts. It sends in
// batches so neither the Pipe's queue nor the lane's limit overflows.
func flow(t *testing.T, cfg ImpairConfig, out bool, n int) ([][]byte, ImpairCounts) {
	t.Helper()
	d, peer := newImpaired(t, cfg)
	var src, dst Device = d, peer
	counts := func() ImpairCounts { return d.Stats().Out }
	if !out {
		src, dst = peer, d
		counts = func() ImpairCounts { return d.Stats().In }
	}
	var got [][]byte
	buf := make([]byte, 1500)
	for sent := 0; sent < n; {
		for k := min(400, n-sent); k > 0; k-- {
			p := numbered(uint32(sent))
			if _, err := src.Write(p); err != nil {
				t.Fatalf("write %d: %v", sent, err)
			}
			if !bytes.Equal(p, numbered(uint32(sent))) {
				t.Fatalf("write %d changed the caller's buffer", sent)
			}
			sent++
		}
		waitFor(t, "the lane to take every packet", func() bool { return counts().Packets == uint64(sent) })
		c := counts()
		for want := c.Packets - c.Lost - c.Overflow + c.Duplicated; uint64(len(got)) < want; {
			m, err := dst.Read(buf)
			if err != nil {
				t.Fatalf("read after %d packets: %v", len(got), err)
			}
			got = append(got, bytes.Clone(buf[:m]))
		}
	}
	waitFor(t, "Delivered to catch up", func() bool { return counts().Delivered == uint64(len(got)) })
	c := counts()
	if c.Packets != uint64(n) || c.Delivered+c.Errors != c.Packets-c.Lost-c.Overflow+c.Duplicated || c.Errors != 0 || c.Overflow != 0 {
		t.Errorf("counts do not add up: %+v", c)
	}
	if drops := peer.Drops() + peer.peer.Drops(); drops != 0 {
		t.Fatalf("the pipe dropped %d packets", drops)
	}
	return got, c
}

func seqs(pkts [][]byte) []uint32 {
	s := make([]uint32, len(pkts))
	for i, p := range pkts {
		s[i] = seqOf(p)
	}
	return s
}

func TestImpairZeroPassesThrough(t *testing.T) {
	d, peer := newImpaired(t, ImpairConfig{Seed: 1})
	if d.in != nil || d.out != nil {
		t.Fatal("a zero configuration started an impaired direction")
	}
	buf := make([]byte, 1500)
	for i := range uint32(100) {
		if _, err := d.Write(numbered(i)); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Write(numbered(1000 + i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range uint32(100) {
		if n, err := peer.Read(buf); err != nil || !bytes.Equal(buf[:n], numbered(i)) {
			t.Fatalf("out packet %d: % x %v", i, buf[:n], err)
		}
		if n, err := d.Read(buf); err != nil || !bytes.Equal(buf[:n], numbered(1000+i)) {
			t.Fatalf("in packet %d: % x %v", i, buf[:n], err)
		}
	}
	if s := d.Stats(); s != (ImpairStats{}) {
		t.Fatalf("pass-through counted %+v", s)
	}
	if d.MTU() != 1500 {
		t.Fatalf("MTU %d", d.MTU())
	}
}

func TestImpairLoss(t *testing.T) {
	const n = 10000
	run := func(seed uint64, out bool) []uint32 {
		m := Impairment{Loss: 0.1}
		cfg := ImpairConfig{Seed: seed, Out: m}
		if !out {
			cfg = ImpairConfig{Seed: seed, In: m}
		}
		got, c := flow(t, cfg, out, n)
		s := seqs(got)
		if c.Lost < 800 || c.Lost > 1200 || len(s) != n-int(c.Lost) {
			t.Fatalf("seed %d out %v: lost %d of %d, delivered %d", seed, out, c.Lost, n, len(s))
		}
		if !slices.IsSorted(s) {
			t.Fatalf("seed %d out %v: loss alone reordered packets", seed, out)
		}
		return s
	}
	first := run(1, true)
	if again := run(1, true); !slices.Equal(first, again) {
		t.Fatal("the same seed lost different packets")
	}
	if other := run(2, true); slices.Equal(first, other) {
		t.Fatal("another seed lost the same packets")
	}
	run(1, false)
}

func TestImpairDuplicate(t *testing.T) {
	const n = 10000
	got, c := flow(t, ImpairConfig{Seed: 3, Out: Impairment{Duplicate: 0.1}}, true, n)
	if c.Duplicated < 800 || c.Duplicated > 1200 || len(got) != n+int(c.Duplicated) {
		t.Fatalf("duplicated %d of %d, delivered %d", c.Duplicated, n, len(got))
	}
	// Every packet arrives, in order, its duplicate right behind it.
	s, next, dups := seqs(got), uint32(0), 0
	for i, q := range s {
		switch {
		case q == next:
			next++
		case i > 0 && q == s[i-1]:
			dups++
		default:
			t.Fatalf("position %d: packet %d, want %d or a duplicate", i, q, next)
		}
	}
	if next != n || uint64(dups) != c.Duplicated {
		t.Fatalf("%d packets, %d duplicates; counts %+v", next, dups, c)
	}
}

// overtakers returns, for each delivered packet, how many packets with a
// higher number were delivered before it.
func overtakers(s []uint32) map[uint32]int {
	o := make(map[uint32]int, len(s))
	for i, q := range s {
		for _, r := range s[:i] {
			if r > q {
				o[q]++
			}
		}
	}
	return o
}

func TestImpairReorder(t *testing.T) {
	const n = 2000
	for _, tc := range []struct {
		out bool
		gap int
	}{{true, 3}, {false, 0}} {
		got, c := flow(t, ImpairConfig{Seed: 4, Out: Impairment{Reorder: 0.05, ReorderGap: tc.gap}, In: Impairment{Reorder: 0.05, ReorderGap: tc.gap}}, tc.out, n)
		s := seqs(got)
		if sorted := slices.Sorted(slices.Values(s)); len(s) != n || !slices.Equal(sorted, seqs(flowWant(n))) {
			t.Fatalf("out %v: reordering lost or duplicated packets: %d delivered", tc.out, len(s))
		}
		if slices.IsSorted(s) || c.Reordered < 50 || c.Reordered > 150 {
			t.Fatalf("out %v: %d held back, in order %v", tc.out, c.Reordered, slices.IsSorted(s))
		}
		// A held packet may time out before its gap is complete (the test
		// pauses between batches), but it is never overtaken by more.
		for q, k := range overtakers(s) {
			if k > max(tc.gap, 1) {
				t.Fatalf("out %v: packet %d overtaken by %d, gap %d", tc.out, q, k, tc.gap)
			}
		}
	}
}

func flowWant(n int) [][]byte {
	w := make([][]byte, n)
	for i := range w {
		w[i] = numbered(uint32(i))
	}
	return w
}

// TestImpairLaneReorderGap drives a lane with made-up times: with every
// packet offered at once, a held packet is overtaken by exactly gap
// packets, unless fewer than gap follow it (then its hold times out).
func TestImpairLaneReorderGap(t *testing.T) {
	const n, gap = 2000, 3
	l := newLane(Impairment{Reorder: 0.1, ReorderGap: gap}, 1500, 5, streamOut)
	for i := range uint32(n) {
		l.submit(numbered(i), 0)
	}
	var s []uint32
	for {
		i, ok, wait := l.next(int64(time.Hour))
		if !ok {
			if wait != -1 {
				t.Fatalf("nothing due at 1h but wait %d", wait)
			}
			break
		}
		s = append(s, seqOf(l.slots[i].buf))
		l.take(i)
	}
	if len(s) != n || l.used != 0 {
		t.Fatalf("%d delivered, %d slots still used", len(s), l.used)
	}
	o := overtakers(s)
	held := make(map[uint32]bool)
	for q, k := range o {
		if k > 0 {
			held[q] = true
		}
	}
	for q := range held {
		passesAfter := 0
		for r := q + 1; r < n; r++ {
			if !held[r] {
				passesAfter++
			}
		}
		if want := min(gap, passesAfter); o[q] != want {
			t.Fatalf("held packet %d overtaken by %d, want %d", q, o[q], want)
		}
	}
	if h := uint64(len(held)); l.st.Reordered < h || l.st.Reordered > h+gap || h < 150 {
		t.Fatalf("%d packets overtaken, %d held back", h, l.st.Reordered)
	}
}

func TestImpairReorderLonePacketNotStuck(t *testing.T) {
	d, peer := newImpaired(t, ImpairConfig{Out: Impairment{Reorder: 1}})
	start := time.Now()
	d.Write(numbered(7))
	buf := make([]byte, 1500)
	n, err := peer.Read(buf)
	if err != nil || seqOf(buf[:n]) != 7 {
		t.Fatalf("read % x %v", buf[:n], err)
	}
	if e := time.Since(start); e < reorderHold {
		t.Fatalf("a held packet came after %v, before its hold of %v", e, reorderHold)
	}
}

func TestImpairDelay(t *testing.T) {
	const delay = 30 * time.Millisecond
	for _, out := range []bool{true, false} {
		m := Impairment{Delay: delay, Jitter: 5 * time.Millisecond}
		d, peer := newImpaired(t, ImpairConfig{Seed: 6, In: m, Out: m})
		var src, dst Device = d, peer
		if !out {
			src, dst = peer, d
		}
		const n = 50
		sentAt := make([]time.Time, n)
		for i := range sentAt {
			sentAt[i] = time.Now()
			if _, err := src.Write(numbered(uint32(i))); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, 1500)
		for i := range n {
			m, err := dst.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			// Jitter never reorders, and no packet beats the delay.
			if q := seqOf(buf[:m]); q != uint32(i) {
				t.Fatalf("out %v: packet %d at position %d", out, q, i)
			}
			if e := time.Since(sentAt[i]); e < delay {
				t.Fatalf("out %v: packet %d arrived after %v, before the %v delay", out, i, e, delay)
			}
		}
	}
}

// TestImpairWriteDoesNotWaitForDelay: Write queues the packet and
// returns; the delay runs in the wrapper's goroutine. With an hour of
// delay (and up to an hour of seeded jitter), fifty Writes return at once
// (waitFor allows 5 s), all counted, none delivered yet. A Write that
// waited for its packet's delay would block for an hour.
func TestImpairWriteDoesNotWaitForDelay(t *testing.T) {
	d, _ := newImpaired(t, ImpairConfig{Seed: 6, Out: Impairment{Delay: time.Hour, Jitter: time.Hour}})
	const n = 50
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if _, err := d.Write(numbered(uint32(i))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var err error
	waitFor(t, "Writes to return without waiting for an hour's delay", func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := d.Stats().Out; st.Packets != n || st.Delivered != 0 || st.Lost+st.Overflow != 0 {
		t.Fatalf("after %d Writes with an hour's delay: %+v, want %d packets held, none delivered", n, st, n)
	}
}

func TestImpairRateAndLimit(t *testing.T) {
	// 20 packets of 1000 bytes at 100 kB/s take 200 ms to serialise.
	d, peer := newImpaired(t, ImpairConfig{Out: Impairment{Rate: 100_000}})
	start := time.Now()
	p := make([]byte, 1000)
	for range 20 {
		d.Write(p)
	}
	buf := make([]byte, 1500)
	for i := range 20 {
		if _, err := peer.Read(buf); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if e := time.Since(start); e < 200*time.Millisecond {
		t.Fatalf("20 kB at 100 kB/s took %v", e)
	}

	// A slow link with room for 5 packets drops the rest of a burst.
	d, _ = newImpaired(t, ImpairConfig{Out: Impairment{Rate: 1000, Limit: 5}})
	for range 10 {
		d.Write(p[:100])
	}
	if c := d.Stats().Out; c.Packets != 10 || c.Overflow != 5 {
		t.Fatalf("counts %+v, want 5 of 10 overflowed", c)
	}
}

func TestImpairCorrupt(t *testing.T) {
	const n = 5000
	for _, out := range []bool{true, false} {
		m := Impairment{Corrupt: 0.1}
		got, c := flow(t, ImpairConfig{Seed: 8, Out: m, In: m}, out, n)
		if len(got) != n || c.Corrupted < 400 || c.Corrupted > 600 {
			t.Fatalf("out %v: %d delivered, %d corrupted", out, len(got), c.Corrupted)
		}
		flipped := 0
		for i, p := range got {
			diff := 0
			for j, b := range numbered(uint32(i)) {
				diff += bits.OnesCount8(b ^ p[j])
			}
			switch diff {
			case 0:
			case 1:
				flipped++
			default:
				t.Fatalf("out %v: packet %d has %d bits flipped", out, i, diff)
			}
		}
		if uint64(flipped) != c.Corrupted {
			t.Fatalf("out %v: %d packets differ, %d counted corrupted", out, flipped, c.Corrupted)
		}
	}
}

// TestImpairEverythingAtOnce runs traffic both ways through every knob and
// checks the books balance.
func TestImpairEverythingAtOnce(t *testing.T) {
	m := Impairment{Loss: 0.05, Duplicate: 0.05, Reorder: 0.05, ReorderGap: 2, Corrupt: 0.05, Delay: time.Millisecond, Jitter: time.Millisecond}
	for _, out := range []bool{true, false} {
		got, c := flow(t, ImpairConfig{Seed: 9, In: m, Out: m}, out, 3000)
		if c.Lost == 0 || c.Duplicated == 0 || c.Reordered == 0 || c.Corrupted == 0 {
			t.Fatalf("out %v: some knob did nothing: %+v", out, c)
		}
		if uint64(len(got)) != c.Delivered {
			t.Fatalf("out %v: %d read, %d delivered", out, len(got), c.Delivered)
		}
	}
}

func TestImpairConfigErrors(t *testing.T) {
	a, _ := Pipe(1500)
	defer a.Close()
	for _, tc := range []struct {
		cfg  ImpairConfig
		want string
	}{
		{ImpairConfig{Out: Impairment{Loss: 1.5}}, "Out.Loss = 1.5"},
		{ImpairConfig{In: Impairment{Duplicate: -0.1}}, "In.Duplicate = -0.1"},
		{ImpairConfig{In: Impairment{ReorderGap: -1}}, "In.ReorderGap = -1"},
		{ImpairConfig{Out: Impairment{Delay: -time.Millisecond}}, "Out.Delay = -1ms"},
		{ImpairConfig{Out: Impairment{Jitter: 2 * time.Hour}}, "Out.Jitter = 2h0m0s"},
		{ImpairConfig{Out: Impairment{Rate: -1}}, "Out.Rate = -1"},
		{ImpairConfig{Out: Impairment{Limit: -1}}, "Out.Limit = -1"},
	} {
		_, err := Impair(a, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v, want one line with %q", tc.cfg, err, tc.want)
		}
	}
}

func TestImpairCloseUnblocksRead(t *testing.T) {
	for _, m := range []Impairment{{}, {Delay: time.Millisecond}} {
		a, _ := Pipe(1500)
		d, err := Impair(a, ImpairConfig{In: m, Out: m})
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := d.Read(make([]byte, 1500))
			errc <- err
		}()
		time.Sleep(10 * time.Millisecond)
		d.Close()
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("%v: read after close: %v", m, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%v: Close did not unblock Read", m)
		}
		if _, err := d.Write([]byte{1}); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("%v: write after close: %v", m, err)
		}
	}
}

func TestImpairCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 10 {
		a, b := Pipe(1500)
		m := Impairment{Delay: 50 * time.Millisecond, Reorder: 0.5}
		d, err := Impair(a, ImpairConfig{In: m, Out: m})
		if err != nil {
			t.Fatal(err)
		}
		for i := range uint32(20) { // leave packets queued both ways
			d.Write(numbered(i))
			b.Write(numbered(i))
		}
		d.Close()
	}
	waitFor(t, "the goroutines to stop", func() bool { return runtime.NumGoroutine() <= before })
}

func TestImpairNoAllocs(t *testing.T) {
	m := Impairment{Jitter: 20 * time.Microsecond, Corrupt: 0.01}
	d, peer := newImpaired(t, ImpairConfig{In: m, Out: m})
	p, buf := make([]byte, 1400), make([]byte, 1500)
	allocs := testing.AllocsPerRun(200, func() {
		d.Write(p)
		peer.Read(buf)
		peer.Write(p)
		d.Read(buf)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet", allocs)
	}
}

func BenchmarkImpair(b *testing.B) {
	x, y := Pipe(1500)
	d, err := Impair(x, ImpairConfig{Out: Impairment{Loss: 1e-9}})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	p, buf := make([]byte, 1400), make([]byte, 1500)
	b.ReportAllocs()
	b.SetBytes(1400)
	for b.Loop() {
		d.Write(p)
		y.Read(buf)
	}
}

func TestParseImpairment(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  Impairment
		canon string // String() of the result
	}{
		{"", Impairment{}, "none"},
		{"none", Impairment{}, "none"},
		{"loss=1%,dup=0.5%,reorder=2%,delay=10ms,jitter=2ms,corrupt=0.1%",
			Impairment{Loss: 0.01, Duplicate: 0.005, Reorder: 0.02, Delay: 10 * time.Millisecond, Jitter: 2 * time.Millisecond, Corrupt: 0.001},
			"loss=1%,dup=0.5%,reorder=2%,delay=10ms,jitter=2ms,corrupt=0.1%"},
		{" reorder = 10% , gap=3, ", Impairment{Reorder: 0.1, ReorderGap: 3}, "reorder=10%,gap=3"},
		{"loss=0.25", Impairment{Loss: 0.25}, "loss=25%"},
		{"loss=100%", Impairment{Loss: 1}, "loss=100%"},
		{"corrupt=0.0001%", Impairment{Corrupt: 1e-6}, "corrupt=0.0001%"},
		{"loss=1e-9", Impairment{Loss: 1e-9}, "loss=1e-09"},
		{"rate=100mbit,limit=100", Impairment{Rate: 12_500_000, Limit: 100}, "rate=100mbit,limit=100"},
		{"rate=1.5Mbit", Impairment{Rate: 187_500}, "rate=1500kbit"},
		{"rate=1000", Impairment{Rate: 1000}, "rate=8kbit"},
		{"rate=7", Impairment{Rate: 7}, "rate=7"},
		{"delay=1.5ms", Impairment{Delay: 1500 * time.Microsecond}, "delay=1.5ms"},
	} {
		m, err := ParseImpairment(tc.in)
		if err != nil || m != tc.want {
			t.Errorf("ParseImpairment(%q) = %+v, %v; want %+v", tc.in, m, err, tc.want)
			continue
		}
		if s := m.String(); s != tc.canon {
			t.Errorf("%q: String() = %q, want %q", tc.in, s, tc.canon)
		}
		if again, err := ParseImpairment(m.String()); err != nil || again != m {
			t.Errorf("%q: round trip gave %+v, %v", tc.in, again, err)
		}
	}
	for _, tc := range []struct{ in, key string }{
		{"loss", "loss"},
		{"loss=", "loss"},
		{"loss=abc", `loss="abc"`},
		{"loss=150%", `loss="150%"`},
		{"loss=5", `loss="5"`},
		{"dup=-1%", `dup="-1%"`},
		{"reorder=NaN", `reorder="NaN"`},
		{"lost=1%", `"lost"`},
		{"delay=10", `delay="10"`},
		{"delay=-1ms", `delay="-1ms"`},
		{"jitter=2h", `jitter="2h"`},
		{"gap=x", `gap="x"`},
		{"gap=5000", `gap="5000"`},
		{"rate=fast", `rate="fast"`},
		{"rate=1bit", `rate="1bit"`},
		{"limit=-3", `limit="-3"`},
		{"loss=1%,loss=2%", "loss given twice"},
		{"loss=1%;dup=1%", `loss="1%;dup=1%"`},
	} {
		_, err := ParseImpairment(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.key) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseImpairment(%q): %v, want one line naming %q", tc.in, err, tc.key)
		}
	}
}

func FuzzParseImpairment(f *testing.F) {
	for _, s := range []string{"loss=1%,dup=0.5%,reorder=2%,delay=10ms,jitter=2ms,corrupt=0.1%", "rate=1.5mbit,limit=7,gap=4", "loss=0.3333333", "corrupt=1e-300", "loss=0\n0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseImpairment(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		again, err := ParseImpairment(m.String())
		if err != nil || again != m {
			t.Fatalf("%q parsed to %+v, printed as %q, parsed back to %+v, %v", s, m, m.String(), again, err)
		}
	})
}

func ExampleParseImpairment() {
	m, err := ParseImpairment("delay=10ms, jitter=2ms, loss=1%, rate=100mbit")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m)
	_, err = ParseImpairment("loss=150%")
	fmt.Println(err)
	// Output:
	// loss=1%,delay=10ms,jitter=2ms,rate=100mbit
	// tun: impairment loss="150%": want 0..1 (0%..100%)
}

// TestImpairCorruptBitIPv6: in an IPv6 packet the bit Corrupt flips is
// never one that no checksum covers (Traffic Class, Flow Label, Hop
// Limit), and every other bit can be drawn; in anything else any bit can.
func TestImpairCorruptBitIPv6(t *testing.T) {
	p := superSegmentOf(6, header.TCPFlagAck, randomPayload(20, 11))
	n := uint64(len(p)) * 8
	unchecked := func(bit uint64) bool {
		byteAt, mask := bit/8, byte(1)<<(bit%8)
		return byteAt == 0 && mask&0x0f != 0 || byteAt >= 1 && byteAt <= 3 || byteAt == 7
	}
	seen := map[uint64]bool{}
	for u := range n - 36 {
		bit := corruptBit(p, u+(n-36)*12345) // any draw: taken modulo
		if bit >= n || unchecked(bit) || seen[bit] {
			t.Fatalf("draw %d flips bit %d (unchecked %v, seen %v)", u, bit, unchecked(bit), seen[bit])
		}
		seen[bit] = true
	}
	for bit := range n {
		if !unchecked(bit) && !seen[bit] {
			t.Fatalf("bit %d is never drawn", bit)
		}
	}
	v4 := superSegment(header.TCPFlagAck, randomPayload(20, 11))
	for _, q := range [][]byte{v4, p[:39], numbered(7)} {
		for u := range uint64(1000) {
			if got := corruptBit(q, u); got != u%uint64(len(q)*8) {
				t.Fatalf("%d-byte packet %x: draw %d flips bit %d", len(q), q[:1], u, got)
			}
		}
	}
}

// TestImpairCorruptIPv6Noticed: every IPv6 TCP packet Corrupt changes is
// one a receiver drops: wrong version, a Payload Length that is not the
// packet's, another Next Header, or a TCP checksum that fails.
func TestImpairCorruptIPv6Noticed(t *testing.T) {
	d, peer := newImpaired(t, ImpairConfig{Seed: 9, Out: Impairment{Corrupt: 1}})
	var pkt []byte
	if err := SoftwareGSO(superSegmentOf(6, header.TCPFlagAck, randomPayload(20, 12)), Offload{CsumPartial: true},
		make([]byte, 1500), func(p []byte) error { pkt = bytes.Clone(p); return nil }); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	for i := range 400 {
		if _, err := d.Write(pkt); err != nil {
			t.Fatal(err)
		}
		n, err := peer.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		p := buf[:n]
		if bytes.Equal(p, pkt) {
			t.Fatalf("packet %d was not corrupted", i)
		}
		ip := header.IPv6(p)
		if header.IPVersion(p) != 6 || int(ip.PayloadLength())+header.IPv6MinimumSize != n || ip.NextHeader() != 6 {
			continue
		}
		xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(ip.Payload())))
		if checksum.Checksum(ip.Payload(), xsum) == 0xffff {
			t.Fatalf("packet %d corrupted unnoticed: %x, sent %x", i, p[:40], pkt[:40])
		}
	}
}
