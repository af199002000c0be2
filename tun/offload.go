package tun

import (
	"encoding/binary"
	"errors"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// MaxOffloadSize is the largest packet an Offloader carries: the largest
// IPv4 packet, whose Total Length field is 16 bits. An IPv6 packet is held
// to the same bound, header included, although its Payload Length (16
// bits too, but not counting the 40-byte fixed header) would allow 40
// bytes more.
const MaxOffloadSize = 65535

// Offload is what travels beside a packet on a device with offloads: the
// meaning of Linux's virtio-net header (struct virtio_net_hdr), in the
// terms tund uses. The zero Offload is an ordinary packet with a complete
// checksum.
type Offload struct {
	// GSOSize, when nonzero, makes the packet a TCP super-segment: one IP
	// header (IPv4, or IPv6 without extension headers) and one TCP header
	// followed by a payload that stands for a run of segments of GSOSize
	// bytes each (the last may be shorter). Whoever puts it on a wire cuts
	// it up as the kernel's GSO does (SoftwareGSO): each piece gets a copy
	// of the headers, its own sequence number, length (IPv4's Total
	// Length or IPv6's Payload Length), IPv4 ID and checksums, and FIN and
	// PSH only on the last piece. A stack receiving it may take it whole,
	// as one segment.
	GSOSize uint16
	// CsumPartial means the TCP checksum field holds only the sum of the
	// pseudo-header (IPv4's or IPv6's, over the packet's whole TCP
	// length), folded but not inverted: the rest of the checksum is still
	// to be done. A writer leaves that to the device; a reader may skip
	// checking the checksum, because such a packet never left this host's
	// memory (the kernel's CHECKSUM_PARTIAL, virtio-net's NEEDS_CSUM).
	CsumPartial bool
	// CsumValid means the device already verified the TCP checksum
	// (virtio-net's DATA_VALID); a reader may skip it.
	CsumValid bool

	// Where a partial checksum goes, as the kernel said (csum_start and
	// csum_offset): for a packet read from a TUN, which may be UDP as
	// well as TCP. Zero means TCP's: after the IP header, at offset 16.
	csumStart, csumOffset uint16
}

// Trusted reports whether a reader may skip the TCP checksum of a packet
// that came with o: the device vouches for the bytes.
func (o Offload) Trusted() bool { return o.CsumPartial || o.CsumValid }

// Offloader is a Device that can carry TCP super-segments and leave
// checksums to the device: segmentation offload, as virtio-net offers it
// and Linux's TUN with IFF_VNET_HDR, for IPv4 and IPv6 alike. Read and
// Write keep working on every Offloader and always carry ordinary packets
// with complete checksums (cutting a super-segment that arrived into
// pieces); ReadOffload and WriteOffload are the fast path.
type Offloader interface {
	Device
	// ReadOffload reads one packet, possibly a super-segment of up to
	// MaxOffloadSize bytes, into p, and returns its length and offload
	// information. p should hold MaxOffloadSize bytes.
	ReadOffload(p []byte) (int, Offload, error)
	// WriteOffload sends the packet made of head followed by payload
	// (two slices, so a payload can go straight from a send buffer to the
	// device without being copied next to its headers) with offload
	// information o. A super-segment (o.GSOSize > 0) may be up to
	// MaxOffload bytes; each of its pieces, like any other packet, must
	// fit the MTU. If the device turns out to refuse a super-segment it
	// cuts it up itself and stops offering offloads (MaxOffload returns 0
	// from then on): the write still succeeds.
	WriteOffload(head, payload []byte, o Offload) error
	// MaxOffload is the largest packet WriteOffload takes, or 0 when the
	// device carries no super-segments (offloads are off, or refused).
	MaxOffload() int
}

// Errors of SoftwareGSO for a packet it cannot cut.
var (
	errNotTCP  = errors.New("tun: offload: not an IPv4 or IPv6 TCP packet")
	errIPv6Ext = errors.New("tun: offload: an IPv6 packet with extension headers")
	errBadGSO  = errors.New("tun: offload: malformed super-segment")
)

// SoftwareGSO does in software what a device does with a packet sent with
// o: it cuts a TCP super-segment into segments of o.GSOSize payload bytes,
// or completes the checksum of a packet with a partial one, writing each
// resulting packet into buf (which must hold the largest of them, the
// headers plus o.GSOSize) and calling emit with it. The packet is IPv4 or
// IPv6, as its version nibble says; an IPv6 packet must have no extension
// headers (tund sends none). Each piece gets the super-segment's headers
// with its own sequence number and length (IPv4's Total Length, IPv6's
// Payload Length), for IPv4 its own IP ID (the first piece's plus its
// index, as Linux numbers them) and header checksum, FIN and PSH only on
// the last piece and CWR only on the first (RFC 3168 §6.1.2's rule for
// TSO), and a complete TCP checksum: what a capture on the wire would
// show. A packet with neither offload is passed to emit as it is. A
// malformed packet is an error and nothing is emitted.
func SoftwareGSO(pkt []byte, o Offload, buf []byte, emit func([]byte) error) error {
	if o.GSOSize == 0 {
		if !o.CsumPartial {
			return emit(pkt)
		}
		n := len(pkt)
		if o.csumStart == 0 {
			// Our own stack's packet: the checksum goes where its IP
			// header says, over exactly the length the header gives.
			_, _, total, err := ipHeader(pkt)
			if err != nil {
				return err
			}
			n = total
		}
		if len(buf) < n {
			return errBadGSO
		}
		copy(buf, pkt[:n])
		if !completeChecksum(buf[:n], o) {
			return errBadGSO
		}
		return emit(buf[:n])
	}
	hl, hdrLen, total, err := tcpHeaders(pkt)
	if err != nil {
		return err
	}
	size := total - hdrLen
	step := size
	if o.GSOSize > 0 {
		step = int(o.GSOSize)
	}
	if len(buf) < hdrLen+min(step, size) {
		return errBadGSO
	}
	for i, off := 0, 0; off < size || i == 0; i++ {
		n := min(step, size-off)
		last := off+n == size
		m := cutPiece(buf, pkt, hl, hdrLen, off, n, i, last)
		if err := emit(buf[:m]); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// udpChecksumOffset is where the checksum sits in a UDP header (RFC 768).
const udpChecksumOffset = 6

// completeChecksum finishes the partial checksum of pkt in place: the
// ones'-complement sum from the checksum's start to the end of the packet,
// which includes the pseudo-header sum already in the field, inverted into
// the field (virtio-net's NEEDS_CSUM rule, for any transport). It reports
// false if the packet is too short for where the checksum goes.
func completeChecksum(pkt []byte, o Offload) bool {
	start, off := int(o.csumStart), int(o.csumOffset)
	if start == 0 {
		hl, proto, _, err := ipHeader(pkt)
		if err != nil {
			return false
		}
		start = hl
		switch proto {
		case uint8(header.TCPProtocolNumber):
			off = header.TCPChecksumOffset
		case uint8(header.UDPProtocolNumber):
			off = udpChecksumOffset
		default:
			return false
		}
	}
	if start+off+2 > len(pkt) {
		return false
	}
	sum := ^checksum.Checksum(pkt[start:], 0)
	if sum == 0 && off == udpChecksumOffset {
		// RFC 768: a computed zero is sent as all ones (and RFC 8200
		// §8.1 keeps the rule for UDP over IPv6, where zero is not
		// allowed at all).
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[start+off:], sum)
	return true
}

// ipHeader reads the IP header of pkt as tund's stack sends one, IPv4 or
// IPv6 by the version nibble: the header's length, the transport protocol
// and the packet's total length, which must fit in pkt. An IPv6 packet
// must have no extension headers: its fixed header (RFC 8200 §3) is then
// all of its IP header, and Next Header the transport protocol.
func ipHeader(pkt []byte) (hl int, proto uint8, total int, err error) {
	if len(pkt) == 0 {
		return 0, 0, 0, errNotTCP
	}
	switch pkt[0] >> 4 {
	case header.IPv4Version:
		ip := header.IPv4(pkt)
		if !ip.IsValid(len(pkt)) {
			return 0, 0, 0, errNotTCP
		}
		return int(ip.HeaderLength()), ip.Protocol(), int(ip.TotalLength()), nil
	case header.IPv6Version:
		if len(pkt) < header.IPv6MinimumSize {
			return 0, 0, 0, errNotTCP
		}
		ip := header.IPv6(pkt)
		total = header.IPv6MinimumSize + int(ip.PayloadLength())
		if total > len(pkt) {
			return 0, 0, 0, errBadGSO
		}
		if ipv6Extension(ip.NextHeader()) {
			return 0, 0, 0, errIPv6Ext
		}
		return header.IPv6MinimumSize, ip.NextHeader(), total, nil
	}
	return 0, 0, 0, errNotTCP
}

// ipv6Extension reports whether an IPv6 Next Header value names an
// extension header (RFC 8200 §4 and IANA's list of them) rather than an
// upper-layer protocol.
func ipv6Extension(next uint8) bool {
	switch next {
	case 0, // Hop-by-Hop Options
		43,       // Routing
		44,       // Fragment
		50,       // Encapsulating Security Payload
		51,       // Authentication Header
		60,       // Destination Options
		135,      // Mobility
		139,      // Host Identity Protocol
		140,      // Shim6
		253, 254: // experimentation and testing (RFC 3692)
		return true
	}
	return false
}

// tcpHeaders checks that pkt is a TCP packet, IPv4 or IPv6 without
// extension headers, whose headers SoftwareGSO can copy and returns the IP
// header length, the IP+TCP header length and the total length.
func tcpHeaders(pkt []byte) (hl, hdrLen, total int, err error) {
	hl, proto, total, err := ipHeader(pkt)
	if err != nil {
		return 0, 0, 0, err
	}
	if proto != uint8(header.TCPProtocolNumber) {
		return 0, 0, 0, errNotTCP
	}
	if total < hl+header.TCPMinimumSize {
		return 0, 0, 0, errBadGSO
	}
	thl := int(header.TCP(pkt[hl:]).DataOffset())
	if thl < header.TCPMinimumSize || hl+thl > total {
		return 0, 0, 0, errBadGSO
	}
	return hl, hl + thl, total, nil
}

// cutPiece writes piece i of the super-segment pkt into dst: its headers,
// fixed for the piece, and payload bytes [off, off+n). It returns the
// piece's length.
func cutPiece(dst, pkt []byte, hl, hdrLen, off, n, i int, last bool) int {
	copy(dst, pkt[:hdrLen])
	copy(dst[hdrLen:], pkt[hdrLen+off:hdrLen+off+n])
	if dst[0]>>4 == header.IPv6Version {
		// RFC 8200 §3: the Payload Length counts all that follows the
		// fixed header. IPv6 has no ID to number (that lives in the
		// Fragment header, which a TCP segment never has) and no header
		// checksum.
		header.IPv6(dst).SetPayloadLength(uint16(hdrLen - hl + n))
	} else {
		ip := header.IPv4(dst)
		ip.SetTotalLength(uint16(hdrLen + n))
		ip.SetID(header.IPv4(pkt).ID() + uint16(i))
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	t := header.TCP(dst[hl : hdrLen+n])
	t.SetSequenceNumber(header.TCP(pkt[hl:]).SequenceNumber() + uint32(off))
	flags := t.Flags()
	if !last {
		flags &^= header.TCPFlagFin | header.TCPFlagPsh
	}
	if i > 0 {
		flags &^= header.TCPFlagCwr
	}
	t.SetFlags(uint8(flags))
	t.SetChecksum(0)
	t.SetChecksum(^checksum.Checksum(t, pseudoSum(dst, len(t))))
	return hdrLen + n
}

// pseudoSum is the folded, uninverted sum of the TCP pseudo-header of the
// IP packet pkt for a TCP length of tcpLen, read straight from the
// packet's address fields; the version nibble says which pseudo-header.
func pseudoSum(pkt []byte, tcpLen int) uint16 {
	if pkt[0]>>4 == header.IPv6Version {
		// RFC 8200 §8.1: upper-layer checksums over IPv6 MUST cover
		// the 128-bit source and destination addresses, the
		// upper-layer packet length as 32 bits, three zero bytes and
		// the upper-layer protocol's Next Header value (TCP's, not
		// that of any extension header before it).
		var tail [8]byte
		binary.BigEndian.PutUint32(tail[0:], uint32(tcpLen))
		tail[7] = uint8(header.TCPProtocolNumber)
		return checksum.Checksum(tail[:], checksum.Checksum(pkt[8:40], 0))
	}
	// RFC 9293 §3.1: source and destination address, a zero byte, the
	// protocol and the TCP length in 16 bits.
	var tail [4]byte
	tail[1] = uint8(header.TCPProtocolNumber)
	binary.BigEndian.PutUint16(tail[2:], uint16(tcpLen))
	return checksum.Checksum(tail[:], checksum.Checksum(pkt[12:20], 0))
}

// PartialChecksum sets the TCP checksum field of the TCP packet pkt (of
// which only the headers need be present), IPv4 or IPv6 without extension
// headers as its version nibble says, to what a sender with checksum
// offload puts there: the pseudo-header sum over a TCP length of tcpLen,
// folded, not inverted (Offload.CsumPartial).
func PartialChecksum(pkt []byte, tcpLen int) {
	hl := header.IPv6MinimumSize
	if pkt[0]>>4 != header.IPv6Version {
		hl = int(header.IPv4(pkt).HeaderLength())
	}
	header.TCP(pkt[hl:]).SetChecksum(pseudoSum(pkt, tcpLen))
}

// The virtio-net header that leads every packet on a TUN opened with
// IFF_VNET_HDR (linux/virtio_net.h, struct virtio_net_hdr): 10 bytes,
// fields in the machine's byte order (a legacy virtio device's).
const (
	vnetHdrLen = 10

	vnetNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	vnetDataValid = 2 // VIRTIO_NET_HDR_F_DATA_VALID

	vnetGSONone  = 0 // VIRTIO_NET_HDR_GSO_NONE
	vnetGSOTCPv4 = 1 // VIRTIO_NET_HDR_GSO_TCPV4
	vnetGSOTCPv6 = 4 // VIRTIO_NET_HDR_GSO_TCPV6
	vnetGSOECN   = 0x80
)

// encodeVnet writes the virtio-net header for a packet whose IP and TCP
// headers are head (at least) with offload o into b[:10]. The version
// nibble chooses the GSO type: TCPV4, or TCPV6 for an IPv6 packet (whose
// IP header is the 40-byte fixed one: tund sends no extension headers).
func encodeVnet(b []byte, head []byte, o Offload) {
	clear(b[:vnetHdrLen])
	if !o.CsumPartial && o.GSOSize == 0 {
		return
	}
	ne := binary.NativeEndian
	hl, gso := int(head[0]&0x0f)*4, uint8(vnetGSOTCPv4)
	if head[0]>>4 == header.IPv6Version {
		hl, gso = header.IPv6MinimumSize, vnetGSOTCPv6
	}
	if o.CsumPartial {
		b[0] = vnetNeedsCsum
		ne.PutUint16(b[6:], uint16(hl))                       // csum_start: the TCP header
		ne.PutUint16(b[8:], uint16(header.TCPChecksumOffset)) // csum_offset within it
	}
	if o.GSOSize > 0 {
		b[1] = gso
		thl := int(head[hl+12]>>4) * 4
		ne.PutUint16(b[2:], uint16(hl+thl)) // hdr_len
		ne.PutUint16(b[4:], o.GSOSize)
	}
}

// decodeVnet reads the virtio-net header b. TCP super-segments of either
// family (GSO_TCPV4, GSO_TCPV6) are taken; ok is false for an offload
// tund cannot take (UDP segmentation, which it never asks for).
func decodeVnet(b []byte) (o Offload, ok bool) {
	ne := binary.NativeEndian
	o.CsumPartial = b[0]&vnetNeedsCsum != 0
	o.CsumValid = b[0]&vnetDataValid != 0
	if o.CsumPartial {
		o.csumStart, o.csumOffset = ne.Uint16(b[6:]), ne.Uint16(b[8:])
	}
	switch b[1] &^ vnetGSOECN {
	case vnetGSONone:
	case vnetGSOTCPv4, vnetGSOTCPv6:
		o.GSOSize = ne.Uint16(b[4:])
	default:
		return o, false
	}
	return o, true
}
