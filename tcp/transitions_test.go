package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

// reach returns a pair whose side a sits in state s, reached the way a
// real connection gets there (nothing is poked into the control block).
// For SYN-SENT, b is nil; for SYN-RECEIVED the roles are reversed inside:
// a is the passive side.
func reach(t *testing.T, s State, cfg Config) *pair {
	t.Helper()
	p := &pair{t: t}
	p.aOut = &wire{name: "a>", log: &p.log, owner: &p.a, t: t}
	p.bOut = &wire{name: "b>", log: &p.log, owner: &p.b, t: t}
	switch s {
	case SynSent:
		p.a = NewActive(cfg, p.aOut, 40000, 80, 1000, 0)
		p.take(p.aOut) // the SYN, never delivered
	case SynReceived:
		p.b = NewActive(cfg, p.bOut, 40000, 80, 1000, 0)
		syn := p.take(p.bOut)
		p.a = NewPassive(cfg, p.aOut, &syn, 5000, 0)
		p.take(p.aOut) // the SYN+ACK, never delivered
	default:
		p = newPair(t, cfg)
		switch s {
		case Established:
		case FinWait1:
			p.a.CloseWrite(p.now)
			p.take(p.aOut) // the FIN, not delivered yet
		case FinWait2:
			p.a.CloseWrite(p.now)
			p.run()
		case CloseWait:
			p.b.CloseWrite(p.now)
			p.run()
		case Closing:
			p.a.CloseWrite(p.now)
			p.b.CloseWrite(p.now)
			finA, finB := p.take(p.aOut), p.take(p.bOut)
			p.a.Handle(&finB, p.now)
			p.take(p.aOut) // a's ACK of b's FIN is lost, so a stays in CLOSING
			_ = finA
		case LastAck:
			p.b.CloseWrite(p.now)
			p.run()
			p.a.CloseWrite(p.now)
			p.take(p.aOut) // a's FIN, not delivered yet
		case TimeWait:
			p.a.CloseWrite(p.now)
			p.run()
			p.b.CloseWrite(p.now)
			p.run()
		}
	}
	p.wantState(p.a, s)
	return p
}

// rstFor builds the reset a's peer would send: exactly at RCV.NXT, so it
// passes RFC 5961 §3.2 (in SYN-SENT it must acknowledge our SYN instead).
func rstFor(c *Conn) Segment {
	if c.state == SynSent {
		return Segment{SrcPort: c.RemotePort, DstPort: c.LocalPort, Ack: c.iss + 1, Flags: FlagRST | FlagACK}
	}
	return Segment{SrcPort: c.RemotePort, DstPort: c.LocalPort, Seq: c.rcvNxt, Flags: FlagRST}
}

// TestResetInEveryState: an acceptable RST closes every state but
// TIME-WAIT (RFC 1337), with the error RFC 9293 §3.10.7.4 gives each.
func TestResetInEveryState(t *testing.T) {
	for _, tc := range []struct {
		s   State
		err error
	}{
		{SynSent, syscall.ECONNREFUSED},
		{SynReceived, syscall.ECONNREFUSED},
		{Established, syscall.ECONNRESET},
		{FinWait1, syscall.ECONNRESET},
		{FinWait2, syscall.ECONNRESET},
		{CloseWait, syscall.ECONNRESET},
		// RFC 9293 only says "enter CLOSED"; Linux and BSD report
		// ECONNRESET (SO_ERROR), as the FreeBSD TCP test suite expects.
		{Closing, syscall.ECONNRESET},
		{LastAck, syscall.ECONNRESET},
		{TimeWait, nil},
	} {
		t.Run(tc.s.String(), func(t *testing.T) {
			p := reach(t, tc.s, Config{})
			rst := rstFor(p.a)
			p.a.Handle(&rst, p.now)
			if tc.s == TimeWait {
				p.wantState(p.a, TimeWait)
				return
			}
			p.wantState(p.a, Closed)
			if !errors.Is(p.a.Err(), tc.err) && !(tc.err == nil && p.a.Err() == nil) {
				t.Errorf("error %v, want %v", p.a.Err(), tc.err)
			}
		})
	}
}

// TestAbortInEveryState: ABORT (RFC 9293 §3.10.5) sends an RST from the
// states where the peer holds a connection to reset, and nothing from
// SYN-SENT, CLOSING, LAST-ACK and TIME-WAIT, then deletes the TCB.
func TestAbortInEveryState(t *testing.T) {
	for _, tc := range []struct {
		s       State
		sendRST bool
	}{
		{SynSent, false}, {SynReceived, true}, {Established, true},
		{FinWait1, true}, {FinWait2, true}, {CloseWait, true},
		{Closing, false}, {LastAck, false}, {TimeWait, false},
	} {
		t.Run(tc.s.String(), func(t *testing.T) {
			p := reach(t, tc.s, Config{})
			p.aOut.queue = nil
			p.a.Abort(p.now)
			p.wantState(p.a, Closed)
			gotRST := len(p.aOut.queue) == 1 && p.take(p.aOut).Flags.Has(FlagRST)
			if gotRST != tc.sendRST {
				t.Errorf("sent RST: %v, want %v\n%s", gotRST, tc.sendRST, p.dump())
			}
		})
	}
}

// TestRetransmitTimeoutInEveryState: with the peer gone, every state that
// waits for an acknowledgment gives up with ETIMEDOUT after its retries.
func TestRetransmitTimeoutInEveryState(t *testing.T) {
	cfg := Config{SynRetries: 2, SynAckRetries: 2, MaxRetries: 3, MaxRTO: 4 * time.Second}
	for _, s := range []State{SynSent, SynReceived, Established, FinWait1, CloseWait, Closing, LastAck} {
		t.Run(s.String(), func(t *testing.T) {
			p := reach(t, s, cfg)
			p.aOut.drop = func(*Segment) bool { return true }
			if s == Established || s == CloseWait {
				if _, err := p.a.Write([]byte("lost"), p.now); err != nil {
					t.Fatal(err)
				}
			}
			if p.b == nil {
				// SYN-SENT: nobody answers; advance a alone.
				for i := 0; i < 100 && p.a.State() != Closed; i++ {
					p.now = p.a.NextTimer()
					p.a.Tick(p.now)
				}
			} else {
				p.advance(2 * time.Minute)
			}
			p.wantState(p.a, Closed)
			if !errors.Is(p.a.Err(), syscall.ETIMEDOUT) {
				t.Errorf("error %v, want ETIMEDOUT", p.a.Err())
			}
		})
	}
}

// TestCloseBeforeEstablished: CLOSE in SYN-SENT deletes the TCB at once;
// in SYN-RECEIVED it queues a FIN that follows the handshake (RFC 9293
// §3.10.4).
func TestCloseBeforeEstablished(t *testing.T) {
	p := reach(t, SynSent, Config{})
	p.a.Close(p.now)
	p.wantState(p.a, Closed)

	p = reach(t, SynReceived, Config{})
	p.a.Close(p.now)
	p.wantState(p.a, FinWait1)
	// The handshake completes, then the FIN goes out and the close
	// finishes normally.
	p.a.sendSyn(p.now)
	p.run()
	p.b.Close(p.now)
	p.run()
	p.wantState(p.a, TimeWait)
	p.wantState(p.b, Closed)
}

// TestSynAckRetriesThenDropped: a half-open connection whose final ACK
// never comes resends its SYN+ACK with exponential backoff (1, 2, 4 s
// ...) and is dropped after SynAckRetries.
func TestSynAckRetriesThenDropped(t *testing.T) {
	p := reach(t, SynReceived, Config{})
	var sent []time.Duration
	for i := 0; i < 20 && p.a.State() != Closed; i++ {
		p.now = p.a.NextTimer()
		p.a.Tick(p.now)
		for len(p.aOut.queue) > 0 {
			if seg := p.take(p.aOut); seg.Flags.Has(FlagSYN | FlagACK) {
				sent = append(sent, p.now)
			}
		}
	}
	want := []time.Duration{1, 3, 7, 15, 31} // cumulative seconds
	if len(sent) != len(want) {
		t.Fatalf("SYN+ACK resent at %v, want %d resends", sent, len(want))
	}
	for i, w := range want {
		if sent[i] != w*time.Second {
			t.Errorf("resend %d at %v, want %v", i+1, sent[i], w*time.Second)
		}
	}
	p.wantState(p.a, Closed)
	if p.now != 63*time.Second {
		t.Errorf("dropped at %v, want 63s (last wait 32 s)", p.now)
	}
}

// TestOrphanedFinWait2IsReclaimed: an application that closed (not just
// CloseWrite) and a peer that never sends its FIN: after FinTimeout the
// connection is reset and freed. A half-closed connection whose
// application still reads is left alone.
func TestOrphanedFinWait2IsReclaimed(t *testing.T) {
	p := reach(t, Established, Config{FinTimeout: 10 * time.Second})
	p.a.Close(p.now)
	p.run()
	p.wantState(p.a, FinWait2)
	p.advance(9 * time.Second)
	p.wantState(p.a, FinWait2)
	p.advance(2 * time.Second)
	p.wantState(p.a, Closed)
	if p.b.State() != Closed || !errors.Is(p.b.Err(), syscall.ECONNRESET) {
		t.Errorf("peer: %v %v, want CLOSED by reset", p.b.State(), p.b.Err())
	}

	p = reach(t, FinWait2, Config{FinTimeout: 10 * time.Second}) // CloseWrite only
	p.advance(10 * time.Minute)
	p.wantState(p.a, FinWait2)
	// The peer may still send, and then close normally.
	if got := p.transfer(p.b, p.a, pattern(5000)); len(got) != 5000 {
		t.Fatalf("half-closed transfer got %d bytes", len(got))
	}
	p.b.Close(p.now)
	p.run()
	p.wantState(p.a, TimeWait)
}

func TestListening(t *testing.T) {
	var trace []Transition
	l := NewListening(Config{Trace: func(t Transition, _ *Segment) { trace = append(trace, t) }})
	if l.State() != Listen {
		t.Fatalf("state %v", l.State())
	}
	syn := Segment{Flags: FlagSYN}
	if l.Classify(&syn) != ListenAccept {
		t.Error("SYN not accepted")
	}
	l.Close()
	if l.State() != Closed || l.Classify(&syn) != ListenReset {
		t.Errorf("closed listener: %v, %v", l.State(), l.Classify(&syn))
	}
	if len(trace) != 2 || trace[0].On != AppListen || trace[1].On != AppClose {
		t.Errorf("trace %v", trace)
	}
}

// TestAckAtRightEdgeAccepted: a filled b's window but its last segment
// was lost, so b still offers a few bytes while a's bare ACKs carry
// SND.NXT — exactly b's right edge. b must take those ACKs (as Linux
// does), or the data b sends is never acknowledged and both sides sit on
// retransmission timeouts: the stall two full buffers in an echo used to
// cause.
func TestAckAtRightEdgeAccepted(t *testing.T) {
	// NoDelay: Nagle would hold the last small segment back.
	p := reach(t, Established, Config{RcvBuf: 8192, NoWScale: true, NoDelay: true})
	edge := p.a.sndUna.Add(p.a.sndWnd)
	p.aOut.drop = func(seg *Segment) bool {
		return len(seg.Payload) > 0 && seg.Seq.Add(len(seg.Payload)) == edge
	}
	p.a.Write(pattern(8192), p.now)
	p.run()
	p.aOut.drop = nil
	if p.a.sndMax != edge || p.b.rcvNxt == edge {
		t.Fatalf("setup: a sndMax %d, edge %d, b rcvNxt %d", uint32(p.a.sndMax), uint32(edge), uint32(p.b.rcvNxt))
	}
	// b sends to a; a's ACK (seq = b's right edge) must reach b's send side
	// before b's retransmission timer would have to rescue it.
	p.b.Write([]byte("reply"), p.now)
	p.advance(100 * time.Millisecond)
	if p.b.sndUna != p.b.sndMax {
		t.Fatalf("b's data never acknowledged: una %d, max %d\n%s", uint32(p.b.sndUna), uint32(p.b.sndMax), p.dump())
	}
}

// TestRFC793Rules: with InWindowRST an RST anywhere inside the window
// resets the connection, and with InWindowSYN a SYN inside the window
// does (with an RST to the peer) — RFC 793's rules, which RFC 5961
// replaced (the default: a challenge ACK for both, see TestResetInEveryState
// and the RFC 5961 tests).
func TestRFC793Rules(t *testing.T) {
	for _, s := range []State{Established, FinWait1, FinWait2, CloseWait, Closing, LastAck} {
		t.Run("SYN in "+s.String(), func(t *testing.T) {
			p := reach(t, s, Config{InWindowSYN: true})
			syn := Segment{SrcPort: p.a.RemotePort, DstPort: p.a.LocalPort, Seq: p.a.rcvNxt.Add(10), Flags: FlagSYN, Window: 1000}
			var sent []Segment
			tap(p.aOut, func(seg *Segment) { sent = append(sent, *seg) })
			p.a.Handle(&syn, p.now)
			p.wantState(p.a, Closed)
			if !errors.Is(p.a.Err(), syscall.ECONNRESET) {
				t.Errorf("error %v, want ECONNRESET", p.a.Err())
			}
			if len(sent) != 1 || !sent[0].Flags.Has(FlagRST) || sent[0].Seq != p.a.sndNxt {
				t.Fatalf("sent %v, want one RST at SND.NXT", sent)
			}
		})
	}
	t.Run("RST inside the window", func(t *testing.T) {
		p := reach(t, Established, Config{InWindowRST: true})
		rst := rstFor(p.a)
		rst.Seq = rst.Seq.Add(100) // not RCV.NXT: RFC 5961 would challenge it
		p.a.Handle(&rst, p.now)
		p.wantState(p.a, Closed)
		if !errors.Is(p.a.Err(), syscall.ECONNRESET) {
			t.Errorf("error %v, want ECONNRESET", p.a.Err())
		}
	})
	t.Run("by default both get a challenge ACK", func(t *testing.T) {
		p := reach(t, Established, Config{})
		rst := rstFor(p.a)
		rst.Seq = rst.Seq.Add(100)
		p.a.Handle(&rst, p.now)
		syn := Segment{SrcPort: p.a.RemotePort, DstPort: p.a.LocalPort, Seq: p.a.rcvNxt.Add(10), Flags: FlagSYN, Window: 1000}
		p.a.Handle(&syn, p.now)
		p.wantState(p.a, Established)
	})
}
