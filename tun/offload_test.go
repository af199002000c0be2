package tun

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// superSegment builds an IPv4 TCP packet from 10.0.0.1:1000 to
// 10.0.0.2:2000 with a timestamp option, the given flags and payload,
// IP ID 7, and a partial checksum, as tund's stack writes one.
func superSegment(flags header.TCPFlags, payload []byte) []byte {
	const thl = header.TCPMinimumSize + 12
	pkt := make([]byte, header.IPv4MinimumSize+thl+len(payload))
	ip := header.IPv4(pkt)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(pkt)), ID: 7, Flags: header.IPv4FlagDontFragment, TTL: 64,
		Protocol: uint8(header.TCPProtocolNumber), SrcAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 1}), DstAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 2})})
	ip.SetChecksum(^ip.CalculateChecksum())
	t := header.TCP(pkt[header.IPv4MinimumSize:])
	t.Encode(&header.TCPFields{SrcPort: 1000, DstPort: 2000, SeqNum: 0xfffff000, AckNum: 99, DataOffset: thl,
		Flags: flags, WindowSize: 5000})
	opts := t[header.TCPMinimumSize:thl]
	opts[0], opts[1], opts[2], opts[3] = 1, 1, 8, 10 // NOP NOP TS
	binary.BigEndian.PutUint32(opts[4:], 12345)
	binary.BigEndian.PutUint32(opts[8:], 678)
	copy(pkt[header.IPv4MinimumSize+thl:], payload)
	PartialChecksum(pkt, len(t))
	return pkt
}

// checkPacket fails unless p is an IPv4 TCP packet with correct header
// and TCP checksums, and returns its TCP header.
func checkPacket(t *testing.T, p []byte) header.TCP {
	t.Helper()
	ip := header.IPv4(p)
	if !ip.IsValid(len(p)) || int(ip.TotalLength()) != len(p) {
		t.Fatalf("bad IPv4 packet %x", p[:20])
	}
	if ip.CalculateChecksum() != 0xffff {
		t.Fatalf("bad IPv4 header checksum")
	}
	tcp := header.TCP(ip.Payload())
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(tcp)))
	if checksum.Checksum(tcp, xsum) != 0xffff {
		t.Fatalf("bad TCP checksum in %d-byte packet", len(p))
	}
	return tcp
}

// checkCompleted checks a packet passed through with only its transport
// checksum completed: a valid IPv4 packet of the input's total length,
// equal to the input but for the checksum field, and for TCP or UDP a
// checksum that verifies.
func checkCompleted(t *testing.T, in, p []byte) {
	t.Helper()
	ip := header.IPv4(p)
	if !ip.IsValid(len(p)) || int(ip.TotalLength()) != len(p) || len(p) > len(in) {
		t.Fatalf("bad IPv4 packet %x", p[:min(len(p), 20)])
	}
	start := int(ip.HeaderLength())
	off := header.TCPChecksumOffset
	if ip.Protocol() == uint8(header.UDPProtocolNumber) {
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

// TestSoftwareGSOCutsLikeTheKernel: a super-segment is cut into pieces of
// GSOSize with the kernel's rules (RFC 3168 §6.1.2 for CWR; FIN and PSH
// on the last piece only), every checksum complete, sequence numbers
// wrapping, the payload intact in order.
func TestSoftwareGSOCutsLikeTheKernel(t *testing.T) {
	payload := randomPayload(10000, 1)
	pkt := superSegment(header.TCPFlagAck|header.TCPFlagPsh|header.TCPFlagFin|header.TCPFlagCwr, payload)
	var got []byte
	var pieces int
	buf := make([]byte, 1500)
	err := SoftwareGSO(pkt, Offload{GSOSize: 1448, CsumPartial: true}, buf, func(p []byte) error {
		tcp := checkPacket(t, p)
		i := pieces
		pieces++
		if id := header.IPv4(p).ID(); id != uint16(7+i) {
			t.Errorf("piece %d: IP ID %d, want %d", i, id, 7+i)
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
}

// TestSoftwareGSOCompletesChecksums: a packet with a partial checksum and
// no segmentation comes out whole with its checksum done; one with
// neither offload comes out as it is.
func TestSoftwareGSOCompletesChecksums(t *testing.T) {
	pkt := superSegment(header.TCPFlagAck, randomPayload(700, 2))
	calls := 0
	if err := SoftwareGSO(pkt, Offload{CsumPartial: true}, make([]byte, 1500), func(p []byte) error {
		calls++
		checkPacket(t, p)
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
}

// TestSoftwareGSORejectsMalformed: what cannot be cut is an error, never a
// panic, and nothing is emitted.
func TestSoftwareGSORejectsMalformed(t *testing.T) {
	good := superSegment(header.TCPFlagAck, randomPayload(5, 3)) // 57 bytes
	cases := map[string][]byte{
		"empty":       nil,
		"short":       good[:10],
		"not IPv4":    append([]byte{0x60}, good[1:]...),
		"truncated":   good[:50],
		"not TCP":     func() []byte { b := bytes.Clone(good); b[9] = 17; return b }(),
		"data offset": func() []byte { b := bytes.Clone(good); b[32] = 0xf0; return b }(),
		"tiny offset": func() []byte { b := bytes.Clone(good); b[32] = 0x10; return b }(),
		"IHL too big": func() []byte { b := bytes.Clone(good); b[0] = 0x4f; return b }(),
	}
	for name, p := range cases {
		err := SoftwareGSO(p, Offload{GSOSize: 1000, CsumPartial: true}, make([]byte, 1500), func([]byte) error {
			t.Errorf("%s: a piece was emitted", name)
			return nil
		})
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	big := superSegment(header.TCPFlagAck, randomPayload(3000, 3))
	if err := SoftwareGSO(big, Offload{GSOSize: 1448}, make([]byte, 100), func([]byte) error { return nil }); err == nil {
		t.Error("a buffer too small for a piece was accepted")
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

// TestPipeOffloadCarriesSuperSegments: a super-segment written at one end
// of a PipeOffload is read whole, with its offload information, by
// ReadOffload at the other, and as complete pieces by Read.
func TestPipeOffloadCarriesSuperSegments(t *testing.T) {
	a, b := PipeOffload(1500)
	defer a.Close()
	payload := randomPayload(5000, 5)
	pkt := superSegment(header.TCPFlagAck|header.TCPFlagPsh, payload)
	o := Offload{GSOSize: 1448, CsumPartial: true}
	ao, bo := a.(Offloader), b.(Offloader)
	if ao.MaxOffload() != MaxOffloadSize {
		t.Fatalf("MaxOffload %d", ao.MaxOffload())
	}
	head, body := pkt[:52], pkt[52:]
	for range 2 {
		if err := ao.WriteOffload(head, body, o); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, MaxOffloadSize)
	n, got, err := bo.ReadOffload(buf)
	if err != nil || !bytes.Equal(buf[:n], pkt) || got.GSOSize != 1448 || !got.CsumPartial || !got.Trusted() {
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
	if err := ao.WriteOffload(head, body, Offload{GSOSize: 1490, CsumPartial: true}); err != ErrTooBig {
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
		if tcp := checkPacket(t, buf[:n]); len(tcp.Payload()) != min(1448, 5000-i*1448) {
			t.Fatalf("plain pipe piece %d: %d bytes", i, len(tcp.Payload()))
		}
	}
}

// TestPipeOffloadNoAllocs: the offload path of a pipe allocates nothing
// per packet once warm.
func TestPipeOffloadNoAllocs(t *testing.T) {
	a, b := PipeOffload(1500)
	defer a.Close()
	pkt := superSegment(header.TCPFlagAck, randomPayload(60000, 6))
	ao, bo := a.(Offloader), b.(Offloader)
	buf := make([]byte, MaxOffloadSize)
	o := Offload{GSOSize: 1448, CsumPartial: true}
	round := func() {
		ao.WriteOffload(pkt[:52], pkt[52:], o)
		bo.ReadOffload(buf)
	}
	for range pipeQueueLen { // every slot grows to a super-segment once
		round()
	}
	allocs := testing.AllocsPerRun(200, round)
	if allocs != 0 {
		t.Fatalf("%v allocations per super-segment", allocs)
	}
}

// TestCaptureRecordsPieces: a capture on a device with offloads records a
// super-segment as the wire carries it: its pieces, checksums complete.
func TestCaptureRecordsPieces(t *testing.T) {
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
	pkt := superSegment(header.TCPFlagAck, payload)
	if err := c.WriteOffload(pkt[:52], pkt[52:], Offload{GSOSize: 1448, CsumPartial: true}); err != nil {
		t.Fatal(err)
	}
	// The other way: the peer sends one, the capture reads it whole.
	if err := b.(Offloader).WriteOffload(pkt[:52], pkt[52:], Offload{GSOSize: 1000, CsumPartial: true}); err != nil {
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
}
