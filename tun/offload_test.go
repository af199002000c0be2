package tun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// superSegment builds an IPv4 TCP packet from 10.0.0.1:1000 to
// 10.0.0.2:2000 with a timestamp option, the given flags and payload,
// IP ID 7, and a partial checksum, as tund's stack writes one.
func superSegment(flags header.TCPFlags, payload []byte) []byte {
	return superSegmentOf(4, flags, payload)
}

// superSegmentOf is superSegment for IP version v: 4, or 6 for an IPv6
// packet from 2001:db8::1 to 2001:db8::2 (traffic class 0x28, flow label
// 0x5eed1, hop limit 64, no extension headers) with the same TCP header.
func superSegmentOf(v int, flags header.TCPFlags, payload []byte) []byte {
	const thl = header.TCPMinimumSize + 12
	hl := header.IPv4MinimumSize
	if v == 6 {
		hl = header.IPv6MinimumSize
	}
	pkt := make([]byte, hl+thl+len(payload))
	if v == 6 {
		header.IPv6(pkt).Encode(&header.IPv6Fields{TrafficClass: 0x28, FlowLabel: 0x5eed1,
			PayloadLength: uint16(len(pkt) - hl), TransportProtocol: header.TCPProtocolNumber, HopLimit: 64,
			SrcAddr: tcpip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}),
			DstAddr: tcpip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 2})})
	} else {
		ip := header.IPv4(pkt)
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(pkt)), ID: 7, Flags: header.IPv4FlagDontFragment, TTL: 64,
			Protocol: uint8(header.TCPProtocolNumber), SrcAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 1}), DstAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 2})})
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	t := header.TCP(pkt[hl:])
	t.Encode(&header.TCPFields{SrcPort: 1000, DstPort: 2000, SeqNum: 0xfffff000, AckNum: 99, DataOffset: thl,
		Flags: flags, WindowSize: 5000})
	opts := t[header.TCPMinimumSize:thl]
	opts[0], opts[1], opts[2], opts[3] = 1, 1, 8, 10 // NOP NOP TS
	binary.BigEndian.PutUint32(opts[4:], 12345)
	binary.BigEndian.PutUint32(opts[8:], 678)
	copy(pkt[hl+thl:], payload)
	PartialChecksum(pkt, len(t))
	return pkt
}

// headLen is the length of the IP and TCP headers of a packet made by
// superSegmentOf(v, ...).
func headLen(v int) int {
	if v == 6 {
		return header.IPv6MinimumSize + header.TCPMinimumSize + 12
	}
	return header.IPv4MinimumSize + header.TCPMinimumSize + 12
}

// families runs f as a subtest for IPv4 and for IPv6.
func families(t *testing.T, f func(t *testing.T, v int)) {
	for _, v := range []int{4, 6} {
		t.Run(fmt.Sprintf("IPv%d", v), func(t *testing.T) { f(t, v) })
	}
}

// ipOf checks that p is a whole IPv4 packet (with a correct header
// checksum if hdrSum) or a whole IPv6 packet without extension headers,
// its length exactly the header's, and returns its transport protocol,
// its transport segment and that segment's pseudo-header sum, computed
// with gVisor's helpers.
func ipOf(t *testing.T, p []byte, hdrSum bool) (proto tcpip.TransportProtocolNumber, seg []byte, pseudo uint16) {
	t.Helper()
	switch header.IPVersion(p) {
	case header.IPv4Version:
		ip := header.IPv4(p)
		if !ip.IsValid(len(p)) || int(ip.TotalLength()) != len(p) {
			t.Fatalf("bad IPv4 packet %x", p[:min(len(p), 20)])
		}
		if hdrSum && ip.CalculateChecksum() != 0xffff {
			t.Fatalf("bad IPv4 header checksum")
		}
		proto, seg = ip.TransportProtocol(), ip.Payload()
		return proto, seg, header.PseudoHeaderChecksum(proto, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(seg)))
	case header.IPv6Version:
		ip := header.IPv6(p)
		if !ip.IsValid(len(p)) || header.IPv6MinimumSize+int(ip.PayloadLength()) != len(p) {
			t.Fatalf("bad IPv6 packet %x", p[:min(len(p), 40)])
		}
		proto, seg = tcpip.TransportProtocolNumber(ip.NextHeader()), ip.Payload()
		return proto, seg, header.PseudoHeaderChecksum(proto, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(seg)))
	}
	t.Fatalf("not an IP packet: %x", p[:min(len(p), 20)])
	return 0, nil, 0
}

// checkPacket fails unless p is an IPv4 or IPv6 TCP packet with correct
// header (IPv4) and TCP checksums, and returns its TCP header.
func checkPacket(t *testing.T, p []byte) header.TCP {
	t.Helper()
	proto, seg, xsum := ipOf(t, p, true)
	if proto != header.TCPProtocolNumber {
		t.Fatalf("protocol %d, not TCP", proto)
	}
	if checksum.Checksum(seg, xsum) != 0xffff {
		t.Fatalf("bad TCP checksum in %d-byte packet", len(p))
	}
	return header.TCP(seg)
}

// checkCompleted checks a packet passed through with only its transport
// checksum completed: a valid IPv4 or IPv6 packet of the input's length
// (by its header), equal to the input but for the checksum field, and
// for TCP or UDP a checksum that verifies.
func checkCompleted(t *testing.T, in, p []byte) {
	t.Helper()
	if len(p) > len(in) {
		t.Fatalf("%d bytes out of %d in", len(p), len(in))
	}
	proto, seg, _ := ipOf(t, p, false)
	start := len(p) - len(seg)
	off := header.TCPChecksumOffset
	if proto == header.UDPProtocolNumber {
		off = udpChecksumOffset
	}
	for i := range p {
		if p[i] != in[i] && (i < start+off || i >= start+off+2) {
			t.Fatalf("byte %d changed", i)
		}
	}
	// The field held the pseudo-header sum (here whatever the input had
	// there): with that added back the packet must sum to all ones.
	held := binary.BigEndian.Uint16(in[start+off:])
	if checksum.Checksum(p[start:], held) != 0xffff {
		t.Fatalf("completed checksum does not verify")
	}
}

func randomPayload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestSoftwareGSOCutsLikeTheKernel: a super-segment, IPv4 or IPv6, is
// cut into pieces of GSOSize with the kernel's rules (RFC 3168 §6.1.2 for
// CWR; FIN and PSH on the last piece only), every checksum complete and
// verified with gVisor's helpers, each piece's length in its IP header
// (Total Length, Payload Length), IPv4 IDs numbered, the rest of the IP
// header copied, sequence numbers wrapping, the payload intact in order.
func TestSoftwareGSOCutsLikeTheKernel(t *testing.T) {
	families(t, func(t *testing.T, v int) {
		payload := randomPayload(10000, 1)
		pkt := superSegmentOf(v, header.TCPFlagAck|header.TCPFlagPsh|header.TCPFlagFin|header.TCPFlagCwr, payload)
		hdr := headLen(v)
		var got []byte
		var pieces int
		buf := make([]byte, hdr+1448)
		err := SoftwareGSO(pkt, Offload{GSOSize: 1448, CsumPartial: true}, buf, func(p []byte) error {
			tcp := checkPacket(t, p)
			i := pieces
			pieces++
			if len(p) != hdr+len(tcp.Payload()) {
				t.Errorf("piece %d: %d bytes for %d of payload", i, len(p), len(tcp.Payload()))
			}
			if v == 4 {
				if id := header.IPv4(p).ID(); id != uint16(7+i) {
					t.Errorf("piece %d: IP ID %d, want %d", i, id, 7+i)
				}
			} else {
				// All but the Payload Length as the super-segment had it:
				// traffic class, flow label, next header, hop limit, addresses.
				if pl := header.IPv6(p).PayloadLength(); int(pl) != len(p)-header.IPv6MinimumSize {
					t.Errorf("piece %d: payload length %d in a %d-byte packet", i, pl, len(p))
				}
				if !bytes.Equal(p[:4], pkt[:4]) || !bytes.Equal(p[6:40], pkt[6:40]) {
					t.Errorf("piece %d: IPv6 header %x, want %x but for the length", i, p[:40], pkt[:40])
				}
			}
			if seq := tcp.SequenceNumber(); seq != 0xfffff000+uint32(len(got)) {
				t.Errorf("piece %d: seq %#x, want %#x", i, seq, 0xfffff000+uint32(len(got)))
			}
			last := len(got)+len(tcp.Payload()) == len(payload)
			f := tcp.Flags()
			if f.Contains(header.TCPFlagFin) != last || f.Contains(header.TCPFlagPsh) != last {
				t.Errorf("piece %d (last %v): flags %v", i, last, f)
			}
			if f.Contains(header.TCPFlagCwr) != (i == 0) || !f.Contains(header.TCPFlagAck) {
				t.Errorf("piece %d: flags %v, want ACK, and CWR on the first only", i, f)
			}
			if !last && len(tcp.Payload()) != 1448 {
				t.Errorf("piece %d: %d bytes, want 1448", i, len(tcp.Payload()))
			}
			if ts := tcp.ParsedOptions(); !ts.TS || ts.TSVal != 12345 || ts.TSEcr != 678 {
				t.Errorf("piece %d: options %+v, want the timestamp copied", i, ts)
			}
			got = append(got, tcp.Payload()...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if pieces != 7 || !bytes.Equal(got, payload) {
			t.Fatalf("%d pieces carrying %d bytes, want 7 carrying the %d intact", pieces, len(got), len(payload))
		}
	})
}

// TestSoftwareGSOCompletesChecksums: a packet with a partial checksum and
// no segmentation comes out whole with its checksum done; one with
// neither offload comes out as it is.
func TestSoftwareGSOCompletesChecksums(t *testing.T) {
	families(t, func(t *testing.T, v int) {
		pkt := superSegmentOf(v, header.TCPFlagAck, randomPayload(700, 2))
		calls := 0
		if err := SoftwareGSO(pkt, Offload{CsumPartial: true}, make([]byte, 1500), func(p []byte) error {
			calls++
			checkPacket(t, p)
			checkCompleted(t, pkt, p)
			if len(p) != len(pkt) {
				t.Errorf("%d bytes, want %d", len(p), len(pkt))
			}
			return nil
		}); err != nil || calls != 1 {
			t.Fatalf("err %v, %d calls", err, calls)
		}
		same := false
		SoftwareGSO(pkt, Offload{}, nil, func(p []byte) error { same = &p[0] == &pkt[0]; return nil })
		if !same {
			t.Fatal("a packet without offloads was copied")
		}
	})
}

// TestPartialChecksum: the partial checksum PartialChecksum leaves in the
// TCP header is the pseudo-header sum as gVisor computes it (RFC 9293
// §3.1 for IPv4, RFC 8200 §8.1 for IPv6), and completing it gives a
// checksum that verifies.
func TestPartialChecksum(t *testing.T) {
	families(t, func(t *testing.T, v int) {
		for _, n := range []int{0, 1, 999, 60000} {
			pkt := superSegmentOf(v, header.TCPFlagAck, randomPayload(n, uint64(n)))
			var src, dst tcpip.Address
			hl := header.IPv4MinimumSize
			if v == 6 {
				hl = header.IPv6MinimumSize
				src, dst = header.IPv6(pkt).SourceAddress(), header.IPv6(pkt).DestinationAddress()
			} else {
				src, dst = header.IPv4(pkt).SourceAddress(), header.IPv4(pkt).DestinationAddress()
			}
			tcp := header.TCP(pkt[hl:])
			want := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(tcp)))
			if got := tcp.Checksum(); got != want {
				t.Fatalf("%d bytes: partial checksum %#04x, want the pseudo-header sum %#04x", n, got, want)
			}
			if !completeChecksum(pkt, Offload{}) {
				t.Fatalf("%d bytes: not completed", n)
			}
			checkPacket(t, pkt)
		}
	})
}

// TestSoftwareGSORejectsMalformed: what cannot be cut is an error, never a
// panic, and nothing is emitted: for IPv6 also a packet with extension
// headers, which tund never sends.
func TestSoftwareGSORejectsMalformed(t *testing.T) {
	good := superSegment(header.TCPFlagAck, randomPayload(5, 3)) // 57 bytes
	good6 := superSegmentOf(6, header.TCPFlagAck, randomPayload(5, 3))
	with := func(p []byte, f func(b []byte)) []byte { b := bytes.Clone(p); f(b); return b }
	cases := map[string][]byte{
		"empty":       nil,
		"short":       good[:10],
		"not IP":      append([]byte{0x50}, good[1:]...),
		"v4 as v6":    append([]byte{0x60}, good[1:]...),
		"truncated":   good[:50],
		"not TCP":     with(good, func(b []byte) { b[9] = 17 }),
		"data offset": with(good, func(b []byte) { b[32] = 0xf0 }),
		"tiny offset": with(good, func(b []byte) { b[32] = 0x10 }),
		"IHL too big": with(good, func(b []byte) { b[0] = 0x4f }),

		"v6 short":       good6[:39],
		"v6 truncated":   good6[:len(good6)-1],
		"v6 not TCP":     with(good6, func(b []byte) { b[6] = 17 }),
		"v6 no TCP room": with(good6, func(b []byte) { binary.BigEndian.PutUint16(b[4:], 19) }),
		"v6 jumbo":       with(good6, func(b []byte) { binary.BigEndian.PutUint16(b[4:], 0) }),
		"v6 data offset": with(good6, func(b []byte) { b[52] = 0xf0 }),
		"v6 tiny offset": with(good6, func(b []byte) { b[52] = 0x10 }),
		"v6 as v4":       append([]byte{0x46}, good6[1:]...),
	}
	for _, ext := range []uint8{0, 43, 44, 60} {
		cases[fmt.Sprintf("v6 extension %d", ext)] = with(good6, func(b []byte) { b[6] = ext })
	}
	for name, p := range cases {
		err := SoftwareGSO(p, Offload{GSOSize: 1000, CsumPartial: true}, make([]byte, 1500), func([]byte) error {
			t.Errorf("%s: a piece was emitted", name)
			return nil
		})
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if strings.HasPrefix(name, "v6 extension") && !errors.Is(err, errIPv6Ext) {
			t.Errorf("%s: %v, want %v", name, err, errIPv6Ext)
		}
	}
	// Completing a checksum needs less of a packet, but its IP header
	// must hold.
	for _, name := range []string{"empty", "short", "not IP", "v4 as v6", "truncated", "IHL too big",
		"v6 short", "v6 truncated", "v6 as v4", "v6 extension 0", "v6 extension 44"} {
		err := SoftwareGSO(cases[name], Offload{CsumPartial: true}, make([]byte, 1500), func([]byte) error {
			t.Errorf("%s, checksum only: a packet was emitted", name)
			return nil
		})
		if err == nil {
			t.Errorf("%s, checksum only: no error", name)
		}
	}
	for _, v := range []int{4, 6} {
		big := superSegmentOf(v, header.TCPFlagAck, randomPayload(3000, 3))
		if err := SoftwareGSO(big, Offload{GSOSize: 1448}, make([]byte, 100), func([]byte) error { return nil }); err == nil {
			t.Errorf("IPv%d: a buffer too small for a piece was accepted", v)
		}
	}
}

// FuzzSoftwareGSO: any bytes and segment size; no panic, and whatever is
// cut carries exactly the payload, in order, in pieces no bigger than
// asked, with valid checksums.
func FuzzSoftwareGSO(f *testing.F) {
	f.Add(superSegment(header.TCPFlagAck|header.TCPFlagFin, randomPayload(5000, 4)), uint16(1448))
	f.Add(superSegment(header.TCPFlagAck, nil), uint16(0))
	f.Add([]byte{0x45, 0, 0, 20}, uint16(1))
	// Found by CI: an IPv4 header length of 4 bytes, checksum only.
	f.Add(func() []byte {
		b := superSegment(header.TCPFlagAck, randomPayload(40, 6))
		b[0] = 0x41
		return b
	}(), uint16(0))
	f.Add(superSegmentOf(6, header.TCPFlagAck|header.TCPFlagFin, randomPayload(5000, 4)), uint16(1440))
	f.Add(superSegmentOf(6, header.TCPFlagAck, randomPayload(100, 4)), uint16(0))
	f.Add(func() []byte {
		b := superSegmentOf(6, header.TCPFlagAck, randomPayload(100, 4))
		b[6] = 17 // UDP: only its checksum can be completed
		return b
	}(), uint16(0))
	buf := make([]byte, MaxOffloadSize) // one input at a time per process
	f.Fuzz(func(t *testing.T, pkt []byte, gso uint16) {
		o := Offload{GSOSize: gso, CsumPartial: true}
		var got []byte
		err := SoftwareGSO(pkt, o, buf, func(p []byte) error {
			if gso == 0 {
				// Only the checksum is completed: the rest of
				// the packet is passed on as it came.
				checkCompleted(t, pkt, p)
				return nil
			}
			tcp := checkPacket(t, p)
			if gso > 0 && len(tcp.Payload()) > int(gso) {
				t.Fatalf("piece of %d bytes for a segment size of %d", len(tcp.Payload()), gso)
			}
			got = append(got, tcp.Payload()...)
			return nil
		})
		if err != nil || gso == 0 {
			return
		}
		_, hdr, total, _ := tcpHeaders(pkt)
		if !bytes.Equal(got, pkt[hdr:total]) {
			t.Fatalf("pieces carry %d bytes, want the %d of the payload", len(got), total-hdr)
		}
	})
}

// TestPipeOffloadCarriesSuperSegments: a super-segment, IPv4 or IPv6,
// written at one end of a PipeOffload is read whole, with its offload
// information, by ReadOffload at the other, and as complete pieces by
// Read.
func TestPipeOffloadCarriesSuperSegments(t *testing.T) {
	families(t, func(t *testing.T, v int) {
		a, b := PipeOffload(1500)
		defer a.Close()
		payload := randomPayload(5000, 5)
		pkt := superSegmentOf(v, header.TCPFlagAck|header.TCPFlagPsh, payload)
		hl := headLen(v)
		mss := 1500 - hl
		o := Offload{GSOSize: uint16(mss), CsumPartial: true}
		ao, bo := a.(Offloader), b.(Offloader)
		if ao.MaxOffload() != MaxOffloadSize {
			t.Fatalf("MaxOffload %d", ao.MaxOffload())
		}
		head, body := pkt[:hl], pkt[hl:]
		for range 2 {
			if err := ao.WriteOffload(head, body, o); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, MaxOffloadSize)
		n, got, err := bo.ReadOffload(buf)
		if err != nil || !bytes.Equal(buf[:n], pkt) || got.GSOSize != uint16(mss) || !got.CsumPartial || !got.Trusted() {
			t.Fatalf("ReadOffload: %d bytes, %+v, %v", n, got, err)
		}
		var joined []byte
		for len(joined) < len(payload) {
			n, err := b.Read(buf[:1500])
			if err != nil {
				t.Fatal(err)
			}
			joined = append(joined, checkPacket(t, buf[:n]).Payload()...)
		}
		if !bytes.Equal(joined, payload) {
			t.Fatal("Read's pieces do not carry the payload")
		}
		// A piece too big for the MTU is refused; so is a plain pipe's
		// super-segment cut into pieces, not refused.
		if err := ao.WriteOffload(head, body, Offload{GSOSize: uint16(mss + 1), CsumPartial: true}); err != ErrTooBig {
			t.Fatalf("pieces over the MTU: %v", err)
		}
		pa, pb := Pipe(1500)
		defer pa.Close()
		if pa.(Offloader).MaxOffload() != 0 {
			t.Fatal("a plain pipe offers offloads")
		}
		if err := pa.(Offloader).WriteOffload(head, body, o); err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			n, err := pb.Read(buf[:1500])
			if err != nil {
				t.Fatal(err)
			}
			if tcp := checkPacket(t, buf[:n]); len(tcp.Payload()) != min(mss, 5000-i*mss) {
				t.Fatalf("plain pipe piece %d: %d bytes", i, len(tcp.Payload()))
			}
		}
	})
}

// TestPipeOffloadNoAllocs: the offload path of a pipe allocates nothing
// per packet once warm, for IPv4 and IPv6 super-segments alike.
func TestPipeOffloadNoAllocs(t *testing.T) {
	families(t, func(t *testing.T, v int) {
		a, b := PipeOffload(1500)
		defer a.Close()
		pkt := superSegmentOf(v, header.TCPFlagAck, randomPayload(60000, 6))
		hl := headLen(v)
		ao, bo := a.(Offloader), b.(Offloader)
		buf := make([]byte, MaxOffloadSize)
		o := Offload{GSOSize: uint16(1500 - hl), CsumPartial: true}
		var err error
		round := func() {
			if err == nil {
				err = ao.WriteOffload(pkt[:hl], pkt[hl:], o)
			}
			if err == nil {
				_, _, err = bo.ReadOffload(buf)
			}
		}
		for range pipeQueueLen { // every slot grows to a super-segment once
			round()
		}
		allocs := testing.AllocsPerRun(200, round)
		if err != nil {
			t.Fatal(err)
		}
		if allocs != 0 {
			t.Fatalf("%v allocations per super-segment", allocs)
		}
	})
}

// TestOffloadNoAllocs: cutting a super-segment, completing a checksum,
// setting a partial one and the virtio-net header both ways allocate
// nothing, for IPv4 and IPv6.
func TestOffloadNoAllocs(t *testing.T) {
	families(t, func(t *testing.T, v int) {
		pkt := superSegmentOf(v, header.TCPFlagAck, randomPayload(60000, 6))
		small := superSegmentOf(v, header.TCPFlagAck, randomPayload(900, 6))
		hl := headLen(v)
		tcpLen := len(pkt) - (hl - header.TCPMinimumSize - 12)
		buf := make([]byte, 1500)
		var hdr [vnetHdrLen]byte
		var bytesOut int
		emit := func(p []byte) error { bytesOut += len(p); return nil }
		o := Offload{GSOSize: uint16(1500 - hl), CsumPartial: true}
		var err error
		allocs := testing.AllocsPerRun(100, func() {
			PartialChecksum(pkt, tcpLen)
			if e := SoftwareGSO(pkt, o, buf, emit); e != nil {
				err = e
			}
			if e := SoftwareGSO(small, Offload{CsumPartial: true}, buf, emit); e != nil {
				err = e
			}
			encodeVnet(hdr[:], pkt[:hl], o)
			if got, ok := decodeVnet(hdr[:]); !ok || got.GSOSize != o.GSOSize {
				err = fmt.Errorf("decodeVnet: %+v, %v", got, ok)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if allocs != 0 {
			t.Fatalf("%v allocations per round", allocs)
		}
	})
}

// TestCaptureRecordsPieces: a capture on a device with offloads records a
// super-segment, IPv4 or IPv6, as the wire carries it: its pieces,
// checksums complete.
func TestCaptureRecordsPieces(t *testing.T) {
	families(t, func(t *testing.T, v int) {
		a, b := PipeOffload(1500)
		defer b.Close()
		var file bytes.Buffer
		c, err := Capture(a, &file)
		if err != nil {
			t.Fatal(err)
		}
		if c.MaxOffload() != MaxOffloadSize {
			t.Fatalf("a capture hides the device's offloads")
		}
		payload := randomPayload(4000, 7)
		pkt := superSegmentOf(v, header.TCPFlagAck, payload)
		hl := headLen(v)
		if err := c.WriteOffload(pkt[:hl], pkt[hl:], Offload{GSOSize: 1400, CsumPartial: true}); err != nil {
			t.Fatal(err)
		}
		// The other way: the peer sends one, the capture reads it whole.
		if err := b.(Offloader).WriteOffload(pkt[:hl], pkt[hl:], Offload{GSOSize: 1000, CsumPartial: true}); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, MaxOffloadSize)
		if n, o, err := c.ReadOffload(buf); err != nil || n != len(pkt) || o.GSOSize != 1000 {
			t.Fatalf("ReadOffload through the capture: %d, %+v, %v", n, o, err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		recs := readPcap(t, file.Bytes()).recs
		if len(recs) != 3+4 {
			t.Fatalf("%d records, want 3 pieces out and 4 in", len(recs))
		}
		var out, in []byte
		for i, r := range recs {
			tcp := checkPacket(t, r.data)
			if i < 3 {
				out = append(out, tcp.Payload()...)
			} else {
				in = append(in, tcp.Payload()...)
			}
		}
		if !bytes.Equal(out, payload) || !bytes.Equal(in, payload) {
			t.Fatal("the recorded pieces do not carry the payload")
		}
	})
}
