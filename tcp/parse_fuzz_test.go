package tcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"
)

// refOptions is a deliberately plain reading of the TCP option list, written
// from RFC 9293 §3.1 (kinds 0 and 1 are one byte, every other option is
// kind, length, body), RFC 9293 §3.7.1 (MSS, length 4), RFC 7323 §2.2 and
// §3.2 (window scale, length 3, shift clamped to 14; timestamps, length 10)
// and RFC 2018 §2-3 (SACK-permitted, length 2; SACK, 2+8n bytes), without
// looking at parseOptions. Unknown kinds are skipped by their length;
// at most MaxSACKBlocks blocks are kept.
func refOptions(b []byte) (o Options, ok bool) {
	for i := 0; i < len(b); {
		switch b[i] {
		case 0:
			return o, true
		case 1:
			i++
			continue
		}
		if i+2 > len(b) {
			return Options{}, false
		}
		kind, l := b[i], int(b[i+1])
		if l < 2 || i+l > len(b) {
			return Options{}, false
		}
		body := b[i+2 : i+l]
		switch kind {
		case 2:
			if l != 4 {
				return Options{}, false
			}
			o.MSS = uint16(body[0])<<8 | uint16(body[1])
		case 3:
			if l != 3 {
				return Options{}, false
			}
			o.HasWScale = true
			o.WScale = int8(min(int(body[0]), 14))
		case 4:
			if l != 2 {
				return Options{}, false
			}
			o.SACKPermitted = true
		case 8:
			if l != 10 {
				return Options{}, false
			}
			o.HasTS = true
			o.TSVal = binary.BigEndian.Uint32(body)
			o.TSEcr = binary.BigEndian.Uint32(body[4:])
		case 5:
			if len(body)%8 != 0 {
				return Options{}, false
			}
			for j := 0; j < len(body); j += 8 {
				if o.NumSACK == MaxSACKBlocks {
					break
				}
				o.SACK[o.NumSACK] = SACKBlock{
					Start: Seq(binary.BigEndian.Uint32(body[j:])),
					End:   Seq(binary.BigEndian.Uint32(body[j+4:])),
				}
				o.NumSACK++
			}
		}
		i += l
	}
	return o, true
}

// aliases reports whether sub is b[off:off+len(sub)] itself, not a copy.
func aliases(b, sub []byte, off int) bool {
	if off < 0 || off+len(sub) > len(b) {
		return false
	}
	if len(sub) == 0 {
		return true
	}
	return unsafe.SliceData(sub) == &b[off]
}

// sameSegment compares everything Parse fills in; the payloads by content.
func sameSegment(a, b *Segment) bool {
	return a.SrcPort == b.SrcPort && a.DstPort == b.DstPort && a.Seq == b.Seq && a.Ack == b.Ack &&
		a.Flags == b.Flags && a.Window == b.Window && a.Urgent == b.Urgent &&
		a.Options == b.Options && bytes.Equal(a.Payload, b.Payload)
}

// marshalRoundTrip marshals seg, checks the header Marshal wrote (its data
// offset, its length), parses it back and checks it reads as seg did.
// It returns the marshalled bytes.
func marshalRoundTrip(t *testing.T, seg *Segment) []byte {
	t.Helper()
	hl := seg.HeaderLen()
	if hl < HeaderLen || hl > MaxHeaderLen || hl%4 != 0 {
		t.Fatalf("HeaderLen %d for %v", hl, seg.String())
	}
	buf := make([]byte, hl+len(seg.Payload)+7) // slack that must stay untouched
	for i := range buf {
		buf[i] = 0xee
	}
	n := seg.Marshal(buf)
	if n != hl+len(seg.Payload) {
		t.Fatalf("Marshal wrote %d bytes, want %d", n, hl+len(seg.Payload))
	}
	if !bytes.Equal(buf[n:], bytes.Repeat([]byte{0xee}, 7)) {
		t.Fatalf("Marshal wrote past its %d bytes", n)
	}
	if off := int(buf[12]>>4) * 4; off != hl {
		t.Fatalf("data offset %d, HeaderLen %d", off, hl)
	}
	if ck := binary.BigEndian.Uint16(buf[16:]); ck != 0 {
		t.Fatalf("Marshal set the checksum (%#x): that is the IP layer's", ck)
	}
	var back Segment
	if err := Parse(buf[:n], &back); err != nil {
		t.Fatalf("our own segment does not parse: %v\n% x", err, buf[:n])
	}
	if !sameSegment(&back, seg) {
		t.Fatalf("round trip changed the segment:\n got %s %+v\nwant %s %+v", back.String(), back.Options, seg.String(), seg.Options)
	}
	return buf[:n]
}

// FuzzParse feeds Parse arbitrary bytes and checks it against the wire
// format: it fails exactly when the header or an option is malformed, the
// fields it returns are the header's, the payload is the input past the
// data offset (aliased, not copied), the options are what a plain reading
// of the option list gives, the input is left alone and no state leaks
// from a previous segment; and a parsed segment marshalled again parses to
// the same segment. The same bytes also drive a segment built field by
// field through Marshal and back.
func FuzzParse(f *testing.F) {
	// SYN with MSS 1460.
	f.Add([]byte{0, 1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0x60, 0x12, 0, 5, 0, 0, 0, 0, 2, 4, 5, 0xb4})
	// The SYN a Linux kernel sent (ip package's capture): MSS, SACK-perm,
	// timestamps, window scale.
	f.Add([]byte{0x8b, 0x38, 0x1f, 0x90, 0x60, 0x84, 0xa6, 0x70, 0, 0, 0, 0, 0xa0, 0x02, 0xfa, 0xf0, 0x3b, 0xc7, 0, 0,
		2, 4, 5, 0xb4, 4, 2, 8, 10, 0x69, 0xb3, 0xe1, 0x0b, 0, 0, 0, 0, 1, 3, 3, 10})
	// ACK with timestamps and two SACK blocks, then payload.
	f.Add([]byte{0, 80, 0x9c, 0x40, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 0x80, 0x18, 1, 0, 0, 0, 0, 0,
		1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 5, 18, 0, 0, 0x20, 0x10, 0, 0, 0x20, 0x20, 0, 0, 0x30, 0, 0, 0, 0x30, 0x10,
		'd', 'a', 't', 'a'})
	// A truncated option, an option running past the header, EOL with junk after it.
	f.Add([]byte{0, 1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0x60, 0x12, 0, 5, 0, 0, 0, 0, 1, 1, 1, 2})
	f.Add([]byte{0, 1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0x60, 0x12, 0, 5, 0, 0, 0, 0, 8, 10, 0, 0})
	f.Add([]byte{0, 1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0x60, 0x12, 0, 5, 0, 0, 0, 0, 0, 0xff, 3, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := append([]byte(nil), b...)
		// Garbage from a previous segment must not survive.
		seg := Segment{Payload: []byte("stale"), Options: Options{MSS: 9, HasTS: true, NumSACK: 3}}
		err := Parse(b, &seg)
		if !bytes.Equal(b, orig) {
			t.Fatal("Parse modified its input")
		}
		var off int
		if len(b) >= HeaderLen {
			off = int(b[12]>>4) * 4
		}
		switch {
		case len(b) < HeaderLen || off < HeaderLen || off > len(b):
			if !errors.Is(err, ErrShortSegment) {
				t.Fatalf("%d bytes, data offset %d: err %v, want ErrShortSegment", len(b), off, err)
			}
			return
		}
		want, ok := refOptions(b[HeaderLen:off])
		if !ok {
			if !errors.Is(err, ErrBadOptions) {
				t.Fatalf("malformed options % x accepted (err %v) as %+v", b[HeaderLen:off], err, seg.Options)
			}
		} else {
			if err != nil {
				t.Fatalf("well-formed options % x rejected: %v", b[HeaderLen:off], err)
			}
			if seg.Options != want {
				t.Fatalf("options % x read as %+v, want %+v", b[HeaderLen:off], seg.Options, want)
			}
		}
		// The fixed header is read whatever the options.
		be := binary.BigEndian
		if seg.SrcPort != be.Uint16(b) || seg.DstPort != be.Uint16(b[2:]) ||
			uint32(seg.Seq) != be.Uint32(b[4:]) || uint32(seg.Ack) != be.Uint32(b[8:]) ||
			seg.Flags != Flags(b[13]) || seg.Window != be.Uint16(b[14:]) || seg.Urgent != be.Uint16(b[18:]) {
			t.Fatalf("header fields misread: %s", seg.String())
		}
		if len(seg.Payload) != len(b)-off || !aliases(b, seg.Payload, off) {
			t.Fatalf("payload is not b[%d:] (%d bytes of %d)", off, len(seg.Payload), len(b))
		}
		if seg.Len() != len(seg.Payload)+int(b[13]>>1&1)+int(b[13]&1) {
			t.Fatalf("Len %d for %d payload bytes and flags %v", seg.Len(), len(seg.Payload), seg.Flags)
		}
		_ = seg.String()
		if err != nil {
			return
		}
		// Marshal again (when the options fit the 40-byte option space in
		// our aligned layout; a dense list may not) and parse back: the
		// same segment, and marshalling that gives the same bytes.
		if seg.HeaderLen() <= MaxHeaderLen {
			first := marshalRoundTrip(t, &seg)
			var again Segment
			if Parse(first, &again) != nil {
				t.Fatal("unreachable: checked by marshalRoundTrip")
			}
			if second := marshalRoundTrip(t, &again); !bytes.Equal(first, second) {
				t.Fatalf("marshal is not stable:\n% x\n% x", first, second)
			}
		}

		// The other direction: a segment built from the same bytes, with
		// options as our own segments carry them, through Marshal and back.
		if len(b) < 32 {
			return
		}
		var s Segment
		s.SrcPort, s.DstPort = be.Uint16(b), be.Uint16(b[2:])
		s.Seq, s.Ack = Seq(be.Uint32(b[4:])), Seq(be.Uint32(b[8:]))
		s.Flags, s.Window, s.Urgent = Flags(b[13]), be.Uint16(b[14:]), be.Uint16(b[18:])
		sel := b[12]
		s.Options.MSS = be.Uint16(b[16:]) * uint16(sel&1)
		if sel&2 != 0 {
			s.Options.HasWScale, s.Options.WScale = true, int8(b[20]%15)
		}
		s.Options.SACKPermitted = sel&4 != 0
		if sel&8 != 0 {
			s.Options.HasTS, s.Options.TSVal, s.Options.TSEcr = true, be.Uint32(b[21:]), be.Uint32(b[25:])
		}
		s.Options.NumSACK = int(b[29] % (MaxSACKBlocks + 1))
		for i := 0; i < s.Options.NumSACK; i++ {
			s.Options.SACK[i] = SACKBlock{Seq(be.Uint32(b[4:]) + uint32(i)*977), Seq(be.Uint32(b[8:]) - uint32(i)*131)}
		}
		s.Payload = b[32:]
		if s.HeaderLen() <= MaxHeaderLen {
			marshalRoundTrip(t, &s)
		}
	})
}
