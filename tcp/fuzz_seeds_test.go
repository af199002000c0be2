package tcp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The seed corpora of FuzzConn and FuzzConnPair are written as programs
// here, so each seed says what it is; the files under testdata/fuzz (which
// `go test` runs as regular tests, and `go test -fuzz` starts from) are
// generated from them: go test ./tcp -run TestFuzzSeedsUpToDate -update.

// fuzzSeed is one named seed input.
type fuzzSeed struct {
	name string
	data []byte
}

// connProg builds a FuzzConn input (see runConnFuzz and connFuzz.step).
type connProg struct{ b []byte }

func (p *connProg) put(v ...byte) *connProg { p.b = append(p.b, v...); return p }
func (p *connProg) u16(v int) *connProg {
	p.b = binary.BigEndian.AppendUint16(p.b, uint16(v))
	return p
}
func (p *connProg) u32(v uint32) *connProg { p.b = binary.BigEndian.AppendUint32(p.b, v); return p }

// Configs for fuzzConfig: bits, RcvBuf, SndBuf, MSS, misc choices.
var (
	cfgDefault  = [5]byte{}
	cfgPlain    = [5]byte{1 | 2 | 4, 3, 3, 3, 0}       // no SACK, timestamps or window scaling; 64 KiB buffers
	cfgTiny     = [5]byte{8 | 16, 1, 2, 1, 0}          // NoDelay, fixed 300-byte receive buffer, 1000-byte send buffer, MSS 88
	cfgKeepLive = [5]byte{0, 0, 0, 0, 1 | 2<<2 | 1<<4} // keepalive 2 s, FIN-WAIT-2 timeout 3 s, MSL 1 s
)

// header: mode 0 active, 1 passive, 2 cookie. The peer's SYN offers
// every option (MSS 1460, shift 7, SACK, timestamps) with window 65535.
func (p *connProg) header(mode byte, cfg [5]byte) *connProg {
	p.put(mode).put(cfg[:]...).u32(0x10000000).u32(0x20000000).u16(1000)
	return p.put(1 | 2 | 4 | 8).u16(1460).put(7).u16(65535).u32(100)
}

// Selectors for segment's seq and ack (fuzzSeq): the first base is
// RCV.NXT for seq and SND.MAX for ack; the second the peer's ISN and
// SND.UNA.
const (
	selFirst  = 0
	selSecond = 1
)

// Options for segment: none, timestamps (peer clock +1, echoing ours),
// the SYN options, timestamps with SACK blocks (offsets from SND.UNA).
var (
	optNone = []byte{0}
	optTS   = []byte{8, 1}
	optSyn  = []byte{1 | 2 | 4 | 8, 0x05, 0xb4, 7, 1}
)

func optTSSACK(blocks ...[2]int) []byte {
	o := []byte{8 | 16, 1, byte(len(blocks))}
	for _, b := range blocks {
		o = binary.BigEndian.AppendUint16(o, uint16(b[0]))
		o = binary.BigEndian.AppendUint16(o, uint16(b[1]))
	}
	return o
}

func (p *connProg) segment(flags Flags, seqSel byte, seqOff int, ackSel byte, ackOff int, win int, opts []byte, n int) *connProg {
	p.put(opSegment, byte(flags), seqSel).u16(seqOff).put(ackSel).u16(ackOff).u16(win)
	return p.put(opts...).u16(n)
}

// ack is the well-behaved peer's segment: at RCV.NXT, acknowledging
// everything sent, with timestamps.
func (p *connProg) ack(flags Flags, win, n int) *connProg {
	return p.segment(flags|FlagACK, selFirst, 0, selFirst, 0, win, optTS, n)
}

func (p *connProg) op(op byte, args ...byte) *connProg { return p.put(op).put(args...) }
func (p *connProg) read(n int) *connProg               { return p.put(opRead).u16(n - 1) }
func (p *connProg) write(n int) *connProg              { return p.put(opWrite).u16(n) }
func (p *connProg) advance(unit byte, n int) *connProg {
	return p.put(opAdvance, unit).u16(n)
}

const (
	unitMs  = 1
	unitSec = 3
)

func connSeeds() []fuzzSeed {
	var seeds []fuzzSeed
	add := func(name string, p *connProg) { seeds = append(seeds, fuzzSeed{name, p.b}) }

	// Active open, data both ways, active close through TIME-WAIT.
	add("active-data-close", new(connProg).header(0, cfgDefault).
		segment(FlagSYN|FlagACK, selSecond, 0, selFirst, 0, 65535, optSyn, 0).
		write(3000).ack(0, 2000, 0).
		ack(FlagPSH, 2000, 500).read(1000).
		op(opClose).ack(FlagFIN, 2000, 0).
		advance(unitSec, 61))

	// Passive open, a window of data with one segment lost: SACKs,
	// duplicate ACKs, fast retransmit, then an RTO, then all acknowledged.
	add("passive-loss-sack", new(connProg).header(1, cfgDefault).
		ack(0, 4000, 0).write(30000).
		segment(FlagACK, selFirst, 0, selSecond, 1448, 4000, optTSSACK([2]int{2896, 1448}), 0).
		segment(FlagACK, selFirst, 0, selSecond, 0, 4000, optTSSACK([2]int{2896, 2896}), 0).
		segment(FlagACK, selFirst, 0, selSecond, 0, 4000, optTSSACK([2]int{2896, 4344}), 0).
		advance(unitMs, 50).op(opNextTimer).op(opNextTimer).
		ack(0, 4000, 0).op(opNextTimer).ack(0, 4000, 0).
		op(opCloseWrite).ack(0, 4000, 0).ack(FlagFIN, 4000, 0))

	// A peer with a shut window: persist probes with backoff, then the
	// window opens and everything goes.
	add("zero-window", new(connProg).header(0, cfgPlain).
		segment(FlagSYN|FlagACK, selSecond, 0, selFirst, 0, 0, optSyn, 0).
		write(5000).op(opNextTimer).op(opNextTimer).op(opNextTimer).
		segment(FlagACK, selFirst, 0, selFirst, 0, 0, optNone, 0).op(opNextTimer).
		segment(FlagACK, selFirst, 0, selFirst, 0, 65535, optNone, 0).
		segment(FlagACK, selFirst, 0, selFirst, 0, 65535, optNone, 0).
		op(opClose).segment(FlagACK|FlagFIN, selFirst, 0, selFirst, 0, 65535, optNone, 0).
		advance(unitSec, 120))

	// Out-of-order arrival: a segment beyond a gap, the gap filled, reads
	// through a small fixed buffer, the peer's FIN beyond a gap.
	add("reassembly-tiny-buffers", new(connProg).header(1, cfgTiny).
		ack(0, 1000, 0).
		segment(FlagACK, selFirst, 80, selFirst, 0, 1000, optTS, 80).
		segment(FlagACK|FlagFIN, selFirst, 200, selFirst, 0, 1000, optTS, 50).
		segment(FlagACK, selFirst, 0, selFirst, 0, 1000, optTS, 80).
		read(100).segment(FlagACK, selFirst, 0, selFirst, 0, 1000, optTS, 40).
		read(300).read(300).write(2500).op(opNextTimer).ack(0, 1000, 0).
		op(opSetRcvBuf).u16(1).op(opClose).ack(0, 1000, 0).advance(unitSec, 200))

	// A hostile peer: RST and SYN inside the window (challenge ACKs), an
	// ACK for unsent data, an old timestamp (PAWS), data before the
	// window, ICMP errors (fragmentation needed, port unreachable), then
	// keepalives go unanswered until the connection gives up.
	add("hostile-then-silent", new(connProg).header(0, cfgKeepLive).
		segment(FlagSYN|FlagACK, selSecond, 0, selFirst, 0, 65535, optSyn, 0).
		segment(FlagRST, selFirst, 5, selFirst, 0, 0, optNone, 0).
		segment(FlagSYN, selFirst, 3, selFirst, 0, 100, optNone, 0).
		segment(FlagACK, selFirst, 0, selFirst, 5000, 100, optTS, 0).
		segment(FlagACK, selFirst, 0, selFirst, 0, 100, []byte{8, 0x80, 0, 0, 0, 0, 0, 0, 0, 0}, 10).
		segment(FlagACK, selFirst, -3000, selFirst, 0, 100, optTS, 1000).
		write(1000).op(opICMP, 2, 0).u16(0).u16(576).op(opICMP, 1, 0).u16(0).u16(0).
		ack(0, 65535, 0).ack(0, 65535, 0).op(opSetKeepAlive, 1).
		op(opNextTimer).op(opNextTimer).op(opNextTimer).op(opNextTimer).op(opNextTimer).op(opNextTimer).
		op(opNextTimer).op(opNextTimer).op(opNextTimer).op(opNextTimer).op(opNextTimer).op(opNextTimer))

	// Simultaneous open (the peer's SYN+ACK is unacceptable in
	// SYN-RECEIVED and answered with an ACK; the peer's ACK completes
	// it) and simultaneous close.
	add("simultaneous", new(connProg).header(0, cfgDefault).
		segment(FlagSYN, selSecond, 0, selFirst, 0, 65535, optSyn, 0).
		segment(FlagSYN|FlagACK, selSecond, 0, selFirst, 0, 65535, optTS, 0).
		ack(0, 65535, 0).write(100).op(opCloseWrite).
		segment(FlagACK|FlagFIN, selFirst, 0, selSecond, 0, 65535, optTS, 0).
		ack(0, 65535, 0).advance(unitSec, 70))

	// A connection born from a SYN cookie, data, then the application
	// aborts; and SetSndBuf shrinking under queued data.
	add("cookie-abort", new(connProg).header(2, cfgDefault).
		ack(FlagPSH, 5000, 300).write(20000).op(opSetSndBuf).u16(10).
		read(50).op(opSetNoDelay, 1).op(opCloseRead).ack(0, 5000, 100).
		op(opAbort).advance(unitSec, 5))
	return seeds
}

// pairProg builds a FuzzConnPair input (see runPairFuzz).
type pairProg struct{ connProg }

func newPairProg(ca, cb [5]byte) *pairProg {
	p := &pairProg{}
	p.put(ca[:]...).put(cb[:]...).u32(1000).u32(0xfffff000) // b's ISN close to the wrap
	return p
}

func (p *pairProg) deliver(from byte, fates ...byte) *pairProg {
	for _, f := range fates {
		p.put(from, f)
	}
	return p
}

func (p *pairProg) op(v ...byte) *pairProg { p.put(v...); return p }
func (p *pairProg) arg16(v int) *pairProg  { p.u16(v); return p }

func (p *pairProg) write(side byte, n int) *pairProg { p.put(2 + side).u16(n); return p }
func (p *pairProg) read(side byte, n int) *pairProg  { p.put(4 + side).u16(n - 1); return p }

func pairSeeds() []fuzzSeed {
	var seeds []fuzzSeed
	add := func(name string, p *pairProg) { seeds = append(seeds, fuzzSeed{name, p.b}) }
	const a, b = 0, 1
	const deliver, drop, dup, back = 0, 1, 2, 3

	// Handshake, data both ways, everything delivered.
	add("clean", newPairProg(cfgDefault, cfgDefault).
		deliver(b, deliver).deliver(a, deliver).
		write(a, 50000).write(b, 20000).
		deliver(a, deliver, deliver, deliver, deliver).deliver(b, deliver, deliver))

	// Loss, duplication and reordering in both directions, with the
	// clock moving so timers fire.
	add("lossy", newPairProg(cfgDefault, [5]byte{32}).
		deliver(b, deliver).deliver(a, deliver).write(a, 60000).
		deliver(a, drop, deliver, back, dup, deliver, drop, deliver, deliver).
		deliver(b, deliver, dup, drop, deliver).
		read(b, 10000).write(b, 3000).
		deliver(a, deliver, deliver, back, deliver).deliver(b, drop, deliver).
		op(8, unitMs).arg16(300).deliver(a, deliver, drop, deliver).deliver(b, deliver, deliver).
		op(9).deliver(a, deliver, deliver).deliver(b, back, deliver))

	// Small buffers and segments, no SACK or timestamps, Nagle off on
	// one side, a buffer change mid-transfer.
	add("small", newPairProg(cfgTiny, cfgPlain).
		deliver(b, deliver).deliver(a, deliver).write(a, 3000).write(b, 3000).
		deliver(a, deliver, drop, deliver).deliver(b, deliver, deliver).read(b, 500).
		op(7, 2|b).arg16(100).op(10, a, 1).deliver(a, deliver, deliver).
		op(9).deliver(b, deliver, deliver))

	// The server half-closes first; the client keeps sending into it; the
	// handshake's SYN+ACK is lost first.
	add("half-close", newPairProg(cfgDefault, cfgDefault).
		deliver(b, drop).op(9).deliver(b, deliver).deliver(a, deliver).
		op(6, b).deliver(b, deliver).deliver(a, deliver).
		write(a, 20000).deliver(a, deliver, deliver, deliver).read(b, 20000))

	// The client half-closes while the server's small buffer is full and
	// its window shut: the FIN waits for the window.
	add("close-into-zero-window", newPairProg(cfgDefault, cfgTiny).
		deliver(b, deliver).deliver(a, deliver).write(a, 300).
		deliver(a, deliver, deliver, deliver, deliver).deliver(b, deliver, deliver).op(9).deliver(b, deliver, deliver).
		op(6, a).deliver(a, deliver).deliver(b, deliver).op(9).deliver(a, deliver).deliver(b, deliver))
	return seeds
}

// TestFuzzSeedsUpToDate checks that testdata/fuzz holds the seeds built
// above (with -update, writes them).
func TestFuzzSeedsUpToDate(t *testing.T) {
	for target, seeds := range map[string][]fuzzSeed{"FuzzConn": connSeeds(), "FuzzConnPair": pairSeeds()} {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, s := range seeds {
			want := []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s.data))))
			path := filepath.Join(dir, "seed-"+s.name)
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s is missing or stale (err %v): go test ./tcp -run TestFuzzSeedsUpToDate -update", path, err)
			}
		}
	}
}
