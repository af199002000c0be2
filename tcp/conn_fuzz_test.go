package tcp

import (
	"errors"
	"fmt"
	"github.com/tund-project/tund/window"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

// This file fuzzes the connection core: FuzzConn drives one Conn with
// arbitrary segments from an omniscient, misbehaving peer, application
// calls, ICMP errors and time; FuzzConnPair runs two Conns over a lossy,
// duplicating, reordering wire. After every step connChecker checks the
// invariants a correct TCP keeps whatever its peer does. The input formats
// are documented at the decoders (connFuzz.step, pairFuzz.step) and built
// by connProg for the seed corpora in testdata/fuzz.

// fuzzInput reads the fuzz input; past its end every read gives zeros and
// done reports true.
type fuzzInput struct{ b []byte }

func (r *fuzzInput) done() bool { return len(r.b) == 0 }

func (r *fuzzInput) u8() byte {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *fuzzInput) u16() uint16 { return uint16(r.u8())<<8 | uint16(r.u8()) }
func (r *fuzzInput) u32() uint32 { return uint32(r.u16())<<16 | uint32(r.u16()) }

// peerByte is the byte a fuzzed peer sends at sequence number s, whatever
// segment carries it: any correct receiver delivers exactly these bytes.
func peerByte(s Seq) byte { return byte(uint32(s) * 2654435761 >> 24) }

// streamByte is the k-th byte an application writes in the fuzz tests;
// side tells the two writers of a pair apart.
func streamByte(k int, side byte) byte { return byte(k*7+k>>9) ^ side }

// fuzzConfig decodes a connection configuration (5 bytes).
//
//	bits: 1 NoSACK, 2 NoTimestamps, 4 NoWScale, 8 NoDelay, 16 NoAutoTune,
//	      32 CUBIC, 64 one challenge ACK a second, 128 no delayed ACKs
//	rcv:  RcvBuf choice, snd: SndBuf choice, mss: MSS choice
//	misc: 2 bits each: keepalive, FIN-WAIT-2 timeout, MSL, retries
//
// The choice bytes' high values pick the limits, so that seeds written
// with small values keep their meaning: rcv/6 a memory budget of the
// connection's own (none, 64 KiB, 1 MiB), snd/6 OrphanRetries, mss/5
// PMTUExpire and whether ACKs for unacceptable segments are rate-limited.
func fuzzConfig(r *fuzzInput) Config {
	bits, rcv, snd, mss, misc := r.u8(), r.u8(), r.u8(), r.u8(), r.u8()
	cfg := Config{
		NoSACK: bits&1 != 0, NoTimestamps: bits&2 != 0, NoWScale: bits&4 != 0,
		NoDelay: bits&8 != 0, NoAutoTune: bits&16 != 0,
		RcvBuf: [...]int{0, 300, 4096, 65535, 200000, 1 << 20}[rcv%6],
		SndBuf: [...]int{0, 1, 1000, 16384, 100000, 1 << 20}[snd%6],
		MSS:    [...]int{0, 88, 536, 1460, 8960}[mss%5],
	}
	if bits&32 != 0 {
		cfg.CongestionControl = "cubic"
	}
	if bits&64 != 0 {
		cfg.ChallengeACKLimit = 1
	}
	if bits&128 != 0 {
		cfg.DelayedAck = -1
	}
	cfg.KeepAlive = [...]time.Duration{0, 2 * time.Second, 75 * time.Second, 2 * time.Hour}[misc&3]
	cfg.FinTimeout = [...]time.Duration{0, -1, 3 * time.Second, 0}[misc>>2&3]
	cfg.MSL = [...]time.Duration{0, time.Second, time.Minute, 0}[misc>>4&3]
	cfg.MaxRetries = [...]int{0, 3, 6, 15}[misc>>6&3]
	if budget := [...]int64{0, 64 << 10, 1 << 20}[int(rcv)/6%3]; budget != 0 {
		cfg.Memory = window.NewMemory(budget)
	}
	cfg.OrphanRetries = [...]int{0, 1, 3, -1}[int(snd)/6%4]
	// A floor under 200 ms takes the low-floor rules (delayed-ACK wait,
	// give-up by time).
	cfg.MinRTO = [...]time.Duration{0, 0, 5 * time.Millisecond, time.Millisecond}[int(snd)/24%4]
	cfg.PMTUExpire = [...]time.Duration{0, 5 * time.Second, -1}[int(mss)/5%3]
	if int(mss)/15%2 == 1 {
		cfg.InvalidAckInterval = -1
	}
	return cfg
}

// coverage is the sequence space a peer's segments carried, relative to
// the peer's ISN once known: what the receiver may acknowledge at most.
type coverage struct {
	raw []SACKBlock // every range, absolute, in arrival order

	// Derived for one irs: the covered prefix from irs, and the ranges
	// beyond it not yet joined to it (offsets from irs).
	irs     Seq
	valid   bool
	next    int // raw[:next] are folded in
	prefix  uint64
	pending [][2]uint64
}

func (cv *coverage) add(start Seq, n int) {
	if n > 0 {
		cv.raw = append(cv.raw, SACKBlock{start, start.Add(n)})
	}
}

// covered returns how far from irs the peer's sequence space is covered
// without a gap.
func (cv *coverage) covered(irs Seq) uint64 {
	if !cv.valid || cv.irs != irs {
		*cv = coverage{raw: cv.raw, irs: irs, valid: true}
	}
	for ; cv.next < len(cv.raw); cv.next++ {
		b := cv.raw[cv.next]
		o := uint64(uint32(b.Start - irs))
		e := o + uint64(uint32(b.End-b.Start))
		if e > 1<<32 { // wraps past irs again: two pieces
			cv.pending = append(cv.pending, [2]uint64{0, e - 1<<32})
			e = 1 << 32
		}
		cv.pending = append(cv.pending, [2]uint64{o, e})
	}
	for grew := true; grew; {
		grew = false
		for i := 0; i < len(cv.pending); i++ {
			if p := cv.pending[i]; p[0] <= cv.prefix {
				cv.prefix = max(cv.prefix, p[1])
				cv.pending[i] = cv.pending[len(cv.pending)-1]
				cv.pending = cv.pending[:len(cv.pending)-1]
				i--
				grew = true
			}
		}
	}
	return cv.prefix
}

// connChecker watches one Conn: every segment it emits (onEmit), every
// application call (read, write) and the state after every step (check).
type connChecker struct {
	t    *testing.T
	name string
	c    *Conn
	now  *time.Duration

	side    byte             // streamByte side of this connection's writer
	readPat func(k int) byte // the k-th byte Read must return
	peer    coverage         // what the peer sent
	cfgMSS  int              // our MSS as configured
	peerMSS int              // the MSS the peer's SYN announced (536 without the option)

	traced   State // the state the trace hook last reported
	written  int   // bytes Write accepted
	writing  int   // bytes offered to the Write in progress
	read     int   // bytes Read returned
	eof      bool  // Read returned io.EOF
	readShut bool  // CloseRead was called
	// lateReset: an RST ended the connection in CLOSING or LAST-ACK.
	lateReset bool
	closed    bool // Close was called
	sndCap    int  // bytes queued when SetSndBuf shrank the buffer below them
	edge      Seq  // furthest right window edge advertised (edgeSet)
	edgeSet   bool
	tsVal     uint32 // the latest TSval we sent, for the peer to echo
	emitted   int    // segments emitted in this step
	history   *history
}

// history is the last events of a fuzz run, for failure messages; a
// segment is formatted only if they are printed.
type history struct {
	ev   [64]histEvent
	next int
}

type histEvent struct {
	text string
	seg  Segment // when text ends in "> "; Payload kept for its length only
}

func (hs *history) add(text string, seg *Segment) {
	e := &hs.ev[hs.next%len(hs.ev)]
	e.text, e.seg = text, Segment{}
	if seg != nil {
		e.seg = *seg
	}
	hs.next++
}

func (hs *history) String() string {
	var b strings.Builder
	for i := max(0, hs.next-len(hs.ev)); i < hs.next; i++ {
		e := &hs.ev[i%len(hs.ev)]
		b.WriteString(e.text)
		if strings.HasSuffix(e.text, "> ") {
			b.WriteString(e.seg.String())
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func newChecker(t *testing.T, name string, now *time.Duration, side byte, cfg Config) *connChecker {
	return &connChecker{t: t, name: name, now: now, side: side, cfgMSS: cfg.withDefaults().MSS, peerMSS: 536, history: new(history)}
}

// fatalf fails with the last segments for context.
func (h *connChecker) fatalf(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("%s: %s\nlast events:\n%s", h.name, fmt.Sprintf(format, args...), h.history)
}

// note keeps a short history of what happened, for failure messages.
func (h *connChecker) note(s string) { h.history.add(s, nil) }

// noteSeg records a segment sent by who.
func (h *connChecker) noteSeg(who string, seg *Segment) { h.history.add(who+" > ", seg) }

// trace is the Conn's Trace hook: each edge must leave the state the
// previous one entered.
func (h *connChecker) trace(tr Transition, _ *Segment) {
	if tr.From != h.traced {
		h.fatalf("transition %v --%v--> %v while in %v", tr.From, tr.On, tr.To, h.traced)
	}
	h.traced = tr.To
	if tr.On == RcvRst && (tr.From == Closing || tr.From == LastAck) {
		h.lateReset = true
	}
	h.note(fmt.Sprintf("   %s: %v --%v--> %v", h.name, tr.From, tr.On, tr.To))
}

// healthyEnd reports whether the error a connection ended with is one a
// healed wire can still produce: an RST in CLOSING or LAST-ACK, sent by a
// peer whose TIME-WAIT (short in these tests) ended before our last FIN
// retransmission reached it. Everything was delivered by then.
func (h *connChecker) healthyEnd(err error) bool {
	return h.lateReset && errors.Is(err, syscall.ECONNRESET)
}

// onEmit checks a segment the Conn hands its Sender.
func (h *connChecker) onEmit(seg *Segment) {
	h.t.Helper()
	h.noteSeg(h.name, seg)
	h.emitted++
	if h.emitted > 5000 {
		h.fatalf("more than 5000 segments in one step")
	}
	// Well-formed: it marshals and parses back to itself.
	marshalRoundTrip(h.t, seg)
	c := h.c
	if c == nil {
		return // still inside NewActive/NewPassive
	}
	if seg.SrcPort != c.LocalPort || seg.DstPort != c.RemotePort {
		h.fatalf("ports %d > %d on a %d > %d connection", seg.SrcPort, seg.DstPort, c.LocalPort, c.RemotePort)
	}
	if c.state == Closed {
		h.fatalf("a CLOSED connection sent %s", seg.String())
	}
	if seg.Options.HasTS {
		h.tsVal = seg.Options.TSVal
	}
	if seg.Flags.Has(FlagSYN) {
		if seg.Seq != c.iss || len(seg.Payload) > 0 || seg.Flags.Has(FlagFIN) || seg.Flags.Has(FlagRST) {
			h.fatalf("bad SYN %s (iss %d)", seg.String(), uint32(c.iss))
		}
	}
	// Never acknowledge what the peer did not send (RFC 9293 §3.4: the
	// ACK is the next sequence number expected).
	if seg.Flags.Has(FlagACK) {
		if off := uint64(uint32(seg.Ack - c.irs)); off > h.peer.covered(c.irs) {
			h.fatalf("ACK %d is %d past the peer's ISN %d, but the peer's segments only cover %d",
				uint32(seg.Ack), off, uint32(c.irs), h.peer.covered(c.irs))
		}
	}
	if seg.Flags.Has(FlagRST) {
		if len(seg.Payload) > 0 {
			h.fatalf("RST with data")
		}
		return
	}
	// The right edge of the window we offer never moves left by a whole
	// scale unit (RFC 9293 §3.8.6, RFC 7323 §2.4).
	if seg.Flags.Has(FlagACK) && !seg.Flags.Has(FlagSYN) {
		unit := 1 << c.rcvWScale
		edge := seg.Ack.Add(int(seg.Window) * unit)
		if h.edgeSet && edge.Add(unit-1).LessThan(h.edge) {
			h.fatalf("window shrank: right edge %d after %d", uint32(edge), uint32(h.edge))
		}
		if !h.edgeSet || edge.GreaterThan(h.edge) {
			h.edge, h.edgeSet = edge, true
		}
	}
	// Data: exactly the bytes the application wrote at that offset,
	// after the SYN, no more than the peer's MSS allows with our options
	// (RFC 9293 §3.7.1, RFC 6691), and new data only within the peer's
	// window (RFC 9293 §3.8.6).
	if n := len(seg.Payload); n > 0 {
		if c.state == SynSent || c.state == Listen {
			h.fatalf("data before the handshake: %s", seg.String())
		}
		off := seg.Seq.Sub(c.iss + 1)
		if off < 0 || off+n > h.written+h.writing {
			h.fatalf("data at stream offset %d+%d, but %d bytes were written", off, n, h.written+h.writing)
		}
		for i, b := range seg.Payload {
			if want := streamByte(off+i, h.side); b != want {
				h.fatalf("byte %d of the stream sent as %#x, written as %#x", off+i, b, want)
			}
		}
		if ol := seg.HeaderLen() - HeaderLen; n+ol > c.sndMSS {
			h.fatalf("%d bytes of data and %d of options exceed the send MSS %d", n, ol, c.sndMSS)
		}
		if c.sndMSS > min(h.cfgMSS, max(h.peerMSS, 64)) {
			h.fatalf("send MSS %d above ours (%d) and the peer's (%d)", c.sndMSS, h.cfgMSS, h.peerMSS)
		}
		if end := seg.Seq.Add(n); end.GreaterThan(c.sndMax) && end.GreaterThan(c.sndUna.Add(c.sndWnd)) {
			h.fatalf("new data to %d beyond the peer's window %d+%d", uint32(end), uint32(c.sndUna), c.sndWnd)
		}
	}
	if seg.Flags.Has(FlagFIN) {
		if !c.finQueued {
			h.fatalf("FIN before the application closed")
		}
		if off := seg.Seq.Add(len(seg.Payload)).Sub(c.iss + 1); off != h.written {
			h.fatalf("FIN at stream offset %d after %d bytes written", off, h.written)
		}
		// A FIN alone is new sequence space and needs room in the window
		// (a receiver drops it at a zero window); riding on data it may
		// sit at the right edge, as receivers accept.
		if len(seg.Payload) == 0 && seg.Seq.GreaterThanEq(c.sndMax) && !seg.Seq.LessThan(c.sndUna.Add(c.sndWnd)) {
			h.fatalf("FIN at %d beyond the peer's window %d+%d", uint32(seg.Seq), uint32(c.sndUna), c.sndWnd)
		}
	}
}

// readable and writable are what the stack's blocked callers wait for.
type wakeState struct{ readable, writable bool }

func (h *connChecker) wake() wakeState {
	return wakeState{h.c.Readable(), h.c.Writable()}
}

// check verifies the invariants after a step. fromPeer is set for steps
// the stack takes on its own (segments, timers, ICMP), after which every
// blocked caller that can now proceed must have been told.
func (h *connChecker) check(what string, before wakeState, stateBefore State, fromPeer bool) {
	h.t.Helper()
	c := h.c
	now := *h.now
	ev := c.TakeEvents()
	h.emitted = 0
	if c.state >= numStates {
		h.fatalf("after %s: state %d is none of the eleven", what, c.state)
	}
	if c.state != h.traced {
		h.fatalf("after %s: state %v, but the last transition traced led to %v", what, c.state, h.traced)
	}
	if fromPeer {
		after := h.wake()
		if c.state != stateBefore && ev&EvState == 0 {
			h.fatalf("after %s: %v -> %v without EvState", what, stateBefore, c.state)
		}
		if after.readable && !before.readable && ev&EvReadable == 0 {
			h.fatalf("after %s: readable now, but no EvReadable (a blocked Read would sleep on)", what)
		}
		if after.writable && !before.writable && ev&EvWritable == 0 {
			h.fatalf("after %s: writable now, but no EvWritable (a blocked Write would sleep on)", what)
		}
	}
	// Ring memory: a budget of the connection's own is charged exactly
	// what its two rings hold allocated.
	if m := c.cfg.Memory; m != nil && m.Used() != int64(c.snd.Cap()+c.rcv.Cap()) {
		h.fatalf("after %s: memory budget says %d bytes, the rings hold %d + %d", what, m.Used(), c.snd.Cap(), c.rcv.Cap())
	}
	// Timers: every deadline is unset or still ahead (the earliest is),
	// and none is armed on a CLOSED connection.
	if name, at := c.nextTimer(); at != 0 && (at <= now || c.state == Closed) {
		h.fatalf("after %s: %s timer at %v in %v, now %v", what, name, at, c.state, now)
	}
	// Send sequence space (RFC 9293 §3.3.1): SND.UNA =< SND.NXT =< SND.MAX,
	// nothing before the ISS, nothing past what the application wrote.
	if c.sndNxt.LessThan(c.sndUna) || c.sndMax.LessThan(c.sndNxt) {
		h.fatalf("after %s: SND.UNA %d SND.NXT %d SND.MAX %d out of order", what, uint32(c.sndUna), uint32(c.sndNxt), uint32(c.sndMax))
	}
	if c.sndUna.LessThan(c.iss) {
		h.fatalf("after %s: SND.UNA %d before ISS %d", what, uint32(c.sndUna), uint32(c.iss))
	}
	fin := 0
	if c.finQueued {
		fin = 1
	}
	if sent := c.sndMax.Sub(c.iss); sent > 1+h.written+fin {
		h.fatalf("after %s: %d sequence numbers sent for a SYN, %d bytes and %d FIN", what, sent, h.written, fin)
	}
	if !c.synAcked && c.sndUna != c.iss {
		h.fatalf("after %s: SND.UNA %d moved before the SYN was acknowledged", what, uint32(c.sndUna))
	}
	if c.state == SynSent && (c.sndMax != c.iss+1 || c.sndUna != c.iss) {
		h.fatalf("after %s: SYN-SENT with SND.UNA %d SND.MAX %d", what, uint32(c.sndUna), uint32(c.sndMax))
	}
	// The send buffer holds exactly the bytes written and not yet
	// acknowledged, within its limit (or what it held when the limit
	// was lowered under it: SetSndBuf keeps queued bytes).
	if c.synAcked && c.state != Closed && c.state != TimeWait {
		acked := min(max(c.sndUna.Sub(c.iss+1), 0), h.written)
		if c.snd.Len() != h.written-acked {
			h.fatalf("after %s: send buffer holds %d bytes, want %d written - %d acknowledged", what, c.snd.Len(), h.written, acked)
		}
	}
	if c.snd.Len() > max(c.snd.Limit(), h.sndCap) {
		h.fatalf("after %s: send buffer holds %d bytes, limit %d", what, c.snd.Len(), c.snd.Limit())
	}
	if c.snd.Len() <= c.snd.Limit() {
		h.sndCap = 0
	}
	// The states say what has happened to the FINs.
	switch c.state {
	case FinWait2, TimeWait:
		if !c.finQueued || c.sndUna.Sub(c.iss) != h.written+2 {
			h.fatalf("after %s: %v but our FIN is not acknowledged (SND.UNA %d, ISS %d, %d written)",
				what, c.state, uint32(c.sndUna), uint32(c.iss), h.written)
		}
	}
	switch c.state {
	case CloseWait, Closing, LastAck, TimeWait:
		if !c.finRcvd {
			h.fatalf("after %s: %v without the peer's FIN", what, c.state)
		}
	}
	if c.state == TimeWait && (c.sndUna != c.sndMax || c.snd.Len() != 0) {
		h.fatalf("after %s: TIME-WAIT with data unacknowledged", what)
	}
	// Receive side, once the peer's ISN is known.
	if c.state == SynSent || c.state == Closed || c.state == Listen {
		return
	}
	if got, cov := uint64(uint32(c.rcvNxt-c.irs)), h.peer.covered(c.irs); got > cov {
		h.fatalf("after %s: RCV.NXT is %d past the peer's ISN, the peer's segments cover %d", what, got, cov)
	}
	adv := c.rcvAdvEdge.Sub(c.rcvNxt)
	if adv > 0xffff<<c.rcvWScale {
		h.fatalf("after %s: %d bytes promised, more than a window field can say (scale %d)", what, adv, c.rcvWScale)
	}
	// The ring keeps room for everything an offered window let the peer
	// send, even after SetRcvBuf shrank the buffer.
	if c.rcv.Limit() < c.rcv.Len()+adv {
		h.fatalf("after %s: receive ring limit %d < %d queued + %d offered", what, c.rcv.Limit(), c.rcv.Len(), adv)
	}
	if h.readShut {
		if c.rcv.Len() != 0 {
			h.fatalf("after %s: %d bytes kept after CloseRead", what, c.rcv.Len())
		}
	} else {
		inOrder := c.rcvNxt.Sub(c.irs + 1)
		if c.finRcvd {
			inOrder--
		}
		// After Close nobody reads: the bytes may be dropped, all of them.
		if n := c.rcv.Len(); n != inOrder-h.read && !(h.closed && n == 0) {
			h.fatalf("after %s: receive buffer holds %d bytes, want %d received in order - %d read", what, c.rcv.Len(), inOrder, h.read)
		}
	}
}

// doRead reads up to n bytes and checks them against the peer's stream.
func (h *connChecker) doRead(n int) {
	h.t.Helper()
	c := h.c
	buf := make([]byte, n)
	got, err := c.Read(buf, *h.now)
	if got < 0 || got > n || (got > 0 && err != nil) {
		h.fatalf("Read(%d) = %d, %v", n, got, err)
	}
	if h.readShut {
		if got > 0 || err != io.EOF {
			h.fatalf("Read after CloseRead = %d, %v; want EOF", got, err)
		}
		return
	}
	if h.eof && got > 0 {
		h.fatalf("Read returned %d bytes after io.EOF", got)
	}
	if err == io.EOF {
		h.eof = true
	}
	for i, b := range buf[:got] {
		if want := h.readPat(h.read + i); b != want {
			h.fatalf("stream byte %d read as %#x, the peer sent %#x", h.read+i, b, want)
		}
	}
	h.read += got
}

// doWrite writes n bytes of the pattern; Write accepts what fits.
func (h *connChecker) doWrite(n int) {
	h.t.Helper()
	c := h.c
	p := make([]byte, n)
	for i := range p {
		p[i] = streamByte(h.written+i, h.side)
	}
	free := c.snd.Free()
	failWith := c.err
	if failWith == nil && (!c.state.canSendData() || c.finQueued) {
		failWith = syscall.EPIPE
	}
	h.writing = n
	got, err := c.Write(p, *h.now)
	h.writing = 0
	switch {
	case failWith != nil:
		if got != 0 || !errors.Is(err, failWith) {
			h.fatalf("Write in %v = %d, %v; want 0, %v", c.state, got, err, failWith)
		}
	case err != nil || got != min(n, free):
		h.fatalf("Write(%d) with %d free = %d, %v", n, free, got, err)
	}
	h.written += got
}

// setSndBuf applies SetSndBuf, remembering bytes kept above a lower limit.
func (h *connChecker) setSndBuf(n int) {
	h.c.SetSndBuf(n)
	if l := h.c.snd.Len(); l > h.c.snd.Limit() {
		h.sndCap = l
	}
}

// closeRead applies CloseRead.
func (h *connChecker) closeRead() {
	h.c.CloseRead()
	h.readShut = true
}

// connFuzz is FuzzConn's harness: one Conn and an omniscient peer that
// sends what the input says, relative to the connection's real numbers.
type connFuzz struct {
	h       *connChecker
	c       *Conn
	now     time.Duration
	peerISS Seq
	peerTS  uint32 // the peer's timestamp clock
}

// fuzzSeq picks a sequence number: sel&3 chooses the base (0: the first
// choice, 1: the second, 2: the third, 3: four raw bytes), plus a signed
// 16-bit offset.
func (r *fuzzInput) fuzzSeq(a, b, c Seq) Seq {
	sel := r.u8()
	var base Seq
	switch sel & 3 {
	case 0:
		base = a
	case 1:
		base = b
	case 2:
		base = c
	case 3:
		base = Seq(r.u32())
	}
	return base.Add(int(int16(r.u16())))
}

// fuzzOptions decodes the options of an inbound segment: a mask (1 MSS
// +2 bytes, 2 window scale +1, 4 SACK-permitted, 8 timestamps +1 selector
// [+8 raw bytes when its top bit is set], 16 SACK: +1 count, then 4 bytes
// per block: offset and length from SND.UNA).
func (f *connFuzz) fuzzOptions(r *fuzzInput, o *Options) {
	mask := r.u8()
	if mask&1 != 0 {
		o.MSS = r.u16()
	}
	if mask&2 != 0 {
		o.HasWScale, o.WScale = true, int8(min(r.u8(), 14))
	}
	o.SACKPermitted = mask&4 != 0
	if mask&8 != 0 {
		o.HasTS = true
		sel := r.u8()
		if sel&0x80 != 0 {
			o.TSVal, o.TSEcr = r.u32(), r.u32()
		} else {
			f.peerTS += uint32(sel & 0x3f)
			o.TSVal = f.peerTS
			if sel&0x40 == 0 {
				o.TSEcr = f.h.tsVal
			}
		}
	}
	if mask&16 != 0 {
		o.NumSACK = int(r.u8() % (MaxSACKBlocks + 1))
		for i := 0; i < o.NumSACK; i++ {
			start := f.c.sndUna.Add(int(r.u16()))
			o.SACK[i] = SACKBlock{start, start.Add(int(r.u16()))}
		}
	}
}

// segment decodes an inbound segment: flags, seq (from RCV.NXT, the peer's
// ISN or our advertised right edge), ack (from SND.MAX, SND.UNA, SND.NXT),
// window, options, payload length. The payload is the peer's stream at its
// sequence numbers.
func (f *connFuzz) segment(r *fuzzInput) Segment {
	c := f.c
	seg := Segment{SrcPort: c.RemotePort, DstPort: c.LocalPort, Flags: Flags(r.u8())}
	rcvNxt := c.rcvNxt
	if c.state == SynSent {
		rcvNxt = f.peerISS
	}
	seg.Seq = r.fuzzSeq(rcvNxt, f.peerISS, c.rcvAdvEdge)
	seg.Ack = r.fuzzSeq(c.sndMax, c.sndUna, c.sndNxt)
	seg.Window = r.u16()
	f.fuzzOptions(r, &seg.Options)
	n := int(r.u16() & 0x1fff)
	data := seg.Seq
	if seg.Flags.Has(FlagSYN) {
		data++
	}
	seg.Payload = make([]byte, n)
	for i := range seg.Payload {
		seg.Payload[i] = peerByte(data.Add(i))
	}
	return seg
}

// Step opcodes of FuzzConn.
const (
	opSegment      = iota // a segment from the peer (connFuzz.segment)
	opRead                // +2: buffer size
	opWrite               // +2: length
	opClose               //
	opCloseWrite          //
	opCloseRead           //
	opAbort               //
	opSetRcvBuf           // +2: size/16
	opSetSndBuf           // +2: size/16
	opSetNoDelay          // +1: on if odd
	opSetKeepAlive        // +1: period choice
	opAdvance             // +1 unit (µs, ms, 100 ms, s) +2 amount; then Tick
	opNextTimer           // advance to the next deadline (1 ms if none); Tick
	opICMP                // +1 kind, seq (fuzzSeq from SND.UNA, SND.NXT, SND.MAX), +2 MTU
	numOps
)

// advance moves the clock as the input says (after the opcode).
func fuzzAdvance(r *fuzzInput) time.Duration {
	unit := [...]time.Duration{time.Microsecond, time.Millisecond, 100 * time.Millisecond, time.Second}[r.u8()&3]
	return time.Duration(r.u16()) * unit
}

// step runs one step of FuzzConn.
func (f *connFuzz) step(r *fuzzInput) {
	h, c := f.h, f.c
	before, stateBefore := h.wake(), c.state
	fromPeer := false
	var what string
	switch op := r.u8() % numOps; op {
	case opSegment:
		seg := f.segment(r)
		h.peer.add(seg.Seq, seg.Len())
		if c.state == SynSent && seg.Flags.Has(FlagSYN) {
			h.peerMSS = synMSS(&seg.Options) // the SYN SYN-SENT takes last is the one it keeps
		}
		what = "the peer's segment"
		h.noteSeg("peer", &seg)
		c.Handle(&seg, f.now)
		fromPeer = true
	case opRead:
		n := int(r.u16()) + 1
		what = fmt.Sprintf("Read(%d)", n)
		h.doRead(n)
	case opWrite:
		n := int(r.u16())
		what = fmt.Sprintf("Write(%d)", n)
		h.doWrite(n)
	case opClose:
		what = "Close"
		h.closed = true
		c.Close(f.now)
	case opCloseWrite:
		what = "CloseWrite"
		c.CloseWrite(f.now)
	case opCloseRead:
		what = "CloseRead"
		h.closeRead()
	case opAbort:
		what = "Abort"
		c.Abort(f.now)
	case opSetRcvBuf:
		n := int(r.u16()) * 16
		what = fmt.Sprintf("SetRcvBuf(%d)", n)
		c.SetRcvBuf(n, f.now)
	case opSetSndBuf:
		n := int(r.u16()) * 16
		what = fmt.Sprintf("SetSndBuf(%d)", n)
		h.setSndBuf(n)
	case opSetNoDelay:
		on := r.u8()&1 != 0
		what = fmt.Sprintf("SetNoDelay(%v)", on)
		c.SetNoDelay(on, f.now)
	case opSetKeepAlive:
		d := [...]time.Duration{0, time.Second, time.Minute, -1}[r.u8()&3]
		what = fmt.Sprintf("SetKeepAlive(%v)", d)
		c.SetKeepAlive(d, f.now)
	case opAdvance, opNextTimer:
		var d time.Duration
		if op == opAdvance {
			d = fuzzAdvance(r)
		} else if d = c.NextTimer() - f.now; d <= 0 {
			d = time.Millisecond
		}
		f.now += d
		what = fmt.Sprintf("Tick after %v", d)
		h.note("   " + what)
		c.Tick(f.now)
		fromPeer = true
	case opICMP:
		kind := ICMPKind(r.u8() % 3)
		seq := r.fuzzSeq(c.sndUna, c.sndNxt, c.sndMax)
		mtu := int(r.u16())
		errno := [...]error{syscall.EHOSTUNREACH, syscall.ECONNREFUSED, nil}[kind]
		what = fmt.Sprintf("ICMP kind %d seq %d mtu %d", kind, uint32(seq), mtu)
		h.note("   " + what)
		c.HandleICMP(kind, seq, mtu, errno, f.now)
		fromPeer = true
	}
	h.check(what, before, stateBefore, fromPeer)
}

// synMSS is the MSS a SYN announces: its option, else RFC 9293 §3.7.1's 536.
func synMSS(o *Options) int {
	if o.MSS != 0 {
		return int(o.MSS)
	}
	return 536
}

// fuzzSender hands a Conn's segments to a checker and on to a function.
type fuzzSender struct {
	h    *connChecker
	then func(seg *Segment)
}

func (s *fuzzSender) SendSegment(seg *Segment) {
	s.h.onEmit(seg)
	if s.then != nil {
		s.then(seg)
	}
}

// runConnFuzz decodes and runs one FuzzConn input.
//
// Header: mode (0 active open, 1 passive open, 2 SYN cookie), the config
// (fuzzConfig, 5 bytes), the peer's ISN and ours (4 bytes each), the start
// time in ms (2), the peer's SYN: option mask (1 MSS, 2 window scale, 4
// SACK-permitted, 8 timestamps), MSS (2), shift (1), window (2), TSval (4).
// Then steps (connFuzz.step), at most 400.
func runConnFuzz(t *testing.T, data []byte) {
	r := &fuzzInput{data}
	mode := r.u8() % 3
	cfg := fuzzConfig(r)
	f := &connFuzz{peerISS: Seq(r.u32())}
	iss := Seq(r.u32())
	f.now = time.Duration(r.u16()) * time.Millisecond
	h := newChecker(t, "conn", &f.now, 0, cfg)
	f.h = h
	cfg.Trace = h.trace
	out := &fuzzSender{h: h}

	syn := Segment{SrcPort: 80, DstPort: 40000, Seq: f.peerISS, Flags: FlagSYN}
	mask := r.u8()
	mss, ws := r.u16(), min(r.u8(), 14)
	syn.Window = r.u16()
	f.peerTS = r.u32()
	if mask&1 != 0 {
		syn.Options.MSS = mss
	}
	if mask&2 != 0 {
		syn.Options.HasWScale, syn.Options.WScale = true, int8(ws)
	}
	syn.Options.SACKPermitted = mask&4 != 0
	if mask&8 != 0 {
		syn.Options.HasTS, syn.Options.TSVal = true, f.peerTS
	}
	h.readPat = func(k int) byte { return peerByte(f.c.irs.Add(1 + k)) }
	switch mode {
	case 0:
		h.traced = Closed
		f.c = NewActive(cfg, out, 40000, 80, iss, f.now)
	case 1:
		h.traced = Listen
		h.peer.add(syn.Seq, 1)
		h.peerMSS = synMSS(&syn.Options)
		f.c = NewPassive(cfg, out, &syn, iss, f.now)
	case 2:
		h.traced = Listen
		h.peer.add(syn.Seq, 1) // the SYN the cookie answered
		ack := Segment{SrcPort: 80, DstPort: 40000, Seq: syn.Seq + 1, Ack: iss + 1, Flags: FlagACK, Window: syn.Window}
		opts := CookieOptions{MSS: int(mss%1460) + 64, WScale: -1}
		if mask&2 != 0 {
			opts.WScale = int(ws)
		}
		h.peerMSS = opts.MSS
		f.c = NewPassiveCookie(cfg, out, &ack, opts, f.now)
	}
	h.c = f.c
	h.check("open", wakeState{}, f.c.state, false)
	for i := 0; i < 400 && !r.done(); i++ {
		f.step(r)
	}
}

// FuzzConn drives one Conn (active, passive or from a SYN cookie) with
// arbitrary segments — in window and out, old and new, any flags, windows,
// MSS, window scale, SACK blocks and timestamps, payloads up to 8 KiB —
// interleaved with every application call, timer ticks at arbitrary times
// and ICMP errors, and checks connChecker's invariants after every step.
//
// The seeds are in testdata/fuzz/FuzzConn (connSeeds).
func FuzzConn(f *testing.F) {
	f.Fuzz(runConnFuzz)
}

// wireSeg is a segment on the pair's wire, marshalled.
type wireSeg []byte

// pairFuzz is FuzzConnPair's harness: two Conns, a wire each way that the
// input may make drop, duplicate or reorder, and a virtual clock.
type pairFuzz struct {
	t      *testing.T
	now    time.Duration
	a, b   *Conn
	ha, hb *connChecker
	ab, ba []wireSeg // a→b and b→a queues
	budget time.Duration
}

// deliver takes the head of q and hands it to c with fate: 0 deliver,
// 1 drop, 2 deliver twice, 3 send it to the back of the queue. A segment
// for a CLOSED connection is answered as the stack answers one that
// finds no connection: with ResetFor's reset, on back.
func (p *pairFuzz) deliver(q *[]wireSeg, to *Conn, h *connChecker, fate byte, back *[]wireSeg) {
	if len(*q) == 0 {
		return
	}
	b := (*q)[0]
	*q = (*q)[1:]
	switch fate % 4 {
	case 1:
		h.note("   (dropped)")
		return
	case 3:
		*q = append(*q, b)
		return
	}
	for n := 1 + int(fate%4/2); n > 0; n-- {
		var seg Segment
		if err := Parse(b, &seg); err != nil {
			p.t.Fatal(err)
		}
		if to.state == Closed {
			if rst, ok := ResetFor(&seg); ok {
				h.noteSeg(h.name+" (gone)", &rst)
				b := make(wireSeg, rst.HeaderLen())
				rst.Marshal(b)
				*back = append(*back, b)
			}
			continue
		}
		before, st := h.wake(), to.state
		to.Handle(&seg, p.now)
		h.check("a segment from the peer", before, st, true)
	}
}

// tick moves the clock to now+d and runs both Conns' timers.
func (p *pairFuzz) tick(d time.Duration) {
	p.now += d
	for _, h := range []*connChecker{p.ha, p.hb} {
		before, st := h.wake(), h.c.state
		h.c.Tick(p.now)
		h.check(fmt.Sprintf("Tick at %v", p.now), before, st, true)
	}
}

// nextTimer is the earlier of the two Conns' deadlines, or 0.
func (p *pairFuzz) nextTimer() time.Duration {
	at := p.a.NextTimer()
	if bt := p.b.NextTimer(); bt != 0 && (at == 0 || bt < at) {
		at = bt
	}
	return at
}

// runPairFuzz decodes and runs one FuzzConnPair input.
//
// Header: a's config and b's (fuzzConfig, 5 bytes each), a's ISN and b's.
// Steps (at most 600; the op byte modulo 11):
//
//	0, 1: the head of the a→b (b→a) queue: +1 fate (deliver, drop, twice, to the back)
//	2, 3: a (b) writes: +2 length
//	4, 5: a (b) reads: +2 buffer size
//	6:    CloseWrite: +1 side (odd: b)
//	7:    buffer sizes: +1 side/which, +2 size/16
//	8:    advance the clock (fuzzAdvance), within a budget of 40 s in all
//	9:    advance to the next deadline
//	10:   SetNoDelay: +1 side, on
//
// Then the wire turns perfect, both sides close their sending halves and
// read everything: each must receive exactly what the other wrote, reach
// EOF, and end in TIME-WAIT or CLOSED, then CLOSED after 2MSL.
func runPairFuzz(t *testing.T, data []byte) {
	r := &fuzzInput{data}
	ca, cb := fuzzConfig(r), fuzzConfig(r)
	// No limit here may legitimately end the connection: the wire heals.
	for _, c := range []*Config{&ca, &cb} {
		c.KeepAlive, c.MaxRetries, c.FinTimeout = 0, 0, 0
	}
	issA, issB := Seq(r.u32()), Seq(r.u32())
	p := &pairFuzz{t: t, budget: 40 * time.Second}
	p.ha = newChecker(t, "a", &p.now, 0x00, ca)
	p.hb = newChecker(t, "b", &p.now, 0x5a, cb)
	p.hb.history = p.ha.history // one story of both sides
	p.ha.readPat = func(k int) byte { return streamByte(k, 0x5a) }
	p.hb.readPat = func(k int) byte { return streamByte(k, 0x00) }
	ca.Trace, cb.Trace = p.ha.trace, p.hb.trace
	send := func(q *[]wireSeg, peer *connChecker) func(seg *Segment) {
		return func(seg *Segment) {
			peer.peer.add(seg.Seq, seg.Len())
			b := make(wireSeg, seg.HeaderLen()+len(seg.Payload))
			seg.Marshal(b)
			*q = append(*q, b)
		}
	}
	outA := &fuzzSender{h: p.ha, then: send(&p.ab, p.hb)}
	outB := &fuzzSender{h: p.hb, then: send(&p.ba, p.ha)}
	p.ha.traced, p.hb.traced = Closed, Listen
	p.a = NewActive(ca, outA, 40000, 80, issA, p.now)
	p.ha.c = p.a
	var syn Segment
	if err := Parse(p.ab[0], &syn); err != nil {
		t.Fatal(err)
	}
	p.ab = p.ab[1:]
	p.hb.peerMSS = synMSS(&syn.Options)
	p.b = NewPassive(cb, outB, &syn, issB, p.now)
	p.hb.c = p.b
	p.ha.peerMSS = int(cb.withDefaults().MSS)
	p.ha.check("open", wakeState{}, Closed, false)
	p.hb.check("open", wakeState{}, Listen, false)
	side := func(odd byte) *connChecker {
		if odd&1 != 0 {
			return p.hb
		}
		return p.ha
	}
	const maxWrite = 256 << 10
	for i := 0; i < 600 && !r.done(); i++ {
		switch op := r.u8() % 11; op {
		case 0:
			p.deliver(&p.ab, p.b, p.hb, r.u8(), &p.ba)
		case 1:
			p.deliver(&p.ba, p.a, p.ha, r.u8(), &p.ab)
		case 2, 3:
			h := side(op)
			n := min(int(r.u16()), maxWrite-h.written)
			h.doWrite(n)
			h.check(fmt.Sprintf("Write(%d)", n), wakeState{}, h.c.state, false)
		case 4, 5:
			h := side(op)
			n := int(r.u16()) + 1
			h.doRead(n)
			h.check(fmt.Sprintf("Read(%d)", n), wakeState{}, h.c.state, false)
		case 6:
			h := side(r.u8())
			if h.c.state != SynSent { // that would abandon the open: not this test's point
				h.c.CloseWrite(p.now)
			}
			h.check("CloseWrite", wakeState{}, h.c.state, false)
		case 7:
			sel := r.u8()
			h := side(sel)
			n := max(int(r.u16())*16, 1)
			if sel&2 != 0 {
				h.c.SetRcvBuf(n, p.now)
			} else {
				h.setSndBuf(n)
			}
			h.check(fmt.Sprintf("buffer %d", n), wakeState{}, h.c.state, false)
		case 8:
			d := min(fuzzAdvance(r), p.budget)
			p.budget -= d
			p.tick(d)
		case 9:
			if at := p.nextTimer(); at != 0 && at-p.now <= p.budget {
				p.budget -= at - p.now
				p.tick(at - p.now)
			}
		case 10:
			h := side(r.u8())
			h.c.SetNoDelay(r.u8()&1 != 0, p.now)
			h.check("SetNoDelay", wakeState{}, h.c.state, false)
		}
	}
	p.drain()
}

// drain runs the pair over a perfect wire until both directions are
// closed and read, and checks the ending.
func (p *pairFuzz) drain() {
	t := p.t
	closed := [2]bool{}
	end := p.now + 30*time.Minute
	for iter := 0; p.now < end; iter++ {
		if iter > 100000 {
			t.Fatalf("drain does not finish: a %v, b %v", p.a.state, p.b.state)
		}
		for _, h := range []*connChecker{p.ha, p.hb} {
			if err := h.c.Err(); err != nil && !h.healthyEnd(err) {
				h.fatalf("failed with %v on a wire that only lost, duplicated and reordered", err)
			}
		}
		for n := 0; len(p.ab)+len(p.ba) > 0; n++ {
			if n > 1000000 {
				t.Fatalf("the wire never went quiet")
			}
			p.deliver(&p.ab, p.b, p.hb, 0, &p.ba)
			p.deliver(&p.ba, p.a, p.ha, 0, &p.ab)
		}
		for i, h := range []*connChecker{p.ha, p.hb} {
			for !h.eof && h.c.RecvQueue() > 0 {
				h.doRead(64 << 10)
				h.check("Read", wakeState{}, h.c.state, false)
			}
			if !h.eof && h.c.Readable() {
				h.doRead(1)
			}
			// Close once synchronized: CloseWrite in SYN-SENT would
			// abandon the open.
			if !closed[i] && h.c.state != SynSent {
				h.c.CloseWrite(p.now)
				h.check("CloseWrite", wakeState{}, h.c.state, false)
				closed[i] = true
			}
		}
		if len(p.ab)+len(p.ba) > 0 {
			continue
		}
		done := p.ha.eof && p.hb.eof
		for _, c := range []*Conn{p.a, p.b} {
			done = done && (c.state == TimeWait || c.state == Closed)
		}
		if done {
			break
		}
		at := p.nextTimer()
		if at == 0 {
			t.Fatalf("stuck with no timer: a %v (read %d of %d, eof %v), b %v (read %d of %d, eof %v)\n%s",
				p.a.state, p.ha.read, p.hb.written, p.ha.eof, p.b.state, p.hb.read, p.ha.written, p.hb.eof, p.hb.history)
		}
		p.tick(at - p.now)
	}
	for _, h := range []*connChecker{p.ha, p.hb} {
		if err := h.c.Err(); err != nil && !h.healthyEnd(err) {
			h.fatalf("failed with %v on a wire that only lost, duplicated and reordered", err)
		}
		if !h.eof {
			h.fatalf("no EOF after 30 minutes of a perfect wire: %v, read %d", h.c.state, h.read)
		}
	}
	if p.ha.read != p.hb.written || p.hb.read != p.ha.written {
		t.Fatalf("a wrote %d, b read %d; b wrote %d, a read %d", p.ha.written, p.hb.read, p.hb.written, p.ha.read)
	}
	// TIME-WAIT ends after 2MSL; then nothing is left armed.
	for i := 0; i < 10 && p.nextTimer() != 0; i++ {
		p.tick(p.nextTimer() - p.now)
	}
	if p.a.state != Closed || p.b.state != Closed || p.nextTimer() != 0 {
		t.Fatalf("after TIME-WAIT: a %v, b %v, next timer %v", p.a.state, p.b.state, p.nextTimer())
	}
}

// FuzzConnPair runs two Conns against each other over a wire the input
// makes lose, duplicate and reorder segments, with writes, reads,
// half-closes, buffer changes and time in between; connChecker's
// invariants hold after every step, and once the wire heals every byte
// written arrives intact, in order, followed by EOF.
//
// The seeds are in testdata/fuzz/FuzzConnPair (pairSeeds).
func FuzzConnPair(f *testing.F) {
	f.Fuzz(runPairFuzz)
}
