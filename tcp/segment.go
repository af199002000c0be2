package tcp

import (
	"errors"
	"fmt"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// HeaderLen is the length of a TCP header without options.
const HeaderLen = header.TCPMinimumSize

// MaxHeaderLen is the longest TCP header (with 40 bytes of options).
const MaxHeaderLen = header.TCPHeaderMaximumSize

// Segment is a parsed TCP segment. Payload aliases the buffer it was parsed
// from (inbound) or the send buffer (outbound): it is valid only until the
// call that handed it over returns.
type Segment struct {
	SrcPort, DstPort uint16
	Seq, Ack         Seq
	Flags            Flags
	Window           uint16 // as on the wire, before window scaling
	Urgent           uint16
	Options          Options
	Payload          []byte
	// GSOSize is not on the wire: on a segment the core hands its
	// Sender, a nonzero GSOSize means the Payload is a run of segments of
	// GSOSize bytes (the last possibly shorter) that the link will cut
	// up, each with these headers (Config.GSOMax).
	GSOSize int
}

// Errors from Parse.
var (
	ErrShortSegment = errors.New("tcp: segment shorter than its header")
)

// Parse decodes b (a whole TCP segment whose checksum the IP layer has
// already verified) into seg. Payload aliases b. It never allocates.
func Parse(b []byte, seg *Segment) error {
	if len(b) < HeaderLen {
		return ErrShortSegment
	}
	h := header.TCP(b)
	off := int(h.DataOffset())
	if off < HeaderLen || off > len(b) {
		return ErrShortSegment
	}
	seg.SrcPort = h.SourcePort()
	seg.DstPort = h.DestinationPort()
	seg.Seq = Seq(h.SequenceNumber())
	seg.Ack = Seq(h.AckNumber())
	seg.Flags = Flags(h.Flags())
	seg.Window = h.WindowSize()
	seg.Urgent = h.UrgentPointer()
	seg.Payload = b[off:]
	return parseOptions(b[HeaderLen:off], &seg.Options)
}

// Len is the sequence space the segment occupies: its payload plus one for
// each of SYN and FIN (RFC 9293 §3.4, SEG.LEN).
func (s *Segment) Len() int {
	n := len(s.Payload)
	if s.Flags&FlagSYN != 0 {
		n++
	}
	if s.Flags&FlagFIN != 0 {
		n++
	}
	return n
}

// HeaderLen is the length of the header Marshal writes, options included.
func (s *Segment) HeaderLen() int { return HeaderLen + s.Options.encodedLen() }

// Marshal writes the header, options and payload into b and returns the
// total length. The checksum field is left zero for the IP layer, which
// owns the pseudo-header. b must hold HeaderLen()+len(Payload) bytes.
func (s *Segment) Marshal(b []byte) int {
	hl := s.MarshalHeader(b)
	return hl + copy(b[hl:], s.Payload)
}

// MarshalHeader writes the header and options, not the payload, into b
// and returns their length, HeaderLen(); the checksum field is left zero.
func (s *Segment) MarshalHeader(b []byte) int {
	hl := s.HeaderLen()
	h := header.TCP(b)
	h.Encode(&header.TCPFields{
		SrcPort:       s.SrcPort,
		DstPort:       s.DstPort,
		SeqNum:        uint32(s.Seq),
		AckNum:        uint32(s.Ack),
		DataOffset:    uint8(hl),
		Flags:         header.TCPFlags(s.Flags),
		WindowSize:    s.Window,
		UrgentPointer: s.Urgent,
	})
	s.Options.encode(b[HeaderLen:hl])
	return hl
}

// String formats the segment like a one-line packet trace.
func (s *Segment) String() string {
	str := fmt.Sprintf("%d > %d %s seq=%d", s.SrcPort, s.DstPort, s.Flags, uint32(s.Seq))
	if s.Flags&FlagACK != 0 {
		str += fmt.Sprintf(" ack=%d", uint32(s.Ack))
	}
	str += fmt.Sprintf(" win=%d len=%d", s.Window, len(s.Payload))
	if s.GSOSize > 0 {
		str += fmt.Sprintf(" gso=%d", s.GSOSize)
	}
	if s.Options.MSS != 0 {
		str += fmt.Sprintf(" mss=%d", s.Options.MSS)
	}
	if s.Options.HasWScale {
		str += fmt.Sprintf(" wscale=%d", s.Options.WScale)
	}
	if s.Options.SACKPermitted {
		str += " sackOK"
	}
	if s.Options.HasTS {
		str += fmt.Sprintf(" ts=%d/%d", s.Options.TSVal, s.Options.TSEcr)
	}
	for i := 0; i < s.Options.NumSACK; i++ {
		if i == 0 {
			str += " sack="
		}
		str += fmt.Sprintf("[%d,%d)", uint32(s.Options.SACK[i].Start), uint32(s.Options.SACK[i].End))
	}
	return str
}
