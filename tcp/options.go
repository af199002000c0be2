package tcp

import (
	"encoding/binary"
	"errors"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// MaxSACKBlocks is the most SACK blocks one segment can carry alongside a
// timestamp option (RFC 2018 §3).
const MaxSACKBlocks = 4

// SACKBlock is one received range [Start, End) reported by a SACK option.
type SACKBlock struct{ Start, End Seq }

// Options holds the TCP options this stack understands. The zero value
// means "no options". Fixed size, so parsing never allocates.
type Options struct {
	MSS           uint16 // 0: absent (RFC 9293 §3.7.1)
	WScale        int8   // -1 or 0 with HasWScale false: absent (RFC 7323 §2)
	HasWScale     bool
	SACKPermitted bool // RFC 2018 §2
	HasTS         bool // RFC 7323 §3
	TSVal, TSEcr  uint32
	NumSACK       int
	SACK          [MaxSACKBlocks]SACKBlock
}

// ErrBadOptions reports a malformed option list (a length that runs past
// the header or is too short for its kind).
var ErrBadOptions = errors.New("tcp: malformed options")

// parseOptions decodes the option bytes of a TCP header. Unknown options are
// skipped by their length (RFC 9293 §3.1: "MUST be prepared to handle an
// illegal option length"), a malformed list is an error.
func parseOptions(b []byte, o *Options) error {
	*o = Options{}
	for len(b) > 0 {
		kind := b[0]
		switch kind {
		case header.TCPOptionEOL:
			return nil
		case header.TCPOptionNOP:
			b = b[1:]
			continue
		}
		if len(b) < 2 {
			return ErrBadOptions
		}
		l := int(b[1])
		if l < 2 || l > len(b) {
			return ErrBadOptions
		}
		body := b[2:l]
		switch kind {
		case header.TCPOptionMSS:
			if l != header.TCPOptionMSSLength {
				return ErrBadOptions
			}
			o.MSS = binary.BigEndian.Uint16(body)
		case header.TCPOptionWS:
			if l != header.TCPOptionWSLength {
				return ErrBadOptions
			}
			o.HasWScale = true
			o.WScale = int8(min(body[0], 14)) // RFC 7323 §2.3: clamp to 14
		case header.TCPOptionSACKPermitted:
			if l != header.TCPOptionSackPermittedLength {
				return ErrBadOptions
			}
			o.SACKPermitted = true
		case header.TCPOptionTS:
			if l != header.TCPOptionTSLength {
				return ErrBadOptions
			}
			o.HasTS = true
			o.TSVal = binary.BigEndian.Uint32(body)
			o.TSEcr = binary.BigEndian.Uint32(body[4:])
		case header.TCPOptionSACK:
			if (l-2)%8 != 0 {
				return ErrBadOptions
			}
			for i := 0; i+8 <= len(body) && o.NumSACK < MaxSACKBlocks; i += 8 {
				o.SACK[o.NumSACK] = SACKBlock{
					Start: Seq(binary.BigEndian.Uint32(body[i:])),
					End:   Seq(binary.BigEndian.Uint32(body[i+4:])),
				}
				o.NumSACK++
			}
		}
		b = b[l:]
	}
	return nil
}

// encodedLen is the number of option bytes encode writes, a multiple of 4.
func (o *Options) encodedLen() int {
	n := 0
	if o.MSS != 0 {
		n += header.TCPOptionMSSLength
	}
	if o.HasWScale {
		n += 1 + header.TCPOptionWSLength // NOP + WS
	}
	if o.SACKPermitted && !o.HasTS {
		n += 2 + header.TCPOptionSackPermittedLength // NOP NOP + SACKOK
	}
	if o.HasTS {
		n += 2 + header.TCPOptionTSLength // NOP NOP + TS, or SACKOK + TS
	}
	if o.NumSACK > 0 {
		n += 2 + 2 + 8*o.NumSACK // NOP NOP + kind len + blocks
	}
	return n
}

// encode writes the options in the layout Linux uses (each option aligned
// so the 32-bit fields fall on 32-bit boundaries) and returns the length.
func (o *Options) encode(b []byte) int {
	n := 0
	if o.MSS != 0 {
		n += header.EncodeMSSOption(uint32(o.MSS), b[n:])
	}
	if o.HasWScale {
		b[n] = header.TCPOptionNOP
		n++
		n += header.EncodeWSOption(int(o.WScale), b[n:])
	}
	switch {
	case o.SACKPermitted && o.HasTS:
		n += header.EncodeSACKPermittedOption(b[n:])
	case o.SACKPermitted:
		b[n], b[n+1] = header.TCPOptionNOP, header.TCPOptionNOP
		n += 2
		n += header.EncodeSACKPermittedOption(b[n:])
	case o.HasTS:
		b[n], b[n+1] = header.TCPOptionNOP, header.TCPOptionNOP
		n += 2
	}
	if o.HasTS {
		n += header.EncodeTSOption(o.TSVal, o.TSEcr, b[n:])
	}
	if o.NumSACK > 0 {
		b[n], b[n+1] = header.TCPOptionNOP, header.TCPOptionNOP
		b[n+2], b[n+3] = header.TCPOptionSACK, byte(2+8*o.NumSACK)
		n += 4
		for i := 0; i < o.NumSACK; i++ {
			binary.BigEndian.PutUint32(b[n:], uint32(o.SACK[i].Start))
			binary.BigEndian.PutUint32(b[n+4:], uint32(o.SACK[i].End))
			n += 8
		}
	}
	return n
}
