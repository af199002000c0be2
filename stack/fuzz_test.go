package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

var updateSeeds = flag.Bool("update", false, "rewrite the fuzz seed corpus under testdata/fuzz")

// demuxFuzz is FuzzStackDemux's harness: stacks a (10.9.0.1, fd00:9::1)
// and b (10.9.0.2, fd00:9::2) on one ManualClock, a live IPv4 connection
// from a to b's port 80 moving verified bytes both ways, and packets of
// either family from the fuzz input written into the link towards b, as
// if from the network.
type demuxFuzz struct {
	t      *testing.T
	a, b   *Stack
	clk    *ManualClock
	wire   tun.Device // a's end of the link: what is written here, b reads
	aAddr  netip.Addr
	bAddr  netip.Addr
	aAddr6 netip.Addr
	bAddr6 netip.Addr
	b6     *ip.IPv6 // b's IPv6 layer, to predict its answers
	aPort  uint16   // the live connection is aAddr:aPort -> bAddr:80
	buf    []byte   // scratch for EchoReply
	expect map[string]uint64
	echoes uint64 // echo requests injected (b answers each)
	// liveOOW counts segments injected on the live tuple, without a
	// timestamp (which PAWS could take first), all out of b's window.
	liveOOW  uint64
	injected int
}

// Sizes of the live transfer.
const (
	demuxUp   = 128 << 10   // a → b
	demuxDown = demuxUp / 2 // b → a
	demuxPort = 80
	demuxLog  = 8 // b's listen backlog
)

// fuzzReader reads the input; past its end it gives zeros.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) u8() byte {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}
func (r *fuzzReader) u16() uint16 { return uint16(r.u8())<<8 | uint16(r.u8()) }
func (r *fuzzReader) u32() uint32 { return uint32(r.u16())<<16 | uint32(r.u16()) }
func (r *fuzzReader) bytes(n int) []byte {
	n = min(n, len(r.b))
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
func (r *fuzzReader) addr() netip.Addr {
	return netip.AddrFrom4([4]byte{r.u8(), r.u8(), r.u8(), r.u8()})
}

// addr6 reads an IPv6 address: its first byte (fd for the harness's
// prefix, ff multicast, 00 unspecified, loopback or v4-mapped, …) and its
// last three; the rest is fd00:9::'s.
func (r *fuzzReader) addr6() netip.Addr {
	return netip.AddrFrom16([16]byte{0: r.u8(), 3: 9, 13: r.u8(), 14: r.u8(), 15: r.u8()})
}

// fixChecksums recomputes the IPv4 header checksum and, when the lengths
// let it reach them, the TCP or ICMP checksum, so that the fuzzer also
// gets packets past the checksum checks.
func fixChecksums(p []byte) {
	if ip.Version(p) == 6 {
		fixChecksums6(p)
		return
	}
	if len(p) < 20 {
		return
	}
	h := header.IPv4(p)
	hl, tl := int(h.HeaderLength()), int(h.TotalLength())
	if hl < 20 || hl > len(p) {
		return
	}
	h.SetChecksum(0)
	h.SetChecksum(^checksum.Checksum(p[:hl], 0))
	if tl < hl || tl > len(p) {
		return
	}
	body := p[hl:tl]
	switch h.Protocol() {
	case ip.ProtoTCP:
		if len(body) >= 18 {
			binary.BigEndian.PutUint16(body[16:], 0)
			binary.BigEndian.PutUint16(body[16:], ip.TCPChecksum(netip.AddrFrom4([4]byte(h.SourceAddressSlice())), netip.AddrFrom4([4]byte(h.DestinationAddressSlice())), body))
		}
	case ip.ProtoICMP:
		if len(body) >= 4 {
			binary.BigEndian.PutUint16(body[2:], 0)
			binary.BigEndian.PutUint16(body[2:], ^checksum.Checksum(body, 0))
		}
	}
}

// fixChecksums6 recomputes the TCP or ICMPv6 checksum of an IPv6 packet
// whose upper layer follows the fixed header, when its payload length
// lets it reach it.
func fixChecksums6(p []byte) {
	if len(p) < 40 {
		return
	}
	end := 40 + int(binary.BigEndian.Uint16(p[4:6]))
	if end > len(p) {
		return
	}
	src, dst := netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
	body := p[40:end]
	switch p[6] {
	case ip.ProtoTCP:
		if len(body) >= 18 {
			binary.BigEndian.PutUint16(body[16:], 0)
			binary.BigEndian.PutUint16(body[16:], ip.TCPChecksum(src, dst, body))
		}
	case ip.ProtoICMPv6:
		if len(body) >= 4 {
			binary.BigEndian.PutUint16(body[2:], 0)
			binary.BigEndian.PutUint16(body[2:], ^checksum.Checksum(body, ip.PseudoHeaderChecksum(src, dst, ip.ProtoICMPv6, len(body))))
		}
	}
}

// packet6 builds an IPv6 packet around body with a correct checksum, hop
// limit 255 (what neighbour discovery requires of a solicitation).
func packet6(src, dst netip.Addr, proto uint8, body []byte) []byte {
	p := make([]byte, ip.IPv6HeaderLen+len(body))
	ip.BuildIPv6(p, src, dst, proto, 0x12345, len(body))
	p[7] = 255
	copy(p[ip.IPv6HeaderLen:], body)
	fixChecksums6(p)
	return p
}

// packet builds an IPv4 packet around body with correct checksums.
func packet(src, dst netip.Addr, proto uint8, body []byte) []byte {
	p := make([]byte, ip.IPv4HeaderLen+len(body))
	ip.BuildIPv4(p, src, dst, proto, 7, len(body))
	copy(p[ip.IPv4HeaderLen:], body)
	fixChecksums(p)
	return p
}

// tcpBody builds a TCP segment: options padded with zeros to a multiple of
// four bytes (at most 40), then n bytes of payload.
func tcpBody(sport, dport uint16, seq, ack uint32, flags byte, win uint16, opts []byte, n int) []byte {
	opts = opts[:min(len(opts), 40)]
	hl := 20 + (len(opts)+3)&^3
	b := make([]byte, hl+n)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = byte(hl/4) << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], win)
	copy(b[20:], opts)
	for i := hl; i < len(b); i++ {
		b[i] = byte(i * 13)
	}
	return b
}

// segmentFields reads what the TCP-building ops share: flags, ack,
// window, options (a length byte, then the bytes) and payload length.
func (r *fuzzReader) segmentFields() (flags byte, ack uint32, win uint16, opts []byte, n int) {
	flags, ack, win = r.u8(), r.u32(), r.u16()
	opts = r.bytes(int(r.u8() % 41))
	n = int(r.u16() % 1400)
	return
}

// liveRcvNxt is b's RCV.NXT on the live connection (it only grows).
func (f *demuxFuzz) liveRcvNxt() (tcp.Seq, bool) {
	for _, ci := range f.b.Connections() {
		if ci.Remote.Port() == f.aPort && ci.Local.Port() == demuxPort && ci.State >= tcp.Established && ci.State != tcp.TimeWait {
			return ci.RcvNxt, true
		}
	}
	return 0, false
}

// build decodes one packet to inject (the op byte modulo 8):
//
//	0: raw bytes (+1 length), checksums repaired when the op's top bit is set
//	1: TCP on the live tuple (+1 side, +2 distance; the segment fields)
//	2: TCP to the listener from any source (+4 addr, +2 port, +4 seq; fields)
//	3: TCP to another port (+1 source choice [+4 addr], +2 sport, +2 dport, +4 seq; fields)
//	4: ICMP error quoting a segment of b's (+1 type, +1 code, +2 MTU, +1 quote choices, +4 seq)
//	5: another ICMP message (+1 type, +1 code, +1 length)
//	6: a SYN to the listener, its IP header then broken (+1 how)
//	7: let the clock run (+1 ms), nothing injected
//
// With bit 0x40 of the op set, ops 2 to 5 are IPv6 (addresses read by
// addr6), and op 5's ICMPv6 message may be a neighbour solicitation for
// b's address, to b's solicited-node group (bits of its length byte).
func (f *demuxFuzz) build(r *fuzzReader) []byte {
	op := r.u8()
	if op&0x40 != 0 && op%8 >= 2 && op%8 <= 5 {
		return f.build6(op, r)
	}
	switch op % 8 {
	case 0:
		p := bytes.Clone(r.bytes(int(r.u8()) * 6))
		if op&0x80 != 0 {
			fixChecksums(p)
		}
		return p
	case 1:
		side, dist := r.u8(), r.u16()
		flags, ack, win, opts, n := r.segmentFields()
		// The sequence number is set by the live-tuple guard in inject.
		seq := uint32(dist)
		if side&1 != 0 {
			seq |= 1 << 31 // a marker for "beyond the right edge"
		}
		return packet(f.aAddr, f.bAddr, ip.ProtoTCP, tcpBody(f.aPort, demuxPort, seq, ack, flags, win, opts, n))
	case 2:
		src, sport, seq := r.addr(), r.u16(), r.u32()
		flags, ack, win, opts, n := r.segmentFields()
		return packet(src, f.bAddr, ip.ProtoTCP, tcpBody(sport, demuxPort, seq, ack, flags, win, opts, n))
	case 3:
		src := f.aAddr
		if r.u8()&1 != 0 {
			src = r.addr()
		}
		sport, dport, seq := r.u16(), r.u16(), r.u32()
		flags, ack, win, opts, n := r.segmentFields()
		return packet(src, f.bAddr, ip.ProtoTCP, tcpBody(sport, dport, seq, ack, flags, win, opts, n))
	case 4:
		typ, code, mtu, sel, seq := r.u8(), r.u8(), r.u16(), r.u8(), r.u32()
		// The quote: b's own segment to a (or elsewhere) on the live tuple
		// or another, with a sequence number near b's SND.UNA or raw.
		peer, sport, dport := f.aAddr, uint16(demuxPort), f.aPort
		if sel&1 != 0 {
			peer = netip.AddrFrom4([4]byte{byte(seq), 1, 2, 3})
		}
		if sel&2 != 0 {
			dport = uint16(seq >> 16)
		}
		if sel&4 == 0 {
			for _, ci := range f.b.Connections() {
				if ci.Remote.Port() == f.aPort {
					seq = uint32(ci.SndUna) + uint32(seq&0xfff)
				}
			}
		}
		quote := packet(f.bAddr, peer, ip.ProtoTCP, tcpBody(sport, dport, seq, 0, byte(tcp.FlagACK), 0, nil, 0))
		if sel&8 != 0 {
			quote = quote[:28] // RFC 792: the header and 8 bytes
		}
		body := make([]byte, 8+len(quote))
		body[0], body[1] = typ, code
		binary.BigEndian.PutUint16(body[6:], mtu)
		copy(body[8:], quote)
		return packet(f.aAddr, f.bAddr, ip.ProtoICMP, body)
	case 5:
		typ, code := r.u8(), r.u8()
		body := make([]byte, 8+int(r.u8()))
		body[0], body[1] = typ, code
		for i := 4; i < len(body); i++ {
			body[i] = byte(i)
		}
		return packet(f.aAddr, f.bAddr, ip.ProtoICMP, body)
	case 6:
		how := r.u8()
		p := packet(netip.AddrFrom4([4]byte{192, 0, 2, how}), f.bAddr, ip.ProtoTCP, tcpBody(1000+uint16(how), demuxPort, 1, 0, byte(tcp.FlagSYN), 1000, nil, 0))
		switch how % 8 {
		case 0:
			p[6] |= 0x20 // more fragments
		case 1:
			p[7] = 9 // a fragment offset
		case 2:
			p[0] = 0x65 // version 6
		case 3:
			p[0] = 0x43 // IHL 3
		case 4:
			p[3] += 9 // total length past the end
		case 5:
			p[10] ^= 0x55 // header checksum
			return p
		case 6:
			p[9] = 17 // UDP
		case 7:
			p[19]++ // not our address
		}
		h := header.IPv4(p)
		h.SetChecksum(0)
		h.SetChecksum(^checksum.Checksum(p[:20], 0))
		return p
	default:
		f.clk.Advance(time.Duration(r.u8()) * time.Millisecond)
		time.Sleep(50 * time.Microsecond)
		return nil
	}
}

// build6 is build for the IPv6 forms of ops 2 to 5.
func (f *demuxFuzz) build6(op byte, r *fuzzReader) []byte {
	switch op % 8 {
	case 2:
		src, sport, seq := r.addr6(), r.u16(), r.u32()
		flags, ack, win, opts, n := r.segmentFields()
		return packet6(src, f.bAddr6, ip.ProtoTCP, tcpBody(sport, demuxPort, seq, ack, flags, win, opts, n))
	case 3:
		src := f.aAddr6
		if r.u8()&1 != 0 {
			src = r.addr6()
		}
		sport, dport, seq := r.u16(), r.u16(), r.u32()
		flags, ack, win, opts, n := r.segmentFields()
		return packet6(src, f.bAddr6, ip.ProtoTCP, tcpBody(sport, dport, seq, ack, flags, win, opts, n))
	case 4:
		// An ICMPv6 error (Packet Too Big is type 2) quoting a segment
		// of b's to a over IPv6, whole or cut short.
		typ, code, mtu, sel, seq := r.u8(), r.u8(), r.u16(), r.u8(), r.u32()
		peer := f.aAddr6
		if sel&1 != 0 {
			peer = netip.AddrFrom16([16]byte{0: 0xfd, 3: 9, 15: byte(seq)})
		}
		quote := packet6(f.bAddr6, peer, ip.ProtoTCP, tcpBody(demuxPort, uint16(seq>>16), seq, 0, byte(tcp.FlagACK), 0, nil, 0))
		if sel&8 != 0 {
			quote = quote[:48]
		}
		body := make([]byte, 8+len(quote))
		body[0], body[1] = typ, code
		binary.BigEndian.PutUint32(body[4:], uint32(mtu))
		copy(body[8:], quote)
		return packet6(f.aAddr6, f.bAddr6, ip.ProtoICMPv6, body)
	default: // 5
		typ, code, n := r.u8(), r.u8(), r.u8()
		body := make([]byte, 8+int(n&0x3f))
		body[0], body[1] = typ, code
		for i := 4; i < len(body); i++ {
			body[i] = byte(i)
		}
		dst := f.bAddr6
		if n&0x40 != 0 && len(body) >= 24 {
			// A neighbour solicitation's target: b's address.
			copy(body[8:24], f.bAddr6.AsSlice())
		}
		if n&0x80 != 0 {
			b := f.bAddr6.As16()
			dst = netip.AddrFrom16([16]byte{0: 0xff, 1: 2, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
		}
		return packet6(f.aAddr6, dst, ip.ProtoICMPv6, body)
	}
}

// inject writes p towards b after the live-tuple guard, and records what
// b must count.
func (f *demuxFuzz) inject(p []byte) {
	if len(p) == 0 || len(p) > 1500 {
		return
	}
	local := f.bAddr
	if ip.Version(p) == 6 {
		local = f.bAddr6
	}
	pkt, reason := ip.Parse(p, local)
	if reason == ip.DropNone && pkt.Protocol == ip.ProtoTCP {
		var seg tcp.Segment
		if tcp.Parse(pkt.Payload, &seg) == nil && pkt.Src == f.aAddr && seg.SrcPort == f.aPort && seg.DstPort == demuxPort {
			// On the live tuple only sequence numbers b must refuse: a
			// blind attacker inside the window could corrupt any TCP.
			// Left of the window: all of it before RCV.NXT (which only
			// grows); right: a quarter of the sequence space beyond,
			// past any window a scale of 14 can offer.
			rcvNxt, ok := f.liveRcvNxt()
			if !ok {
				return
			}
			seq := rcvNxt.Add(-max(seg.Len(), 1) - int(uint32(seg.Seq)&0xffff))
			if uint32(seg.Seq)&(1<<31) != 0 {
				seq = rcvNxt.Add(1<<30 + int(uint32(seg.Seq)&0xffff))
			}
			binary.BigEndian.PutUint32(pkt.Payload[4:], uint32(seq))
			fixChecksums(p)
			if !seg.Options.HasTS {
				f.liveOOW++
			}
		}
	}
	pkt, reason = ip.Parse(p, local)
	switch {
	case reason != ip.DropNone:
		f.expect[reason.String()]++
	case pkt.Protocol == ip.ProtoTCP:
		var seg tcp.Segment
		if err := tcp.Parse(pkt.Payload, &seg); errors.Is(err, tcp.ErrShortSegment) {
			f.expect["tcp_short"]++
		} else if err != nil {
			f.expect["tcp_options"]++
		}
	case pkt.Protocol == ip.ProtoICMP:
		if ip.EchoReply(f.buf, &pkt, 0) > 0 {
			f.echoes++
		} else if _, ok := ip.ParseICMPError(&pkt, f.bAddr); !ok {
			f.expect["icmp"]++
		}
	case pkt.Protocol == ip.ProtoICMPv6:
		n, _, isErr := f.b6.ICMP(&pkt, f.buf)
		switch {
		case n > 0 && pkt.Payload[0] == ip.ICMPv6EchoRequest:
			f.echoes++
		case n > 0: // a neighbour advertisement
		case !isErr:
			f.expect["icmp"]++
		}
	}
	if _, err := f.wire.Write(p); err != nil {
		f.t.Fatalf("inject: %v", err)
	}
	f.injected++
}

// echoRequest is a valid ICMP echo request from a to b: the marker after
// the injected packets.
func (f *demuxFuzz) echoRequest() []byte {
	body := make([]byte, 16)
	body[0] = 8
	return packet(f.aAddr, f.bAddr, ip.ProtoICMP, body)
}

// runDemuxFuzz decodes and runs one FuzzStackDemux input: a flags byte
// (1: SYN cookies on b), then up to 200 packets (demuxFuzz.build).
func runDemuxFuzz(t *testing.T, data []byte) {
	r := &fuzzReader{data}
	flags := r.u8()
	clk := NewManualClock()
	f := &demuxFuzz{
		t: t, clk: clk, buf: make([]byte, 1500), expect: map[string]uint64{},
		aAddr: netip.AddrFrom4([4]byte{10, 9, 0, 1}), bAddr: netip.AddrFrom4([4]byte{10, 9, 0, 2}),
		aAddr6: dualA6, bAddr6: dualB6, b6: ip.NewIPv6(dualB6),
	}
	f.a, f.b = pipePairWrap(t, Config{Clock: clk, Addr6: dualA6}, Config{Clock: clk, Addr6: dualB6, Backlog: demuxLog, NoSynCookies: flags&1 == 0},
		func(d tun.Device) tun.Device { f.wire = d; return d })

	// The clock runs while the live transfer does: delayed ACKs and
	// retransmissions need it.
	stopClock := make(chan struct{})
	clockDone := make(chan struct{})
	go func() {
		defer close(clockDone)
		for {
			select {
			case <-stopClock:
				return
			default:
				clk.Advance(time.Millisecond)
				time.Sleep(20 * time.Microsecond)
			}
		}
	}()
	stop := func() {
		if stopClock != nil {
			close(stopClock)
			<-clockDone
			stopClock = nil
		}
	}
	defer stop()

	l, err := f.b.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	up, down := demuxData()
	serverErr := make(chan error, 1)
	go func() { serverErr <- demuxServe(l, up, down) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := f.a.DialContext(ctx, "tcp", "10.9.0.2:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f.aPort = uint16(c.LocalAddr().(*net.TCPAddr).Port)
	clientErr := make(chan error, 1)
	tokens := make(chan struct{}, demuxUp/demuxChunk)
	go func() { clientErr <- demuxClient(c.(*Conn), up, down, tokens) }()

	// The attack, interleaved with the transfer: the client sends a chunk
	// every few packets, and the rest once the attack is over.
	waitUntil(t, 10*time.Second, "b to establish the live connection", func() bool { _, ok := f.liveRcvNxt(); return ok })
	tokens <- struct{}{}
	for i := 0; i < 200 && len(r.b) > 0; i++ {
		f.inject(f.build(r))
		if i%6 == 5 && len(tokens) < cap(tokens) {
			tokens <- struct{}{}
			time.Sleep(20 * time.Microsecond)
		}
	}
	// b reads its link in order: once it answers the marker, it has
	// taken every injected packet.
	f.inject(f.echoRequest())
	close(tokens)
	waitUntil(t, 10*time.Second, "b to take every injected packet", func() bool { return f.b.Stats().EchoReplies >= f.echoes })
	if d := f.wire.(*tun.PipeEnd).Drops(); d > 0 {
		t.Fatalf("the harness overflowed the link: %d packets dropped", d)
	}
	st := f.b.Stats()
	if st.EchoReplies != f.echoes {
		t.Errorf("%d echo replies for %d requests", st.EchoReplies, f.echoes)
	}
	// Every bad packet is dropped and counted by its reason, none twice.
	for r := ip.DropReason(1); r < ip.NumDropReasons; r++ {
		if got, want := st.Drops[r.String()], f.expect[r.String()]; got != want {
			t.Errorf("drops %q: %d, want %d", r, got, want)
		}
	}
	if got, want := st.Drops["tcp_options"], f.expect["tcp_options"]; got != want {
		t.Errorf("drops tcp_options: %d, want %d", got, want)
	}
	if got := st.Drops["out_of_window"]; got < f.liveOOW {
		t.Errorf("drops out_of_window: %d, but %d segments outside the window were injected", got, f.liveOOW)
	}
	t.Logf("%d packets injected, %d on the live tuple; b counted drops %v, %d SYN-RECEIVED, %d cookies, %d resets sent, %d ICMP errors",
		f.injected, f.liveOOW, st.Drops, f.b.StateCounts()[tcp.SynReceived], st.SynCookiesSent, st.ResetsSent, st.ICMPErrors)
	// Half-open connections from stray SYNs stay within the backlog.
	if n := f.b.StateCounts()[tcp.SynReceived]; n > demuxLog {
		t.Errorf("%d connections in SYN-RECEIVED, backlog %d", n, demuxLog)
	}

	// The live connection carried every byte, unharmed.
	for _, ch := range []chan error{clientErr, serverErr} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the live transfer did not finish (%d packets injected)\n%v", f.injected, f.b.Connections())
		}
	}
	stop()
	c.Close()

	// Nothing is left behind once every timer has run out: no half-open
	// connection, no orphan, no TIME-WAIT entry.
	clean := func() bool { return len(f.a.StateCounts()) == 0 && len(f.b.StateCounts()) == 1 }
	for i := 0; i < 40 && !clean(); i++ {
		clk.Advance(30 * time.Second) // up to 20 minutes: past every retry limit
		time.Sleep(time.Millisecond)  // for the packets the timers sent
	}
	if !clean() {
		t.Fatalf("after 20 minutes, connections left: a %v, b %v\n%v", f.a.StateCounts(), f.b.StateCounts(), f.b.Connections())
	}
	// And every backlog slot came back: a full backlog of new
	// connections opens without a drop or a cookie.
	before := f.b.Stats()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < demuxLog; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := f.a.DialContext(ctx, "tcp", "10.9.0.2:80")
		cancel()
		if err != nil {
			t.Fatalf("connection %d of a backlog of %d: %v", i+1, demuxLog, err)
		}
		conns = append(conns, c)
	}
	after := f.b.Stats()
	if after.Drops["backlog_full"] != before.Drops["backlog_full"] || after.SynCookiesSent != before.SynCookiesSent {
		t.Errorf("opening %d connections into an empty backlog of %d: %d dropped, %d cookies",
			demuxLog, demuxLog, after.Drops["backlog_full"]-before.Drops["backlog_full"], after.SynCookiesSent-before.SynCookiesSent)
	}
}

// demuxData is the live transfer's bytes, made once.
var demuxData = sync.OnceValues(func() ([]byte, []byte) {
	return randomBytes(demuxUp, 21), randomBytes(demuxDown, 22)
})

// demuxChunk is the unit of the live transfer: a sends one chunk per
// token, and b answers each with half a chunk.
const demuxChunk = 4 << 10

// demuxServe accepts the live connection and answers every chunk it
// receives with half a chunk of down, then checks the whole upload.
func demuxServe(l net.Listener, up, down []byte) error {
	c, err := l.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	h := sha256.New()
	buf := make([]byte, demuxChunk)
	var n int
	for sent := 0; ; sent += demuxChunk / 2 {
		k, err := io.ReadFull(c, buf)
		h.Write(buf[:k])
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("server read after %d bytes: %w", n, err)
		}
		if _, err := c.Write(down[sent : sent+demuxChunk/2]); err != nil {
			return fmt.Errorf("server write: %w", err)
		}
	}
	if want := sha256.Sum256(up); n != len(up) || !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("server received %d bytes (sha256 %x), want %d (%x)", n, h.Sum(nil), len(up), want)
	}
	return nil
}

// demuxClient sends up a chunk per token from tokens (all that remains
// once tokens is closed), then half-closes, and checks what comes back.
func demuxClient(c *Conn, up, down []byte, tokens <-chan struct{}) error {
	got := make(chan error, 1)
	go func() {
		b, err := io.ReadAll(c)
		switch {
		case err != nil:
			got <- fmt.Errorf("client read after %d bytes: %w", len(b), err)
		case !bytes.Equal(b, down):
			got <- fmt.Errorf("client received %d bytes, want %d identical", len(b), len(down))
		default:
			got <- nil
		}
	}()
	for off := 0; off < len(up); off += demuxChunk {
		<-tokens
		if _, err := c.Write(up[off : off+demuxChunk]); err != nil {
			return fmt.Errorf("client write: %w", err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	return <-got
}

// waitUntil polls cond, failing the test after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// FuzzStackDemux feeds b's demux arbitrary packets — anything at all,
// broken IP headers and checksums, fragments, other protocols, ICMP errors
// and queries, TCP to the listener from anywhere (SYN floods), to other
// ports, and to the live connection's tuple outside its receive window —
// while a live connection between the two stacks moves verified bytes.
// Every bad packet must be dropped and counted by reason, the transfer
// must complete byte-exact, stray half-open connections stay within the
// backlog, and once the timers have run out no connection or TIME-WAIT
// entry is left and the whole backlog is free again.
//
// The seeds are in testdata/fuzz/FuzzStackDemux (demuxSeeds).
func FuzzStackDemux(f *testing.F) {
	f.Fuzz(runDemuxFuzz)
}

// demuxProg builds a FuzzStackDemux input.
type demuxProg struct{ b []byte }

func (p *demuxProg) put(v ...byte) *demuxProg { p.b = append(p.b, v...); return p }
func (p *demuxProg) u16(v uint16) *demuxProg {
	p.b = binary.BigEndian.AppendUint16(p.b, v)
	return p
}
func (p *demuxProg) u32(v uint32) *demuxProg {
	p.b = binary.BigEndian.AppendUint32(p.b, v)
	return p
}

// fields appends segmentFields: flags, ack, window, options, payload length.
func (p *demuxProg) fields(flags tcp.Flags, ack uint32, opts []byte, n uint16) *demuxProg {
	return p.put(byte(flags)).u32(ack).u16(1000).put(byte(len(opts))).put(opts...).u16(n)
}

func demuxSeeds() []struct {
	name string
	data []byte
} {
	var seeds []struct {
		name string
		data []byte
	}
	add := func(name string, p *demuxProg) {
		seeds = append(seeds, struct {
			name string
			data []byte
		}{name, p.b})
	}
	mss := []byte{2, 4, 5, 0xb4}
	ts := []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0}
	// A SYN flood from spoofed sources, twice the backlog, then ACKs for
	// cookies that were never sent.
	flood := &demuxProg{}
	flood.put(1)
	for i := 0; i < 2*demuxLog; i++ {
		flood.put(2, 198, 51, 100, byte(i)).u16(uint16(2000+i)).u32(uint32(i)*7919).fields(tcp.FlagSYN, 0, mss, 0)
	}
	for i := 0; i < 4; i++ {
		flood.put(2, 198, 51, 100, byte(i)).u16(uint16(2000+i)).u32(uint32(i)*7919+1).fields(tcp.FlagACK, 12345, nil, 0)
	}
	add("syn-flood", flood)
	// Blind attacks on the live tuple: RST, SYN, data, ACK, each left and
	// right of the window, with and without timestamps.
	blind := &demuxProg{}
	blind.put(0)
	for i, fl := range []tcp.Flags{tcp.FlagRST, tcp.FlagSYN, tcp.FlagACK | tcp.FlagPSH, tcp.FlagACK, tcp.FlagRST | tcp.FlagACK, tcp.FlagFIN | tcp.FlagACK} {
		for side := byte(0); side < 2; side++ {
			opts := []byte(nil)
			if i%2 == 1 {
				opts = ts
			}
			blind.put(1, side).u16(uint16(i)).fields(fl, 0xdeadbeef, opts, uint16(100*i))
			blind.put(7, 3)
		}
	}
	add("blind-live-tuple", blind)
	// Broken IP: every way the header can be wrong, raw garbage, bytes
	// with repaired checksums, a malformed TCP option.
	broken := &demuxProg{}
	broken.put(0)
	for how := byte(0); how < 8; how++ {
		broken.put(6, how)
	}
	broken.put(0, 3).put(bytes.Repeat([]byte{0x45}, 18)...)
	broken.put(0x80, 4).put(0x45, 0, 0, 24, 0, 0, 0, 0, 64, 6, 0, 0, 10, 9, 0, 1, 10, 9, 0, 2, 0, 1, 0, 2)
	broken.put(3, 0).u16(5555).u16(81).u32(1).fields(tcp.FlagSYN, 0, []byte{8, 10, 0}, 0)
	broken.put(3, 1, 10, 9, 0, 9).u16(5555).u16(demuxPort).u32(1).fields(tcp.FlagACK, 0, nil, 10)
	add("broken-ip", broken)
	// ICMP: errors quoting b's live segments (fragmentation needed with a
	// tiny MTU, port unreachable, time exceeded), quotes of other tuples
	// and short quotes, source quench, echo requests, junk types.
	icmp := &demuxProg{}
	icmp.put(0)
	icmp.put(4, 3, 4).u16(68).put(0).u32(0)
	icmp.put(4, 3, 3).u16(0).put(0).u32(5)
	icmp.put(4, 11, 0).u16(0).put(8).u32(5)
	icmp.put(4, 3, 4).u16(576).put(2 | 4).u32(0x12345678)
	icmp.put(4, 4, 0).u16(0).put(0).u32(0)
	icmp.put(5, 8, 0, 20).put(5, 0, 0, 4).put(5, 13, 0, 12).put(5, 3, 1, 0)
	add("icmp", icmp)
	// IPv6: a SYN flood from spoofed and invalid sources (multicast,
	// unspecified, loopback), TCP to a closed port, ICMPv6 errors quoting
	// b's segments (Packet Too Big with a tiny MTU, port unreachable, a
	// short quote), echo requests, a neighbour solicitation for b to its
	// solicited-node group and to b, router and multicast-listener junk,
	// and raw bytes that start like an IPv6 header.
	v6 := &demuxProg{}
	v6.put(1)
	for i := 0; i < demuxLog+4; i++ {
		v6.put(0x42, 0xfd, 0, 0, byte(i)).u16(uint16(3000+i)).u32(uint32(i)*104729).fields(tcp.FlagSYN, 0, mss, 0)
	}
	for _, first := range []byte{0xff, 0x00, 0xfe} {
		v6.put(0x42, first, 0, 0, 1).u16(4000).u32(1).fields(tcp.FlagSYN, 0, nil, 0)
	}
	v6.put(0x43, 0).u16(5555).u16(81).u32(1).fields(tcp.FlagSYN, 0, mss, 0)
	v6.put(0x44, 2, 0).u16(100).put(0).u32(7)
	v6.put(0x44, 1, 4).u16(0).put(0).u32(7)
	v6.put(0x44, 2, 0).u16(1400).put(8).u32(7)
	v6.put(0x45, 128, 0, 16).put(0x45, 135, 0, 0x40|0x80|16).put(0x45, 135, 0, 0x40|16)
	v6.put(0x45, 133, 0, 8).put(0x45, 143, 0, 20).put(0x45, 136, 0, 24)
	v6.put(0x80, 8).put(0x60, 0, 0, 0, 0, 8, 6, 64).put(bytes.Repeat([]byte{0xfd}, 40)...)
	add("ipv6", v6)
	return seeds
}

// TestDemuxFuzzSeedsUpToDate checks that testdata/fuzz/FuzzStackDemux
// holds the seeds built above (with -update, writes them).
func TestDemuxFuzzSeedsUpToDate(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzStackDemux")
	for _, s := range demuxSeeds() {
		want := []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s.data))))
		path := filepath.Join(dir, "seed-"+s.name)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is missing or stale (%v): go test ./stack -run TestDemuxFuzzSeedsUpToDate -update", path, err)
		}
	}
}
