package tcp

import (
	"testing"
	"time"
)

// Regression tests for bugs FuzzConn and FuzzConnPair found, each reduced
// to the few segments that show it.

// capture is a Sender that keeps copies of what a Conn sends.
type capture struct{ segs []Segment }

func (c *capture) SendSegment(seg *Segment) {
	s := *seg
	s.Payload = append([]byte(nil), seg.Payload...)
	c.segs = append(c.segs, s)
}

func (c *capture) take() []Segment {
	s := c.segs
	c.segs = nil
	return s
}

// openedActive is an active Conn whose handshake a scripted peer (ISN
// peerISS, MSS mss, window wnd, no options beyond the MSS) completed.
func openedActive(t *testing.T, cfg Config, mss uint16, wnd uint16) (*Conn, *capture, Seq) {
	t.Helper()
	out := &capture{}
	const peerISS = 7000
	c := NewActive(cfg, out, 40000, 80, 1000, 0)
	synAck := Segment{SrcPort: 80, DstPort: 40000, Seq: peerISS, Ack: 1001, Flags: FlagSYN | FlagACK, Window: wnd}
	synAck.Options.MSS = mss
	c.Handle(&synAck, 0)
	if c.State() != Established {
		t.Fatalf("state %v after the SYN+ACK", c.State())
	}
	out.take()
	return c, out, peerISS + 1
}

// TestFastRetransmitSendsOnlyDataAlreadySent: NewReno's fast retransmit
// resends one segment from SND.UNA. When less than a segment lies between
// SND.UNA and SND.MAX it must stop at SND.MAX: bytes beyond were never
// sent, may lie beyond the peer's window (RFC 9293 §3.8.6), and sending
// them without moving SND.MAX makes them go out twice. (FuzzConnPair: a
// retransmission ran 36 bytes past a 36-byte window.)
func TestFastRetransmitSendsOnlyDataAlreadySent(t *testing.T) {
	c, out, rcvNxt := openedActive(t, Config{NoSACK: true, NoTimestamps: true, NoWScale: true, MSS: 1000}, 1000, 1500)
	if n, _ := c.Write(make([]byte, 10000), 0); n != 10000 {
		t.Fatalf("wrote %d", n)
	}
	ack := func(a Seq, wnd uint16) {
		c.Handle(&Segment{SrcPort: 80, DstPort: 40000, Seq: rcvNxt, Ack: a, Flags: FlagACK, Window: wnd}, time.Millisecond)
	}
	ack(2001, 1500) // [1001, 2001) acknowledged; [2001, 3001) goes, 500 bytes of window wait
	out.take()
	sndMax := c.sndMax
	if sndMax != 3001 {
		t.Fatalf("SND.MAX %d, want 3001", uint32(sndMax))
	}
	ack(2501, 600) // half acknowledged; the window's right edge is 3101
	for i := 0; i < 3; i++ {
		ack(2501, 600) // three duplicate ACKs: fast retransmit
	}
	if c.Recoveries != 1 {
		t.Fatalf("%d recoveries, want a fast retransmit", c.Recoveries)
	}
	for _, s := range out.take() {
		if end := s.Seq.Add(len(s.Payload)); len(s.Payload) > 0 && end.GreaterThan(sndMax) && s.Seq.LessThan(sndMax) {
			t.Errorf("retransmission %s runs past SND.MAX %d into bytes never sent (window edge %d)",
				s.String(), uint32(sndMax), uint32(c.sndUna.Add(c.sndWnd)))
		}
	}
}

// TestDupAcksBeforeTheSynIsAcknowledged: a passive connection closed by
// its application in SYN-RECEIVED (FIN-WAIT-1, its SYN+ACK still
// unacknowledged) gets duplicate ACKs of its ISS. Loss recovery must not
// treat the SYN's sequence number as data: it read the send ring at
// offset -1 and panicked (FuzzConn: integer divide by zero in Peek).
func TestDupAcksBeforeTheSynIsAcknowledged(t *testing.T) {
	for _, queued := range []int{0, 100} {
		out := &capture{}
		syn := Segment{SrcPort: 40000, DstPort: 80, Seq: 7000, Flags: FlagSYN, Window: 1000}
		c := NewPassive(Config{}, out, &syn, 1000, 0)
		if queued > 0 {
			if n, _ := c.Write(make([]byte, queued), 0); n != queued {
				t.Fatalf("wrote %d", n)
			}
		}
		c.CloseWrite(0)
		if c.State() != FinWait1 {
			t.Fatalf("state %v after CloseWrite in SYN-RECEIVED", c.State())
		}
		out.take()
		for i := 0; i < 3; i++ {
			c.Handle(&Segment{SrcPort: 40000, DstPort: 80, Seq: 7001, Ack: 1000, Flags: FlagACK, Window: 1000}, time.Millisecond)
		}
		for _, s := range out.take() {
			if len(s.Payload) > 0 {
				t.Errorf("%d queued: data %s sent before the SYN was acknowledged", queued, s.String())
			}
		}
		// The SYN+ACK's own timer still resends it, and the ACK of it
		// then lets the data and the FIN go.
		c.Tick(c.NextTimer())
		if segs := out.take(); len(segs) != 1 || !segs[0].Flags.Has(FlagSYN|FlagACK) {
			t.Fatalf("%d queued: the retransmission timer sent %v, want the SYN+ACK again", queued, segs)
		}
		c.Handle(&Segment{SrcPort: 40000, DstPort: 80, Seq: 7001, Ack: 1001, Flags: FlagACK, Window: 1000}, 2*time.Second)
		var sent int
		var fin bool
		for _, s := range out.take() {
			sent += len(s.Payload)
			fin = fin || s.Flags.Has(FlagFIN)
		}
		if sent != queued || !fin {
			t.Errorf("%d queued: after the ACK of the SYN, %d bytes sent, FIN %v", queued, sent, fin)
		}
	}
}

// TestSecondFinIgnored: a peer's stream ends at its FIN. A "FIN" at a
// later sequence number (RCV.NXT, just past the first) is a forgery or a
// broken peer: it must not advance RCV.NXT again (4.4BSD's
// TCPS_HAVERCVDFIN rule; RFC 9293 §3.10.7.4 has CLOSE-WAIT, CLOSING and
// LAST-ACK simply stay). FuzzConn: RCV.NXT counted a second FIN in
// CLOSE-WAIT, and the ACK acknowledged it.
func TestSecondFinIgnored(t *testing.T) {
	out := &capture{}
	syn := Segment{SrcPort: 40000, DstPort: 80, Seq: 7000, Flags: FlagSYN, Window: 1000}
	c := NewPassive(Config{}, out, &syn, 1000, 0)
	seg := func(flags Flags, seq Seq, data string) {
		c.Handle(&Segment{SrcPort: 40000, DstPort: 80, Seq: seq, Ack: 1001, Flags: flags | FlagACK, Window: 1000, Payload: []byte(data)}, 0)
	}
	seg(0, 7001, "")
	seg(FlagFIN, 7001, "hello")
	if c.State() != CloseWait || c.rcvNxt != 7007 {
		t.Fatalf("after the FIN: %v, RCV.NXT %d", c.State(), uint32(c.rcvNxt))
	}
	out.take()
	seg(FlagFIN, 7007, "")
	if c.rcvNxt != 7007 {
		t.Errorf("a second FIN moved RCV.NXT to %d", uint32(c.rcvNxt))
	}
	for _, s := range out.take() {
		if s.Ack != 7007 {
			t.Errorf("answered with %s, want ACK 7007", s.String())
		}
	}
	buf := make([]byte, 10)
	if n, _ := c.Read(buf, 0); string(buf[:n]) != "hello" {
		t.Errorf("read %q", buf[:n])
	}
}

// TestHalfClosedIntoZeroWindow: the application half-closes while the
// peer's window is shut (its reader is slow). The FIN takes a sequence
// number, which a zero window has no room for: the receiver drops it
// (RFC 9293 §3.10.7.4). Sent anyway, it was retransmitted on every RTO,
// each answered with an ACK that acknowledged nothing, until the retry
// limit failed a healthy connection with ETIMEDOUT after nine minutes.
// It must wait behind the window like data (persist probes, RFC 9293
// §3.8.6.1) and go when the window opens. (FuzzConnPair's invariant: no
// new sequence space beyond the peer's window.)
func TestHalfClosedIntoZeroWindow(t *testing.T) {
	p := newPair(t, Config{RcvBuf: 4096, NoAutoTune: true})
	if n, _ := p.a.Write(pattern(4096), p.now); n != 4096 {
		t.Fatalf("wrote %d", n)
	}
	p.advance(time.Second) // b's buffer fills, its window shuts
	if p.a.sndWnd != 0 || p.a.SendQueue() != 0 {
		t.Fatalf("window %d, %d bytes queued: want everything delivered and the window shut", p.a.sndWnd, p.a.SendQueue())
	}
	p.a.CloseWrite(p.now)
	p.run()
	p.advance(30 * time.Minute)
	if p.a.State() != FinWait1 || p.a.Err() != nil {
		t.Fatalf("after 30 minutes of a live peer's zero window: %v, %v\n%s", p.a.State(), p.a.Err(), logTail(p, 10))
	}
	got := readUpTo(t, p.b, p.now, nil, 4096)
	p.run()
	p.advance(time.Minute) // the window update, or a probe's answer, lets the FIN go
	if len(got) != 4096 || p.a.State() != FinWait2 || p.b.State() != CloseWait {
		t.Fatalf("after the reader read %d bytes: a %v, b %v\n%s", len(got), p.a.State(), p.b.State(), logTail(p, 10))
	}
}

// TestRTOResendsHeadIntoShutWindow: data (or the FIN) was sent while the
// peer's window was open and lost; then a stale copy of the peer's
// window update (same SEG.SEQ and SEG.ACK, so RFC 9293's SND.WL1/WL2 rule
// cannot tell it is older) shuts the window. The retransmission timer
// must still resend the first unacknowledged segment's head, as Linux
// does (the segment at SND.UNA is always retransmittable): it is what
// makes the peer answer with its real window. Sending nothing, every RTO
// counted a retry until the connection failed with ETIMEDOUT against a
// live peer (FuzzConnPair).
func TestRTOResendsHeadIntoShutWindow(t *testing.T) {
	for _, fin := range []bool{false, true} {
		c, out, rcvNxt := openedActive(t, Config{NoSACK: true, NoTimestamps: true, NoWScale: true}, 1460, 300)
		n := 300
		if !fin {
			n = 600
		}
		if w, _ := c.Write(make([]byte, n), 0); w != n {
			t.Fatalf("wrote %d", w)
		}
		ack := func(a Seq, wnd uint16, now time.Duration) {
			c.Handle(&Segment{SrcPort: 80, DstPort: 40000, Seq: rcvNxt, Ack: a, Flags: FlagACK, Window: wnd}, now)
		}
		ms := time.Millisecond
		ack(1301, 300, ms) // the first 300 bytes arrived; 300 more (or the FIN) go out
		if fin {
			c.CloseWrite(ms)
		}
		if segs := out.take(); len(segs) == 0 {
			t.Fatalf("fin %v: nothing sent into the open window", fin)
		}
		ack(1301, 0, 2*ms) // the stale copy: the window looks shut; what was sent is lost
		var resent bool
		for i := 0; i < 3 && !resent; i++ {
			c.Tick(c.NextTimer())
			for _, s := range out.take() {
				resent = resent || (s.Seq == 1301 && (len(s.Payload) > 0 || s.Flags.Has(FlagFIN)))
			}
		}
		if !resent {
			t.Fatalf("fin %v: the retransmission timer resent nothing at SND.UNA 1301 (state %v, err %v, %d retransmissions counted)",
				fin, c.State(), c.Err(), c.Retransmits)
		}
		// The peer's answer carries its real window: everything goes.
		now := c.NextTimer()
		ack(1301, 300, now)
		out.take()
		end := Seq(1601)
		if fin {
			end = 1302
		}
		ack(end, 300, now)
		if c.sndUna != end || c.Err() != nil {
			t.Errorf("fin %v: SND.UNA %d, err %v after the peer acknowledged everything", fin, uint32(c.sndUna), c.Err())
		}
	}
}
