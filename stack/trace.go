package stack

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/tund-project/tund/tcp"
)

// TraceEvent is one state transition of one connection (or listener), as
// Config.Trace receives it.
type TraceEvent struct {
	Time          time.Duration  // since the stack started
	Local, Remote netip.AddrPort // Remote is zero for a listener
	tcp.Transition
	// The segment that caused the transition; HasSegment is false for
	// application calls and timers.
	HasSegment bool
	Flags      tcp.Flags
	Seq, Ack   tcp.Seq
	Len        int // payload bytes
}

// String formats the event as tund -trace prints it, e.g.
//
//	198.18.0.1:40312 ESTABLISHED → CLOSE-WAIT on rcv FIN seq=3141 ack=2718
//
// The address is the peer's (the local one for a listener); seq and ack
// are the raw numbers of the segment, as a packet capture shows them.
func (e TraceEvent) String() string {
	who := e.Remote
	if !who.IsValid() {
		who = e.Local
	}
	s := fmt.Sprintf("%v %v → %v on %v", who, e.From, e.To, e.On)
	if e.HasSegment {
		s += fmt.Sprintf(" seq=%d ack=%d", uint32(e.Seq), uint32(e.Ack))
		if e.Len > 0 {
			s += fmt.Sprintf(" len=%d", e.Len)
		}
	}
	if e.Action != "" {
		s += " (" + e.Action + ")"
	}
	return s
}

// tracer returns the core's trace hook for a connection between local and
// remote, or nil when tracing is off.
func (s *Stack) tracer(local, remote netip.AddrPort) func(tcp.Transition, *tcp.Segment) {
	if s.cfg.Trace == nil {
		return nil
	}
	return func(t tcp.Transition, seg *tcp.Segment) {
		s.emitTrace(local, remote, t, seg)
	}
}

func (s *Stack) emitTrace(local, remote netip.AddrPort, t tcp.Transition, seg *tcp.Segment) {
	ev := TraceEvent{Time: s.now(), Local: local, Remote: remote, Transition: t}
	if seg != nil {
		ev.HasSegment = true
		ev.Flags, ev.Seq, ev.Ack, ev.Len = seg.Flags, seg.Seq, seg.Ack, len(seg.Payload)
	}
	s.cfg.Trace(ev)
}

// traceTW reports a transition out of TIME-WAIT of a table entry.
func (s *Stack) traceTW(key tuple, on tcp.Trigger, seg *tcp.Segment) {
	if s.cfg.Trace == nil {
		return
	}
	if t, ok := tcp.Lookup(tcp.TimeWait, on); ok {
		s.emitTrace(s.localOf(key), key.remote(), t, seg)
	}
}

// traceLoop reports one of tcp.Loops for the connection (or, for a
// listener's loops, the would-be connection) key.
func (s *Stack) traceLoop(key tuple, t tcp.Transition, seg *tcp.Segment) {
	if s.cfg.Trace != nil {
		s.emitTrace(s.localOf(key), key.remote(), t, seg)
	}
}

func (s *Stack) localOf(key tuple) netip.AddrPort {
	if key.addr().Is4() {
		return netip.AddrPortFrom(s.cfg.Addr, key.lport)
	}
	return netip.AddrPortFrom(s.cfg.Addr6, key.lport)
}

func (t tuple) remote() netip.AddrPort {
	return netip.AddrPortFrom(t.addr(), t.rport)
}
