package tcp

// Trigger is the event that moves a connection from one state to another.
type Trigger uint8

// The triggers of RFC 9293 §3.3.2's diagram, named as a trace prints them.
const (
	AppConnect        Trigger = iota // active OPEN: send SYN
	AppListen                        // passive OPEN
	AppClose                         // CLOSE (or CloseWrite): send FIN
	AppAbort                         // ABORT: send RST
	RcvSyn                           // a SYN arrives (passive open or simultaneous open)
	RcvSynAck                        // our SYN is ACKed by a SYN+ACK
	RcvAckOfSyn                      // the ACK that completes a passive open
	RcvFin                           // the peer's FIN, in order
	RcvAckOfFin                      // the ACK of our FIN
	RcvFinAckOfFin                   // the peer's FIN and the ACK of ours in one segment
	RcvRst                           // an acceptable RST
	Timeout2MSL                      // TIME-WAIT expires
	TimeoutRetransmit                // retransmissions exhausted
	TimeoutFinWait2                  // an orphaned FIN-WAIT-2 is reclaimed
	RcvCookieAck                     // the ACK returning a valid SYN cookie
	TimeoutKeepAlive                 // keepalive probes went unanswered
	RcvICMPError                     // an ICMP hard error about our SYN or SYN+ACK
	TimeoutOrphan                    // a closed connection the peer keeps from finishing is reset
	RcvSynInWindow                   // a SYN inside the window, with RFC 793's rule (Config.InWindowSYN)
	TimeoutPersist                   // the persist timer: the peer's window is shut (a Loop)
	numTriggers
)

var triggerNames = [numTriggers]string{
	"app connect", "app listen", "app close", "app abort",
	"rcv SYN", "rcv SYN+ACK", "rcv ACK of SYN", "rcv FIN", "rcv ACK of FIN",
	"rcv FIN+ACK of FIN", "rcv RST", "2MSL timeout", "retransmit timeout",
	"FIN-WAIT-2 timeout", "rcv ACK of SYN cookie", "keepalive timeout",
	"rcv ICMP unreachable", "orphan timeout", "rcv SYN in window",
	"persist timeout",
}

// String names the trigger as the trace and the diagram print it.
func (t Trigger) String() string {
	if t < numTriggers {
		return triggerNames[t]
	}
	return "invalid trigger"
}

// Transition is one edge of the state diagram.
type Transition struct {
	From   State
	On     Trigger
	To     State
	Action string // what goes on the wire, for the diagram ("" for nothing)
}

// Transitions is the whole state machine of RFC 9293 §3.3.2 in one place:
// the code consults it to change state, the trace prints its entries, and
// the diagram in docs/ is generated from it.
var Transitions = []Transition{
	{Closed, AppConnect, SynSent, "send SYN"},
	{Closed, AppListen, Listen, ""},
	{Listen, RcvSyn, SynReceived, "send SYN+ACK"},
	{Listen, AppClose, Closed, ""},
	// A listener under a SYN flood keeps no state for the handshake: the
	// connection is born ESTABLISHED when the ACK brings its cookie back.
	{Listen, RcvCookieAck, Established, ""},

	{SynSent, RcvSynAck, Established, "send ACK"},
	{SynSent, RcvSyn, SynReceived, "send SYN+ACK"}, // simultaneous open
	{SynSent, AppClose, Closed, ""},
	{SynSent, RcvRst, Closed, ""},
	{SynSent, TimeoutRetransmit, Closed, ""},
	{SynSent, RcvICMPError, Closed, ""}, // RFC 1122 §4.2.3.9: port/protocol unreachable

	{SynReceived, RcvAckOfSyn, Established, ""},
	{SynReceived, AppClose, FinWait1, "send FIN"},
	{SynReceived, RcvRst, Closed, ""},
	{SynReceived, TimeoutRetransmit, Closed, ""},
	{SynReceived, RcvICMPError, Closed, ""},

	{Established, AppClose, FinWait1, "send FIN"},
	{Established, RcvFin, CloseWait, "send ACK"},

	{FinWait1, RcvAckOfFin, FinWait2, ""},
	{FinWait1, RcvFin, Closing, "send ACK"}, // simultaneous close
	{FinWait1, RcvFinAckOfFin, TimeWait, "send ACK"},
	{FinWait2, RcvFin, TimeWait, "send ACK"},
	{FinWait2, TimeoutFinWait2, Closed, "send RST"}, // orphan reclaimed
	{Closing, RcvAckOfFin, TimeWait, ""},
	{TimeWait, Timeout2MSL, Closed, ""},
	// A SYN whose ISN lies beyond the old connection's sequence space ends
	// TIME-WAIT early so the tuple can carry a new connection (RFC 9293
	// §3.10.7.4, RFC 1122 §4.2.2.13, RFC 6191); the SYN goes to the listener.
	{TimeWait, RcvSyn, Closed, ""},

	{CloseWait, AppClose, LastAck, "send FIN"},
	{LastAck, RcvAckOfFin, Closed, ""},

	// Resets and aborts in the synchronized states.
	{Established, RcvRst, Closed, ""},
	{FinWait1, RcvRst, Closed, ""},
	{FinWait2, RcvRst, Closed, ""},
	{CloseWait, RcvRst, Closed, ""},
	{Closing, RcvRst, Closed, ""},
	{LastAck, RcvRst, Closed, ""},
	{SynReceived, AppAbort, Closed, "send RST"},
	{Established, AppAbort, Closed, "send RST"},
	{FinWait1, AppAbort, Closed, "send RST"},
	{FinWait2, AppAbort, Closed, "send RST"},
	{CloseWait, AppAbort, Closed, "send RST"},
	{Closing, AppAbort, Closed, ""},
	{LastAck, AppAbort, Closed, ""},
	{TimeWait, AppAbort, Closed, ""},
	{SynSent, AppAbort, Closed, ""},
	{Established, TimeoutRetransmit, Closed, ""},
	{FinWait1, TimeoutRetransmit, Closed, ""},
	{CloseWait, TimeoutRetransmit, Closed, ""},
	{Closing, TimeoutRetransmit, Closed, ""},
	{LastAck, TimeoutRetransmit, Closed, ""},
	// RFC 1122 §4.2.3.6: an idle connection whose keepalive probes all
	// go unanswered is dropped (with an RST, as Linux does).
	{Established, TimeoutKeepAlive, Closed, "send RST"},
	{CloseWait, TimeoutKeepAlive, Closed, "send RST"},
	// An orphan (closed by the application) whose FIN or data the peer
	// keeps from being acknowledged — a window held shut, ACKs that never
	// come — is reset after OrphanRetries timeouts (Linux
	// tcp_orphan_retries), so no peer can hold it for ever.
	{FinWait1, TimeoutOrphan, Closed, "send RST"},
	{Closing, TimeoutOrphan, Closed, "send RST"},
	{LastAck, TimeoutOrphan, Closed, "send RST"},
	// Only with Config.InWindowSYN (RFC 793 §3.9; RFC 5961 §4.2 answers
	// with a challenge ACK instead, the default).
	{Established, RcvSynInWindow, Closed, "send RST"},
	{FinWait1, RcvSynInWindow, Closed, "send RST"},
	{FinWait2, RcvSynInWindow, Closed, "send RST"},
	{CloseWait, RcvSynInWindow, Closed, "send RST"},
	{Closing, RcvSynInWindow, Closed, "send RST"},
	{LastAck, RcvSynInWindow, Closed, "send RST"},
}

// Loops are events that leave a connection in its state but that a
// learner watching the trace should see, because the lesson is in them:
// why TIME-WAIT lasts (the peer's FIN again, ACKed again, the 2MSL wait
// started over), what a full listen queue does to a SYN, and how a sender
// keeps asking a receiver whose window is shut. The trace prints them as
// edges from a state to itself; they are not in Transitions, which is the
// RFC's diagram, and the state machine never looks them up.
var Loops = []Transition{
	LoopTimeWaitFin,
	LoopSynCookie,
	LoopSynQueueFull,
	LoopAcceptQueueFull,
	LoopAcceptQueueFullAck,
	{Established, TimeoutPersist, Established, "send window probe"},
	{FinWait1, TimeoutPersist, FinWait1, "send window probe"},
	{CloseWait, TimeoutPersist, CloseWait, "send window probe"},
	{Closing, TimeoutPersist, Closing, "send window probe"},
	{LastAck, TimeoutPersist, LastAck, "send window probe"},
}

// The loops the stack reports for its TIME-WAIT table and its listeners.
var (
	// RFC 9293 §3.10.7.4: the FIN again means our last ACK was lost.
	LoopTimeWaitFin = Transition{TimeWait, RcvFin, TimeWait, "send ACK, restart 2MSL"}
	// RFC 4987 §3.6: the SYN queue is full, the SYN is answered statelessly.
	LoopSynCookie = Transition{Listen, RcvSyn, Listen, "SYN queue full: send SYN+ACK with a cookie"}
	// Without cookies, a full SYN queue drops the SYN; the client retries.
	LoopSynQueueFull = Transition{Listen, RcvSyn, Listen, "SYN queue full: drop the SYN"}
	// The application is not accepting: Linux drops the SYN, so do we.
	LoopAcceptQueueFull = Transition{Listen, RcvSyn, Listen, "accept queue full: drop the SYN"}
	// A handshake that completes while the accept queue is full: its ACK
	// is dropped (Linux, tcp_abort_on_overflow=0), the connection stays
	// half-open and resends its SYN+ACK until there is room or it gives
	// up, so the accept queue never holds more than the backlog.
	LoopAcceptQueueFullAck = Transition{SynReceived, RcvAckOfSyn, SynReceived, "accept queue full: drop the ACK"}
)

// transitionIndex maps (from, trigger) to an index into Transitions, +1
// (0: no such edge).
var transitionIndex [numStates][numTriggers]uint8

func init() {
	for i, t := range Transitions {
		if transitionIndex[t.From][t.On] != 0 {
			panic("tcp: duplicate transition " + t.From.String() + " on " + t.On.String())
		}
		transitionIndex[t.From][t.On] = uint8(i + 1)
	}
}

// transitionSeen, when set (by the package's tests), is told of every
// transition taken, so a test can fail when an edge of the table is never
// exercised.
var transitionSeen func(t Transition)

func noteTransition(t Transition) {
	if transitionSeen != nil {
		transitionSeen(t)
	}
}

// Lookup returns the edge of the table leaving from on trigger, if any.
func Lookup(from State, on Trigger) (Transition, bool) { return lookupTransition(from, on) }

// lookupTransition returns the edge leaving from on trigger, if any.
func lookupTransition(from State, on Trigger) (Transition, bool) {
	i := transitionIndex[from][on]
	if i == 0 {
		return Transition{}, false
	}
	return Transitions[i-1], true
}
