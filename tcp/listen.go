package tcp

import "time"

// Listening is a passive socket (RFC 9293 §3.10.7.2): it has a state of
// its own (LISTEN, then CLOSED when the application closes it) but no
// sequence space; every SYN it admits becomes a new Conn in SYN-RECEIVED,
// made with NewPassive. It exists so that the listener's two edges of the
// diagram, CLOSED → LISTEN and LISTEN → CLOSED, go through the same
// transition table and trace as every other edge.
type Listening struct {
	state State
	trace func(t Transition, seg *Segment)
}

// NewListening performs the passive OPEN (CLOSED → LISTEN on app listen).
// cfg.Trace, if set, is told about it.
func NewListening(cfg Config) *Listening {
	l := &Listening{trace: cfg.Trace}
	l.move(AppListen)
	return l
}

// State is LISTEN until Close, CLOSED after.
func (l *Listening) State() State { return l.state }

// Close performs the CLOSE call on a listener (LISTEN → CLOSED). Any
// connections it admitted live on; the caller decides their fate.
func (l *Listening) Close() { l.move(AppClose) }

// Classify says what to do with a segment that found no connection but
// reached this listener (see OnListen).
func (l *Listening) Classify(seg *Segment) ListenAction {
	if l.state != Listen {
		return ListenReset
	}
	return OnListen(seg)
}

func (l *Listening) move(on Trigger) {
	t, ok := lookupTransition(l.state, on)
	if !ok {
		return
	}
	l.state = t.To
	noteTransition(t)
	if l.trace != nil {
		l.trace(t, nil)
	}
}

// CookieSynAck builds the SYN+ACK a listener sends when it answers syn
// with a SYN cookie (iss, from SynCookies.Make) instead of creating a
// connection: the same options NewPassive would offer, so the connection
// NewPassiveCookie later builds agrees with what the peer was told.
func CookieSynAck(cfg Config, syn *Segment, iss Seq) Segment {
	cfg = cfg.withDefaults()
	seg := Segment{
		SrcPort: syn.DstPort, DstPort: syn.SrcPort,
		Seq: iss, Ack: syn.Seq + 1, Flags: FlagSYN | FlagACK,
		Window: uint16(min(cfg.RcvBuf, 0xffff)), // a SYN's window is never scaled
	}
	seg.Options.MSS = uint16(cfg.MSS)
	if syn.Options.HasWScale && !cfg.NoWScale {
		seg.Options.HasWScale = true
		seg.Options.WScale = int8(rcvShift(cfg))
	}
	return seg
}

// NewPassiveCookie creates the connection for an ACK that returned a valid
// SYN cookie: the handshake is complete, so it is born ESTABLISHED
// (LISTEN → ESTABLISHED on rcv ACK of SYN cookie) with the MSS and window
// scale the cookie carried. Data or a FIN on the ACK is processed too.
func NewPassiveCookie(cfg Config, out Sender, ack *Segment, opts CookieOptions, now time.Duration) *Conn {
	c := newConn(cfg, out, ack.DstPort, ack.SrcPort)
	c.state = Listen
	c.iss = ack.Ack - 1
	c.sndUna, c.sndNxt, c.sndMax, c.sndBufSeq = ack.Ack, ack.Ack, ack.Ack, ack.Ack
	c.synAcked = true
	c.irs = ack.Seq - 1
	c.rcvNxt = ack.Seq
	// The SYN+ACK advertised min(RcvBuf, 65535) unscaled.
	c.rcvAdvEdge = c.rcvNxt.Add(min(c.cfg.RcvBuf, 0xffff))
	c.rcvShownEdge = c.rcvAdvEdge
	var syn Segment
	syn.Options.MSS = uint16(opts.MSS)
	if opts.WScale >= 0 {
		syn.Options.HasWScale, syn.Options.WScale = true, int8(opts.WScale)
	}
	c.takeSynOptions(&syn)
	c.sndWnd = int(ack.Window) << c.sndWScale
	c.maxSndWnd = c.sndWnd
	c.sndWL1, c.sndWL2 = ack.Seq, ack.Ack
	c.transition(RcvCookieAck, ack)
	c.events |= EvWritable
	if len(ack.Payload) > 0 || ack.Flags.Has(FlagFIN) {
		c.Handle(ack, now)
	}
	return c
}
