package tcp

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPassiveCloseFirst(t *testing.T) {
	p := newPair(t, Config{})
	// The server (b) closes first: b FIN-WAIT-1/2, a CLOSE-WAIT; a keeps
	// sending while half-closed, then closes: a LAST-ACK -> CLOSED, b TIME-WAIT.
	p.b.CloseWrite(p.now)
	p.run()
	p.wantState(p.b, FinWait2)
	p.wantState(p.a, CloseWait)
	data := pattern(100000)
	if got := p.transfer(p.a, p.b, data); string(got) != string(data) {
		t.Fatalf("half-closed transfer: got %d bytes", len(got))
	}
	p.a.Close(p.now)
	p.wantState(p.a, LastAck)
	p.run()
	p.wantState(p.a, Closed)
	p.wantState(p.b, TimeWait)
	if p.a.Err() != nil {
		t.Fatalf("clean close ended with %v", p.a.Err())
	}
}

func TestSimultaneousClose(t *testing.T) {
	p := newPair(t, Config{})
	// Both FINs are on the wire before either arrives.
	p.a.Close(p.now)
	p.b.Close(p.now)
	p.wantState(p.a, FinWait1)
	p.wantState(p.b, FinWait1)
	finA, finB := p.take(p.aOut), p.take(p.bOut)
	p.b.Handle(&finA, p.now)
	p.a.Handle(&finB, p.now)
	p.wantState(p.a, Closing)
	p.wantState(p.b, Closing)
	p.run()
	p.wantState(p.a, TimeWait)
	p.wantState(p.b, TimeWait)
}

func TestFinAndAckTogether(t *testing.T) {
	p := newPair(t, Config{})
	p.a.Close(p.now)
	fin := p.take(p.aOut)
	// b receives the FIN; its ACK is held back and b closes at once, so
	// its FIN carries the ACK of a's FIN: FIN-WAIT-1 -> TIME-WAIT directly.
	var acks []Segment
	p.b.Handle(&fin, p.now)
	for len(p.bOut.queue) > 0 {
		acks = append(acks, p.take(p.bOut))
	}
	p.b.Close(p.now)
	finAck := p.take(p.bOut)
	if !finAck.Flags.Has(FlagFIN|FlagACK) || finAck.Ack != fin.Seq+1 {
		t.Fatalf("b's FIN %v does not ACK a's FIN", finAck.String())
	}
	p.a.Handle(&finAck, p.now)
	p.wantState(p.a, TimeWait)
	_ = acks
}

func TestRetransmittedFinInTimeWaitIsReAcked(t *testing.T) {
	p := newPair(t, Config{})
	p.a.Close(p.now)
	p.run()
	p.b.Close(p.now)
	fin := p.take(p.bOut)
	p.a.Handle(&fin, p.now)
	p.wantState(p.a, TimeWait)
	p.take(p.aOut) // the ACK is lost
	p.advance(10 * time.Second)
	// b retransmits its FIN; a ACKs it again and restarts 2MSL.
	p.a.Handle(&fin, p.now)
	ack := p.take(p.aOut)
	if !ack.Flags.Has(FlagACK) || ack.Ack != fin.Seq+1 {
		t.Fatalf("re-ACK %v", ack.String())
	}
	p.advance(2*DefaultConfig().MSL - time.Second)
	p.wantState(p.a, TimeWait)
	p.advance(time.Second)
	p.wantState(p.a, Closed)
}

func TestRSTInTimeWaitIgnored(t *testing.T) {
	p := newPair(t, Config{})
	p.a.Close(p.now)
	p.run()
	p.b.Close(p.now)
	p.run()
	p.wantState(p.a, TimeWait)
	rst := Segment{SrcPort: 80, DstPort: 40000, Seq: p.a.rcvNxt, Flags: FlagRST}
	p.a.Handle(&rst, p.now)
	p.wantState(p.a, TimeWait) // RFC 1337
}

func TestRSTRefusesSynSent(t *testing.T) {
	var log []string
	w := &wire{name: "a>", log: &log}
	c := NewActive(Config{}, w, 40000, 80, 1000, 0)
	rst := Segment{Seq: 0, Ack: 1001, Flags: FlagRST | FlagACK}
	c.Handle(&rst, 0)
	if c.State() != Closed || !errors.Is(c.Err(), syscall.ECONNREFUSED) {
		t.Fatalf("state %v err %v", c.State(), c.Err())
	}
	// An RST that does not ACK our SYN is ignored.
	c2 := NewActive(Config{}, w, 40001, 80, 1000, 0)
	bad := Segment{Seq: 0, Ack: 5, Flags: FlagRST | FlagACK}
	c2.Handle(&bad, 0)
	if c2.State() != SynSent {
		t.Fatalf("state %v after a bogus RST", c2.State())
	}
}

func TestSynRetriesThenETIMEDOUT(t *testing.T) {
	var log []string
	w := &wire{name: "a>", log: &log}
	c := NewActive(Config{}, w, 40000, 80, 1000, 0)
	var sent []time.Duration
	now := time.Duration(0)
	for i := 0; i < 20 && c.State() != Closed; i++ {
		sent = append(sent, now)
		now = c.NextTimer()
		c.Tick(now)
	}
	if !errors.Is(c.Err(), syscall.ETIMEDOUT) {
		t.Fatalf("err %v, want ETIMEDOUT", c.Err())
	}
	// 1 + 7 SYNs at 0, 1, 3, 7, 15, 31, 63, 123 s; the waits are capped
	// at the 60 s maximum RTO, so it gives up at 183 s: RFC 1122
	// §4.2.3.5 (RFC 9293 §3.8.3, MUST-23) wants a SYN retransmitted for
	// at least 3 minutes.
	want := []time.Duration{0, 1, 3, 7, 15, 31, 63, 123}
	if len(sent) != len(want) || len(w.queue) != len(want) {
		t.Fatalf("SYNs at %v (%d sent), want %v", sent, len(w.queue), want)
	}
	for i := range want {
		if sent[i] != want[i]*time.Second {
			t.Fatalf("SYN %d at %v, want %v", i, sent[i], want[i]*time.Second)
		}
	}
	if now != 183*time.Second {
		t.Fatalf("gave up at %v, want 183s", now)
	}
}

func TestRFC5961ChallengeAck(t *testing.T) {
	p := newPair(t, Config{})
	// An in-window RST that is not exactly RCV.NXT: challenge ACK, no reset.
	rst := Segment{SrcPort: 80, DstPort: 40000, Seq: p.a.rcvNxt + 100, Flags: FlagRST}
	p.a.Handle(&rst, p.now)
	p.wantState(p.a, Established)
	ack := p.take(p.aOut)
	if ack.Flags != FlagACK || ack.Ack != p.a.rcvNxt {
		t.Fatalf("challenge ACK %v", ack.String())
	}
	// A SYN on an established connection: challenge ACK too.
	syn := Segment{SrcPort: 80, DstPort: 40000, Seq: p.a.rcvNxt + 5, Flags: FlagSYN}
	p.a.Handle(&syn, p.now)
	p.wantState(p.a, Established)
	if ack := p.take(p.aOut); ack.Flags != FlagACK {
		t.Fatalf("challenge ACK for SYN %v", ack.String())
	}
	// The exact RST resets.
	rst.Seq = p.a.rcvNxt
	p.a.Handle(&rst, p.now)
	if p.a.State() != Closed || !errors.Is(p.a.Err(), syscall.ECONNRESET) {
		t.Fatalf("state %v err %v", p.a.State(), p.a.Err())
	}
}

func TestResetFor(t *testing.T) {
	syn := Segment{SrcPort: 1234, DstPort: 80, Seq: 100, Flags: FlagSYN, Payload: []byte("ab")}
	rst, ok := ResetFor(&syn)
	if !ok || rst.Flags != FlagRST|FlagACK || rst.Seq != 0 || rst.Ack != 103 || rst.DstPort != 1234 {
		t.Fatalf("reset for SYN: %v", rst.String())
	}
	ack := Segment{SrcPort: 1234, DstPort: 80, Seq: 100, Ack: 777, Flags: FlagACK}
	rst, _ = ResetFor(&ack)
	if rst.Flags != FlagRST || rst.Seq != 777 {
		t.Fatalf("reset for ACK: %v", rst.String())
	}
	if _, ok := ResetFor(&Segment{Flags: FlagRST}); ok {
		t.Fatal("an RST was answered")
	}
}

// TestTransferAcrossSeqWrap runs a full connection whose sequence numbers
// cross the 2^32 wrap point in both directions. The arithmetic itself is
// tested in package seqnum (TestSeqWraparound).
func TestTransferAcrossSeqWrap(t *testing.T) {
	p := &pair{t: t}
	p.aOut = &wire{name: "a>", log: &p.log}
	p.bOut = &wire{name: "b>", log: &p.log}
	p.a = NewActive(Config{}, p.aOut, 1, 2, 0xffffff00, 0)
	syn := p.take(p.aOut)
	p.b = NewPassive(Config{}, p.bOut, &syn, 0xfffffff0, 0)
	p.run()
	data := pattern(300000)
	if got := p.transfer(p.a, p.b, data); string(got) != string(data) {
		t.Fatal("transfer across the wrap point failed")
	}
	if got := p.transfer(p.b, p.a, data); string(got) != string(data) {
		t.Fatal("reverse transfer across the wrap point failed")
	}
}

func TestOptionsRoundTrip(t *testing.T) {
	seg := Segment{SrcPort: 1, DstPort: 2, Seq: 3, Ack: 4, Flags: FlagSYN | FlagACK, Window: 5,
		Options: Options{MSS: 1460, HasWScale: true, WScale: 7, SACKPermitted: true, HasTS: true, TSVal: 9, TSEcr: 10}}
	b := make([]byte, seg.HeaderLen())
	seg.Marshal(b)
	if len(b)%4 != 0 {
		t.Fatalf("header length %d", len(b))
	}
	var got Segment
	if err := Parse(b, &got); err != nil {
		t.Fatal(err)
	}
	got.Payload = nil
	seg.Payload = nil
	if got.Options != seg.Options || got.Seq != 3 || got.Ack != 4 || got.Flags != seg.Flags {
		t.Fatalf("got %+v\nwant %+v", got, seg)
	}
	// Malformed: a length running past the header.
	bad := append([]byte(nil), b...)
	bad[HeaderLen+1] = 40
	if err := Parse(bad, &got); err == nil {
		t.Fatal("malformed option accepted")
	}
}

// TestFullWindowsBothWaysDoNotDeadlock is an echo server whose peer sends
// faster than it reads: both receive buffers fill, and the connection must
// still drain once the readers read (a lost window update here deadlocks).
func TestFullWindowsBothWaysDoNotDeadlock(t *testing.T) {
	p := newPair(t, Config{RcvBuf: 100003, SndBuf: 70001})
	data := pattern(2 << 20)
	var echoed, back []byte
	rest := data
	buf := make([]byte, 1237) // odd sizes make odd windows
	for i := 0; i < 200000 && len(back) < len(data); i++ {
		if len(rest) > 0 {
			n, _ := p.a.Write(rest, p.now)
			rest = rest[n:]
		}
		// The echo server reads only what it can write back at once.
		if p.b.snd.Free() >= len(buf) {
			if n, _ := p.b.Read(buf, p.now); n > 0 {
				echoed = append(echoed, buf[:n]...)
				if w, _ := p.b.Write(buf[:n], p.now); w != n {
					t.Fatalf("echo wrote %d of %d", w, n)
				}
			}
		}
		if i%3 == 0 {
			if n, _ := p.a.Read(buf, p.now); n > 0 {
				back = append(back, buf[:n]...)
			}
		}
		p.run()
		if i%100 == 99 {
			p.advance(time.Millisecond)
		}
	}
	if string(back) != string(data) {
		t.Fatalf("echoed %d of %d bytes back (server saw %d)\n%s", len(back), len(data), len(echoed), p.dump())
	}
}

// TestSimultaneousOpen: both ends send SYN before seeing the other's, go
// through SYN-RECEIVED, and both reach ESTABLISHED (RFC 9293 §3.5 fig. 8).
func TestSimultaneousOpen(t *testing.T) {
	p := &pair{t: t}
	p.aOut = &wire{name: "a>", log: &p.log, owner: &p.a, t: t}
	p.bOut = &wire{name: "b>", log: &p.log, owner: &p.b, t: t}
	var trace []string
	cfg := Config{Trace: func(tr Transition, _ *Segment) {
		trace = append(trace, fmt.Sprintf("%v→%v on %v", tr.From, tr.To, tr.On))
	}}
	p.a = NewActive(cfg, p.aOut, 5000, 6000, 100, 0)
	p.b = NewActive(cfg, p.bOut, 6000, 5000, 900, 0)
	synA, synB := p.take(p.aOut), p.take(p.bOut)
	p.b.Handle(&synA, 0)
	p.a.Handle(&synB, 0)
	p.wantState(p.a, SynReceived)
	p.wantState(p.b, SynReceived)
	p.run()
	p.wantState(p.a, Established)
	p.wantState(p.b, Established)
	want := "CLOSED→SYN-SENT on app connect,CLOSED→SYN-SENT on app connect," +
		"SYN-SENT→SYN-RECEIVED on rcv SYN,SYN-SENT→SYN-RECEIVED on rcv SYN," +
		"SYN-RECEIVED→ESTABLISHED on rcv ACK of SYN,SYN-RECEIVED→ESTABLISHED on rcv ACK of SYN"
	if got := strings.Join(trace, ","); got != want {
		t.Fatalf("transitions:\n%s\nwant\n%s", got, want)
	}
	data := pattern(50000)
	if got := p.transfer(p.a, p.b, data); string(got) != string(data) {
		t.Fatal("transfer after simultaneous open failed")
	}
}

func TestTimeWaitReleasesSendBuffer(t *testing.T) {
	p := newPair(t, Config{})
	data := pattern(500000)
	p.transfer(p.a, p.b, data)
	p.a.Close(p.now)
	p.run()
	p.b.Close(p.now)
	p.run()
	p.wantState(p.a, TimeWait)
	if p.a.snd.Limit() != 0 || p.a.snd.Len() != 0 {
		t.Fatalf("TIME-WAIT keeps a send ring of limit %d", p.a.snd.Limit())
	}
	// A retransmitted FIN is still answered correctly afterwards.
	fin := Segment{SrcPort: 80, DstPort: 40000, Seq: p.a.rcvNxt - 1, Ack: p.a.sndMax, Flags: FlagFIN | FlagACK}
	p.a.Handle(&fin, p.now)
	if ack := p.take(p.aOut); ack.Ack != p.a.rcvNxt || ack.Seq != p.a.sndMax {
		t.Fatalf("re-ACK %v", ack.String())
	}
}
