package tcp

import (
	"errors"
	"io"
	"syscall"
	"testing"
	"time"
)

// TestKeepAliveProbesIdleConnection: an idle connection with keepalives
// on sends a probe after the idle time; the peer answers, and the
// connection lives on for as long as it does.
func TestKeepAliveProbesIdleConnection(t *testing.T) {
	p := reach(t, Established, Config{})
	p.a.SetKeepAlive(10*time.Second, p.now)
	probes := 0
	tap(p.aOut, func(seg *Segment) {
		if seg.Seq == p.a.sndUna.Add(-1) && len(seg.Payload) == 0 {
			probes++
		}
	})
	p.advance(9 * time.Second)
	if probes != 0 {
		t.Fatalf("probe before the idle time")
	}
	p.advance(2 * time.Second)
	if probes != 1 {
		t.Fatalf("%d probes after the idle time, want 1", probes)
	}
	p.advance(10 * time.Minute)
	p.wantState(p.a, Established)
	if probes < 50 {
		t.Errorf("only %d probes in 10 minutes at a 10 s period", probes)
	}
}

// TestKeepAliveDropsDeadPeer: when the peer stops answering, the
// connection is reset and fails with ETIMEDOUT after KeepAliveProbes
// unanswered probes — from ESTABLISHED and from CLOSE-WAIT.
func TestKeepAliveDropsDeadPeer(t *testing.T) {
	for _, s := range []State{Established, CloseWait} {
		t.Run(s.String(), func(t *testing.T) {
			p := reach(t, s, Config{KeepAlive: 5 * time.Second, KeepAliveProbes: 3})
			if s == CloseWait {
				p.a.SetKeepAlive(5*time.Second, p.now) // arm it now the state is reached
			}
			p.bOut.drop = func(*Segment) bool { return true } // the peer is gone
			p.advance(5*time.Second + 3*5*time.Second + time.Second)
			p.wantState(p.a, Closed)
			if !errors.Is(p.a.Err(), syscall.ETIMEDOUT) {
				t.Errorf("error %v, want ETIMEDOUT", p.a.Err())
			}
		})
	}
}

// TestCloseRead: after CloseRead, Read returns io.EOF, and what the peer
// still sends is acknowledged and dropped, not buffered.
func TestCloseRead(t *testing.T) {
	p := reach(t, Established, Config{})
	p.b.Write([]byte("before"), p.now)
	p.run()
	p.a.CloseRead()
	if n, err := p.a.Read(make([]byte, 10), p.now); n != 0 || err != io.EOF {
		t.Fatalf("Read after CloseRead: %d %v", n, err)
	}
	p.b.Write(pattern(100000), p.now)
	p.advance(time.Second)
	if p.b.sndUna != p.b.sndMax || p.a.RecvQueue() != 0 {
		t.Errorf("peer's data: una %d max %d, a holds %d", uint32(p.b.sndUna), uint32(p.b.sndMax), p.a.RecvQueue())
	}
	p.wantState(p.a, Established)
}
