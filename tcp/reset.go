package tcp

// ResetFor builds the reset RFC 9293 §3.10.7.1 prescribes for a segment
// that reaches no connection (CLOSED state) or that a listener refuses:
// if the segment has ACK, <SEQ=SEG.ACK><CTL=RST>; otherwise
// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. An incoming RST is never
// answered (ok is false).
func ResetFor(in *Segment) (out Segment, ok bool) {
	if in.Flags.Has(FlagRST) {
		return Segment{}, false
	}
	out = Segment{SrcPort: in.DstPort, DstPort: in.SrcPort, Flags: FlagRST}
	if in.Flags.Has(FlagACK) {
		out.Seq = in.Ack
	} else {
		out.Ack = in.Seq.Add(in.Len())
		out.Flags |= FlagACK
	}
	return out, true
}

// ListenAction says what a listener does with a segment for which no
// connection exists yet.
type ListenAction uint8

// The listener's choices (RFC 9293 §3.10.7.2).
const (
	ListenDrop   ListenAction = iota // ignore it (an RST, or no SYN)
	ListenReset                      // answer with ResetFor (any ACK)
	ListenAccept                     // a SYN: create a connection with NewPassive
)

// OnListen classifies a segment arriving at a LISTEN socket: first an RST
// is ignored, second any ACK is reset, third a SYN opens a connection;
// anything else is dropped (RFC 9293 §3.10.7.2).
func OnListen(seg *Segment) ListenAction {
	switch {
	case seg.Flags.Has(FlagRST):
		return ListenDrop
	case seg.Flags.Has(FlagACK):
		return ListenReset
	case seg.Flags.Has(FlagSYN) && !seg.Flags.Has(FlagFIN):
		return ListenAccept
	}
	return ListenDrop
}
