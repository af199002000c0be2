package tcp

// State is a connection state of RFC 9293 §3.3.2.
type State uint8

// The eleven states of RFC 9293 §3.3.2.
const (
	Closed State = iota
	Listen
	SynSent
	SynReceived
	Established
	FinWait1
	FinWait2
	CloseWait
	Closing
	LastAck
	TimeWait
	numStates
)

var stateNames = [numStates]string{
	"CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED",
	"FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT",
}

var netstatNames = [numStates]string{
	"CLOSE", "LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED",
	"FIN_WAIT1", "FIN_WAIT2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT",
}

// String returns the RFC 9293 spelling, e.g. "SYN-RECEIVED".
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "INVALID"
}

// NetstatName returns the spelling netstat and ss use, e.g. "SYN_RECV".
func (s State) NetstatName() string {
	if s < numStates {
		return netstatNames[s]
	}
	return "UNKNOWN"
}

// States lists every state in RFC order.
func States() []State {
	s := make([]State, numStates)
	for i := range s {
		s[i] = State(i)
	}
	return s
}

// synchronized reports whether the handshake has completed in this state
// (RFC 9293 §3.5.2's "synchronized states").
func (s State) synchronized() bool { return s >= Established }

// canReceiveData reports whether in-order data is delivered in this state
// (RFC 9293 §3.10.7.4, "seventh, process the segment text").
func (s State) canReceiveData() bool {
	return s == Established || s == FinWait1 || s == FinWait2
}

// canSendData reports whether the application may still queue data.
func (s State) canSendData() bool {
	return s == SynSent || s == SynReceived || s == Established || s == CloseWait
}
