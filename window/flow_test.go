package window

import (
	"testing"
	"time"

	"github.com/tund-project/tund/tcp/seqnum"
)

func TestUpdateSendWindow(t *testing.T) {
	for _, tc := range []struct {
		name               string
		wl1, wl2, seq, ack seqnum.Seq
		want               bool
	}{
		{"newer seq updates", 100, 500, 101, 500, true},
		{"newer seq updates even with an older ack", 100, 500, 200, 400, true},
		{"equal seq with a newer ack updates", 100, 500, 100, 600, true},
		{"equal seq with an equal ack updates", 100, 500, 100, 500, true},
		{"equal seq with an older ack does not", 100, 500, 100, 499, false},
		{"older seq does not", 100, 500, 99, 600, false},
		{"much older seq does not", 1 << 30, 500, 100, 600, false},
		{"newer seq across the 2^32 wrap updates", 0xfffffff0, 500, 0x10, 500, true},
		{"older seq across the 2^32 wrap does not", 0x10, 500, 0xfffffff0, 500, false},
		{"equal seq, ack newer across the wrap updates", 100, 0xffffffff, 100, 0, true},
		{"equal seq, ack older across the wrap does not", 100, 0, 100, 0xffffffff, false},
		{"seq equal at the wrap point, equal ack updates", 0xffffffff, 7, 0xffffffff, 7, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := UpdateSendWindow(tc.wl1, tc.wl2, tc.seq, tc.ack); got != tc.want {
				t.Errorf("UpdateSendWindow(wl1=%#x, wl2=%#x, seq=%#x, ack=%#x) = %v, want %v",
					tc.wl1, tc.wl2, tc.seq, tc.ack, got, tc.want)
			}
		})
	}
}

func TestSendSize(t *testing.T) {
	const mss = 1460
	for _, tc := range []struct {
		name string
		s    SendState
		want int
	}{
		{"full MSS goes", SendState{Unsent: 10000, Usable: 64000, MSS: mss, MaxWnd: 64000, InFlight: 5000}, mss},
		{"full MSS goes with Nagle and data in flight", SendState{Unsent: mss, Usable: 64000, MSS: mss, MaxWnd: 64000, InFlight: 1}, mss},
		{"never more than MSS", SendState{Unsent: 3 * mss, Usable: 3 * mss, MSS: mss, MaxWnd: 64000}, mss},
		{"Nagle holds a small segment while data is in flight", SendState{Unsent: 10, Usable: 64000, MSS: mss, MaxWnd: 64000, InFlight: 10}, 0},
		{"NoDelay sends a small segment with data in flight", SendState{Unsent: 10, Usable: 64000, MSS: mss, MaxWnd: 64000, InFlight: 10, NoDelay: true}, 10},
		{"Fin sends a small segment with data in flight", SendState{Unsent: 10, Usable: 64000, MSS: mss, MaxWnd: 64000, InFlight: 10, Fin: true}, 10},
		{"nothing in flight sends a small segment", SendState{Unsent: 10, Usable: 64000, MSS: mss, MaxWnd: 64000}, 10},
		{"sender SWS: window below MSS and MaxWnd/2 with more queued waits",
			SendState{Unsent: 5000, Usable: 1000, MSS: mss, MaxWnd: 4000}, 0},
		{"sender SWS: waits even with NoDelay when more is queued",
			SendState{Unsent: 5000, Usable: 1000, MSS: mss, MaxWnd: 4000, NoDelay: true}, 0},
		{"sender SWS: waits even with Fin when more is queued",
			SendState{Unsent: 5000, Usable: 1000, MSS: mss, MaxWnd: 4000, Fin: true}, 0},
		{"sender SWS: a window of exactly MaxWnd/2 goes",
			SendState{Unsent: 5000, Usable: 1000, MSS: mss, MaxWnd: 2000, InFlight: 500}, 1000},
		{"sender SWS: a window above MaxWnd/2 goes",
			SendState{Unsent: 5000, Usable: 1200, MSS: mss, MaxWnd: 2000, InFlight: 500}, 1200},
		{"sender SWS: just below MaxWnd/2 waits",
			SendState{Unsent: 5000, Usable: 999, MSS: mss, MaxWnd: 2000, InFlight: 500}, 0},
		{"sender SWS: unknown MaxWnd waits", SendState{Unsent: 5000, Usable: 1000, MSS: mss}, 0},
		{"the last bytes go when they fit and nothing is in flight",
			SendState{Unsent: 800, Usable: 1000, MSS: mss, MaxWnd: 64000}, 800},
		{"zero usable sends nothing", SendState{Unsent: 5000, Usable: 0, MSS: mss, MaxWnd: 64000}, 0},
		{"zero usable sends nothing even with NoDelay and Fin",
			SendState{Unsent: 10, Usable: 0, MSS: mss, MaxWnd: 64000, NoDelay: true, Fin: true}, 0},
		{"negative usable (shrunk window) sends nothing",
			SendState{Unsent: 5000, Usable: -300, MSS: mss, MaxWnd: 64000, InFlight: 3000}, 0},
		{"nothing queued sends nothing", SendState{Unsent: 0, Usable: 64000, MSS: mss, MaxWnd: 64000}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SendSize(tc.s); got != tc.want {
				t.Errorf("SendSize(%+v) = %d, want %d", tc.s, got, tc.want)
			}
		})
	}
}

func TestReceiveWindow(t *testing.T) {
	const mss = 1460
	for _, tc := range []struct {
		name                       string
		free, offered, buf, mssArg int
		want                       int
		shift                      uint8
	}{
		{"right edge moves by exactly MSS (big buffer)", 1000 + mss, 1000, 64 << 10, mss, 1000 + mss, 0},
		{"right edge moves by more than MSS", 40000, 1000, 64 << 10, mss, 40000, 0},
		{"right edge does not move by less than MSS", 1000 + mss - 1, 1000, 64 << 10, mss, 1000, 0},
		{"closed window stays closed below MSS free", mss - 1, 0, 64 << 10, mss, 0, 0},
		{"closed window opens at MSS free", mss, 0, 64 << 10, mss, mss, 0},
		{"small buffer: right edge moves by buf/2 < MSS", 1000, 0, 2000, mss, 1000, 0},
		{"small buffer: not by less than buf/2", 999, 0, 2000, mss, 0, 0},
		{"small buffer: buf/2 beyond what is offered", 1200, 200, 2000, mss, 1200, 0},
		{"small buffer: less than buf/2 beyond what is offered", 1199, 200, 2000, mss, 200, 0},
		{"buf/2 above MSS: MSS is the threshold", mss, 0, 3000, mss, mss, 0},
		{"never below offered when free < offered", 500, 1000, 64 << 10, mss, 1000, 0},
		{"never below offered when free is zero", 0, 1000, 64 << 10, mss, 1000, 0},
		{"offered kept when nothing changed", 1000, 1000, 64 << 10, mss, 1000, 0},
		{"negative offered treated as 0 (small free)", 100, -5, 64 << 10, mss, 0, 0},
		{"negative offered treated as 0 (large free)", 2000, -5, 64 << 10, mss, 2000, 0},
		{"negative offered: threshold counted from 0, not from offered", mss - 1, -100, 64 << 10, mss, 0, 0},
		{"scaled: the free space is rounded down to the unit", 40000, 1000, 64 << 10, mss, 39936, 7},
		{"scaled: rounding down must still clear the threshold", 1508, 0, 64 << 10, mss, 0, 7},
		{"scaled: once the rounded window clears it, it opens", 1664, 0, 64 << 10, mss, 1664, 7},
		{"scaled: never promises more than the free space", 130, 0, 200, mss, 128, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ReceiveWindow(tc.free, tc.offered, tc.buf, tc.mssArg, tc.shift)
			if got != tc.want {
				t.Errorf("ReceiveWindow(free=%d, offered=%d, buf=%d, mss=%d) = %d, want %d",
					tc.free, tc.offered, tc.buf, tc.mssArg, got, tc.want)
			}
			if got < max(tc.offered, 0) {
				t.Errorf("window %d below what is already offered (%d): the right edge moved left", got, tc.offered)
			}
		})
	}
}

func TestAckNow(t *testing.T) {
	const mss = 1460
	for _, tc := range []struct {
		name string
		s    AckState
		want bool
	}{
		{"one small segment may wait", AckState{UnackedBytes: 100, UnackedSegments: 1, MSS: mss}, false},
		{"one full segment may wait", AckState{UnackedBytes: mss, UnackedSegments: 1, MSS: mss}, false},
		{"two small segments ACK at once", AckState{UnackedBytes: 200, UnackedSegments: 2, MSS: mss}, true},
		{"two full segments ACK at once", AckState{UnackedBytes: 2 * mss, UnackedSegments: 2, MSS: mss}, true},
		{"two segments' worth in one (a large segment) ACKs at once", AckState{UnackedBytes: 2 * mss, UnackedSegments: 1, MSS: mss}, true},
		{"out of order ACKs at once", AckState{UnackedBytes: 100, UnackedSegments: 1, MSS: mss, OutOfOrder: true}, true},
		{"filling a gap ACKs at once", AckState{UnackedBytes: 100, UnackedSegments: 1, MSS: mss, FilledGap: true}, true},
		{"nothing unacknowledged may wait", AckState{MSS: mss}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := AckNow(tc.s); got != tc.want {
				t.Errorf("AckNow(%+v) = %v, want %v", tc.s, got, tc.want)
			}
		})
	}
}

func TestAutotuner(t *testing.T) {
	const (
		rtt   = 10 * time.Millisecond
		start = 128 << 10
		max   = 6 << 20
	)
	// reads feeds a reader that reads perRTT(size) bytes each round trip,
	// in four equal chunks, for rounds round trips, and returns the buffer
	// size after each round trip.
	reads := func(a *Autotuner, rtt time.Duration, rounds int, perRTT func(size int) int) []int {
		size := start
		now := time.Duration(0)
		var sizes []int
		for r := 0; r < rounds; r++ {
			n := perRTT(size)
			for q := 0; q < 4; q++ {
				now += 10 * time.Millisecond / 4 // the reads' own clock: 10 ms per round
				if s := a.OnRead(n/4, now, rtt, size); s > 0 {
					if s <= size {
						t.Fatalf("OnRead returned %d with the buffer at %d: not growth", s, size)
					}
					size = s
				}
			}
			sizes = append(sizes, size)
		}
		return sizes
	}

	t.Run("reader draining the whole buffer each RTT doubles it each RTT up to Max", func(t *testing.T) {
		a := &Autotuner{Max: max}
		sizes := reads(a, rtt, 12, func(size int) int { return size })
		want := start
		for i, s := range sizes {
			want = min(2*want, max)
			if s != want {
				t.Fatalf("after RTT %d the buffer is %d, want %d (sizes %v)", i+1, s, want, sizes)
			}
		}
		if sizes[len(sizes)-1] != max {
			t.Fatalf("never reached Max %d: %v", max, sizes)
		}
	})
	t.Run("reader draining four buffers per RTT grows to twice that rate, capped at Max", func(t *testing.T) {
		a := &Autotuner{Max: max}
		sizes := reads(a, rtt, 1, func(size int) int { return 4 * size })
		if sizes[0] != 8*start {
			t.Fatalf("buffer %d after reading 4x the buffer in one RTT, want %d (twice the per-RTT rate)", sizes[0], 8*start)
		}
		a = &Autotuner{Max: 300 << 10}
		sizes = reads(a, rtt, 1, func(size int) int { return 4 * size })
		if sizes[0] != 300<<10 {
			t.Fatalf("buffer %d, want it capped at Max %d", sizes[0], 300<<10)
		}
	})
	t.Run("slow reader never grows it", func(t *testing.T) {
		a := &Autotuner{Max: max}
		for _, sizes := range [][]int{
			reads(a, rtt, 200, func(size int) int { return size / 4 }),
			reads(&Autotuner{Max: max}, rtt, 200, func(size int) int { return size / 2 }),
			reads(&Autotuner{Max: max}, rtt, 200, func(size int) int { return 1000 }),
		} {
			if got := sizes[len(sizes)-1]; got != start {
				t.Fatalf("slow reader grew the buffer to %d", got)
			}
		}
	})
	t.Run("rtt 0 means no growth", func(t *testing.T) {
		a := &Autotuner{Max: max}
		sizes := reads(a, 0, 50, func(size int) int { return 4 * size })
		if got := sizes[len(sizes)-1]; got != start {
			t.Fatalf("grew to %d with no RTT estimate", got)
		}
	})
	t.Run("Max at or below the size means no growth", func(t *testing.T) {
		a := &Autotuner{Max: start}
		sizes := reads(a, rtt, 10, func(size int) int { return 4 * size })
		if got := sizes[len(sizes)-1]; got != start {
			t.Fatalf("grew to %d past Max", got)
		}
		var off Autotuner // Max 0: autotuning off
		if s := off.OnRead(1<<20, time.Second, rtt, start); s != 0 {
			t.Fatalf("Max 0 grew to %d", s)
		}
	})
	t.Run("a period spanning several RTTs is normalised", func(t *testing.T) {
		// A whole buffer read over 4 RTTs is a quarter buffer per RTT:
		// no growth (without normalising it would look like a full one).
		a := &Autotuner{Max: max}
		if s := a.OnRead(start, 4*rtt, rtt, start); s != 0 {
			t.Fatalf("one buffer read over 4 RTTs grew the buffer to %d", s)
		}
		// Four buffers over 4 RTTs is one per RTT: double.
		a = &Autotuner{Max: max}
		if s := a.OnRead(4*start, 4*rtt, rtt, start); s != 2*start {
			t.Fatalf("four buffers read over 4 RTTs: buffer %d, want %d", s, 2*start)
		}
	})
	t.Run("reads within one RTT accumulate", func(t *testing.T) {
		a := &Autotuner{Max: max}
		a.OnRead(0, 100*rtt, rtt, start) // opens a period at 100 RTT (elapsed >= rtt)
		now := 100 * rtt
		for i := 0; i < 7; i++ {
			now += rtt / 8
			if s := a.OnRead(start/8, now, rtt, start); s != 0 {
				t.Fatalf("grew to %d before an RTT passed", s)
			}
		}
		now += rtt / 8
		if s := a.OnRead(start/8, now, rtt, start); s != 2*start {
			t.Fatalf("a whole buffer read in eight reads within one RTT: grew to %d, want %d", s, 2*start)
		}
	})
}

// TestWindowUpdateDue: a read earns an ACK of its own only when the
// window the peer has left is at most half the buffer and the new one at
// least twice it; a shut window always earns one.
func TestWindowUpdateDue(t *testing.T) {
	const buf = 65536
	cases := []struct {
		shown, wnd int
		want       bool
	}{
		{0, 1460, true},       // shut window opened: tell the sender now
		{0, 0, false},         // nothing to announce
		{1000, 2000, true},    // doubled
		{1000, 1999, false},   // not quite
		{32768, 65536, true},  // exactly half left, now all of it
		{32769, 65536, false}, // more than half left: rides on the next ACK
		{61535, 65535, false}, // a small read on a busy connection
		{20000, 20000, false}, // nothing freed
		{30000, 20000, false}, // shrinking is never announced by a read
	}
	for _, c := range cases {
		if got := WindowUpdateDue(c.shown, c.wnd, buf); got != c.want {
			t.Errorf("WindowUpdateDue(%d, %d, %d) = %v, want %v", c.shown, c.wnd, buf, got, c.want)
		}
	}
}
