package tcp

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
