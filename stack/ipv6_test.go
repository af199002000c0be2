package stack

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// The addresses of the dual-stack pair: a dials, b listens.
var (
	dualA4, dualB4 = netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.2")
	dualA6, dualB6 = netip.MustParseAddr("fd00:9::1"), netip.MustParseAddr("fd00:9::2")
)

// dualPair starts two stacks with an IPv4 and an IPv6 address each,
// joined by an in-memory link of the given MTU (with offloads unless
// TUND_TEST_OFFLOAD=0, like every pair). wrap, if not nil, wraps a's end.
func dualPair(t testing.TB, mtu int, wrap func(tun.Device) tun.Device) (a, b *Stack) {
	t.Helper()
	da, db := testPipe(mtu)
	if wrap != nil {
		da, db = testPipeQueues(mtu, 1)
		da = wrap(da)
	}
	var err error
	if a, err = New(da, Config{Addr: dualA4, Addr6: dualA6}); err != nil {
		t.Fatal(err)
	}
	if b, err = New(db, Config{Addr: dualB4, Addr6: dualB6}); err != nil {
		a.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// A transfer over IPv6 is byte-exact both ways, with the MSS IPv6's
// header leaves (MTU-60), and the same stacks carry IPv4 beside it with
// MTU-40.
func TestIPv6TransferByteExact(t *testing.T) {
	a, b := dualPair(t, 1500, nil)
	l, err := b.Listen("tcp", ":5001")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		network, addr string
		mss           int
	}{
		{"tcp6", "[fd00:9::2]:5001", 1500 - 60},
		{"tcp4", "10.9.0.2:5001", 1500 - 40},
		{"tcp", "[fd00:9::2]:5001", 1500 - 60},
	} {
		t.Run(tc.network+" "+tc.addr, func(t *testing.T) {
			data := randomBytes(8<<20, uint64(tc.mss))
			done := hashReceiver(l, time.Now().Add(60*time.Second))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := a.DialContext(ctx, tc.network, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			sc := c.(*Conn)
			if got := sc.RemoteAddr().String(); got != tc.addr {
				t.Errorf("RemoteAddr %s, want %s", got, tc.addr)
			}
			// Info.MSS is what a segment carries: the MSS less the
			// 12 bytes of the timestamp option.
			if info := tcbInfo(sc); info.MSS != tc.mss-12 {
				t.Errorf("segment size %d, want %d (MSS %d)", info.MSS, tc.mss-12, tc.mss)
			}
			if _, err := c.Write(data); err != nil {
				t.Fatal(err)
			}
			c.Close()
			r := <-done
			if r.err != nil || r.n != int64(len(data)) || r.sum != sha256.Sum256(data) {
				t.Fatalf("received %d bytes (err %v), sha256 match %v; sent %d", r.n, r.err, r.sum == sha256.Sum256(data), len(data))
			}
		})
	}
}

// Listen takes one family or both: "tcp" takes both on a dual-stack
// stack, "tcp4" and "tcp6" one each and may share a port; a SYN of a
// family nobody listens on is refused; addresses name their family.
func TestListenFamilies(t *testing.T) {
	a, b := dualPair(t, 1500, nil)
	dial := func(network, addr string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := a.DialContext(ctx, network, addr)
		if err == nil {
			c.Close()
		}
		return err
	}
	accept := func(l net.Listener) {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}

	both, err := b.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	accept(both)
	if got := both.Addr().String(); got != "[::]:80" {
		t.Errorf("dual-stack listener's Addr %s, want [::]:80", got)
	}
	for _, addr := range []string{"10.9.0.2:80", "[fd00:9::2]:80"} {
		if err := dial("tcp", addr); err != nil {
			t.Errorf("dial %s on a listener of both families: %v", addr, err)
		}
	}
	if _, err := b.Listen("tcp6", ":80"); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("tcp6 on a port taken by both families: %v, want EADDRINUSE", err)
	}
	both.Close()

	l4, err := b.Listen("tcp4", ":81")
	if err != nil {
		t.Fatal(err)
	}
	accept(l4)
	if got := l4.Addr().String(); got != "10.9.0.2:81" {
		t.Errorf("tcp4 listener's Addr %s", got)
	}
	if err := dial("tcp6", "[fd00:9::2]:81"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("IPv6 dial to a tcp4-only port: %v, want ECONNREFUSED", err)
	}
	l6, err := b.Listen("tcp6", "[fd00:9::2]:81")
	if err != nil {
		t.Fatalf("tcp6 beside tcp4 on one port: %v", err)
	}
	accept(l6)
	if got := l6.Addr().String(); got != "[fd00:9::2]:81" {
		t.Errorf("tcp6 listener's Addr %s", got)
	}
	for _, addr := range []string{"10.9.0.2:81", "[fd00:9::2]:81"} {
		if err := dial("tcp", addr); err != nil {
			t.Errorf("dial %s with a listener per family: %v", addr, err)
		}
	}
	l4.Close()
	l6.Close()

	for _, tc := range []struct{ network, addr string }{
		{"tcp4", "[fd00:9::2]:82"}, // an IPv6 address for tcp4
		{"tcp6", "10.9.0.2:82"},    // an IPv4 address for tcp6
		{"tcp", "[fd00:9::99]:82"}, // not the stack's address
		{"tcp6", "[fd00:9::1]:82"}, // the other stack's
		{"tcp4", "0.0.0.0:82"},     // fine: listed below as a success
		{"udp6", "[fd00:9::2]:82"}, // not TCP
		{"tcp", "[fe80::1%lo]:82"}, // a zone
		{"tcp6", "[::ffff:1.2.3.4]:82"},
	} {
		l, err := b.Listen(tc.network, tc.addr)
		if tc.addr == "0.0.0.0:82" {
			if err != nil {
				t.Errorf("Listen(%s, %s): %v", tc.network, tc.addr, err)
			} else {
				l.Close()
			}
			continue
		}
		if err == nil {
			l.Close()
			t.Errorf("Listen(%s, %s) succeeded", tc.network, tc.addr)
		}
	}

	for _, tc := range []struct{ network, addr string }{
		{"tcp4", "[fd00:9::2]:80"},
		{"tcp6", "10.9.0.2:80"},
		{"tcp6", "[fe80::1%lo]:80"},
	} {
		if err := dial(tc.network, tc.addr); err == nil {
			t.Errorf("Dial(%s, %s) succeeded", tc.network, tc.addr)
		}
	}

	// A stack with no IPv6 address cannot reach an IPv6 peer, and its
	// "tcp" listeners are IPv4 only.
	v4only, _ := pipePair(t, 1500)
	if _, err := v4only.Dial("tcp", "[fd00:9::2]:80"); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("IPv6 dial from an IPv4-only stack: %v, want ENETUNREACH", err)
	}
	if _, err := v4only.Listen("tcp6", ":80"); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Errorf("tcp6 listener on an IPv4-only stack: %v, want EADDRNOTAVAIL", err)
	}
	l, err := v4only.Listen("tcp", ":83")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Addr().String(); got != "10.9.0.1:83" {
		t.Errorf("an IPv4-only stack's tcp listener: Addr %s", got)
	}
	l.Close()
}

// recordDev keeps a copy of the IPv6 TCP packets written through it, for
// a test to read their headers.
type recordDev struct {
	tun.Device
	mu   sync.Mutex
	pkts [][]byte
}

func (d *recordDev) Write(p []byte) (int, error) {
	if ip.Version(p) == 6 {
		d.mu.Lock()
		d.pkts = append(d.pkts, slices.Clone(p))
		d.mu.Unlock()
	}
	return d.Device.Write(p)
}

// Every packet of an IPv6 connection carries one flow label (RFC 6437
// §3), not zero, and another connection gets another one.
func TestIPv6FlowLabelPerConnection(t *testing.T) {
	rec := &recordDev{}
	t.Setenv("TUND_TEST_OFFLOAD", "0") // the recorder sees whole packets
	a, b := dualPair(t, 1500, func(d tun.Device) tun.Device { rec.Device = d; return rec })
	l, err := b.Listen("tcp6", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); buf := make([]byte, 100); c.Read(buf) }()
		}
	}()
	ports := map[uint16]bool{}
	for range 4 {
		c, err := a.Dial("tcp6", "[fd00:9::2]:7")
		if err != nil {
			t.Fatal(err)
		}
		ports[uint16(c.LocalAddr().(*net.TCPAddr).Port)] = true
		c.Write([]byte("hello"))
		c.Close()
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	labels := map[uint16]uint32{} // by source port
	for _, p := range rec.pkts {
		pkt, r := ip.Parse(p, netip.Addr{})
		if r != ip.DropNone || pkt.Protocol != ip.ProtoTCP {
			t.Fatalf("a's packet does not parse: %v", r)
		}
		var seg tcp.Segment
		if err := tcp.Parse(pkt.Payload, &seg); err != nil {
			t.Fatal(err)
		}
		if pkt.FlowLabel == 0 {
			t.Errorf("port %d: flow label 0", seg.SrcPort)
		}
		if was, ok := labels[seg.SrcPort]; ok && was != pkt.FlowLabel {
			t.Errorf("port %d: flow label %#x, then %#x", seg.SrcPort, was, pkt.FlowLabel)
		}
		labels[seg.SrcPort] = pkt.FlowLabel
	}
	if len(labels) != len(ports) {
		t.Fatalf("saw %d connections' packets, dialed %d", len(labels), len(ports))
	}
	distinct := map[uint32]bool{}
	for _, f := range labels {
		distinct[f] = true
	}
	if len(distinct) < len(labels)-1 { // 20 random bits: one collision in four is already unlikely
		t.Errorf("flow labels %v: connections share them", labels)
	}
}

// Connections and listeners of both families appear in the snapshot
// with their addresses; an IPv6 one in brackets, as ss shows it.
func TestSnapshotShowsBothFamilies(t *testing.T) {
	a, b := dualPair(t, 1500, nil)
	l, err := b.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c6, err := a.Dial("tcp6", "[fd00:9::2]:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c6.Close()
	c4, err := a.Dial("tcp4", "10.9.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	var got []string
	for _, ci := range a.Connections() {
		got = append(got, ci.State.String()+" "+ci.Local.String()+" "+ci.Remote.String())
	}
	want := []string{
		"ESTABLISHED " + c4.LocalAddr().String() + " 10.9.0.2:7",
		"ESTABLISHED " + c6.LocalAddr().String() + " [fd00:9::2]:7",
	}
	if !slices.Equal(got, want) {
		t.Errorf("a's connections\n got %q\nwant %q", got, want)
	}
	// A listener of both families is one socket: shown once, at [::],
	// as Go's Listener.Addr and ss show a dual-stack socket's address,
	// and counted once.
	var listening []netip.AddrPort
	for _, ci := range b.Connections() {
		if ci.State == tcp.Listen {
			listening = append(listening, ci.Local)
		}
	}
	if want := []netip.AddrPort{netip.MustParseAddrPort("[::]:7")}; !slices.Equal(listening, want) {
		t.Errorf("listeners %v, want %v", listening, want)
	}
	if n := b.StateCounts()[tcp.Listen]; n != 1 {
		t.Errorf("StateCounts has %d LISTEN, want 1", n)
	}
}

// TestPacketTooBigIPv6: an ICMPv6 Packet Too Big about one of the stack's
// segments (RFC 8201) shrinks the segments in flight to what the reported
// MTU leaves after 60 bytes of IPv6 and TCP header; a report below 1280
// is taken as 1280, the IPv6 minimum (RFC 8201 §4: a node MUST NOT
// reduce its estimate below it), and the path is tried at full size
// again after PMTUExpire.
func TestPacketTooBigIPv6(t *testing.T) {
	p := newRawPeer6(t, Config{})
	l, err := p.s.Listen("tcp6", ":80")
	if err != nil {
		t.Fatal(err)
	}
	rc := p.dial(l, 40000, 80, 1000)
	total := 0
	// take reads the stack's segments until want bytes have arrived in
	// order, ACKing each, and returns the sizes of those sent after the
	// report (the rest of the window sent before it is skipped).
	take := func(want int, before int) (sizes []int) {
		got := 0
		for got < want {
			seg := p.recv()
			n := len(seg.Payload)
			if n == before && len(sizes) == 0 {
				if seg.Seq == rc.rcvNxt { // the first full-size one may still be due in order
					rc.rcvNxt = rc.rcvNxt.Add(n)
					got += n
					rc.send(tcp.FlagACK, nil)
				}
				continue
			}
			sizes = append(sizes, n)
			if seg.Seq == rc.rcvNxt {
				rc.rcvNxt = rc.rcvNxt.Add(n)
				got += n
				rc.send(tcp.FlagACK, nil)
			}
		}
		total += got
		return sizes
	}
	router := netip.MustParseAddr("fd00:9::fe")
	for _, tc := range []struct {
		mtu  uint32
		want int // the payload of a full segment after the report
	}{
		{1400, 1400 - 60},
		{1000, 1280 - 60}, // floored at the IPv6 minimum
	} {
		go rc.c.Write(make([]byte, 64<<10))
		first, pkt := p.recvRaw()
		if len(first.Payload) < tc.want {
			t.Fatalf("MTU %d: the first segment carries %d bytes, fewer than %d", tc.mtu, len(first.Payload), tc.want)
		}
		// Not ACKed: the report must quote a segment still in flight
		// (RFC 5927 §4.1), and this one is resent in smaller pieces.
		out := make([]byte, 1500)
		n := ip.PacketTooBig(out, router, pkt, tc.mtu)
		if n == 0 {
			t.Fatal("PacketTooBig built nothing")
		}
		p.write(out[:n])
		p.settle()
		sizes := take(64<<10, len(first.Payload))
		largest := slices.Max(sizes)
		if largest != tc.want {
			t.Fatalf("MTU %d: after the report segments carry up to %d bytes, want %d", tc.mtu, largest, tc.want)
		}
		if st := p.s.Stats(); st.ICMPErrors == 0 {
			t.Fatalf("the Packet Too Big was not counted as an ICMP error")
		}
	}
	// After PMTUExpire the path is tried at full size again.
	if largest := largestAfterPMTUExpire(p, rc); largest != 1500-60 {
		t.Fatalf("after PMTUExpire the largest segment carries %d bytes, want %d again", largest, 1500-60)
	}
}

// TestSynCookiesIPv6: with the SYN queue full, an IPv6 SYN is answered
// with a cookie, and the ACK that returns it makes a connection with the
// MSS from IPv6's cookie table, not IPv4's.
func TestSynCookiesIPv6(t *testing.T) {
	p := newRawPeer6(t, Config{Backlog: 1})
	l, err := p.s.Listen("tcp6", ":80")
	if err != nil {
		t.Fatal(err)
	}
	// The first SYN fills the one-entry SYN queue and is left half-open.
	syn := tcp.Segment{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: tcp.FlagSYN, Window: 65535}
	syn.Options.MSS = 1460
	p.send(syn)
	if sa := p.recv(); !sa.Flags.Has(tcp.FlagSYN | tcp.FlagACK) {
		t.Fatalf("want a SYN+ACK, got %v", sa.String())
	}
	// The second is answered with a cookie. Its MSS, 1380 (a WireGuard
	// path), rounds down to 1360 in IPv6's table; IPv4's would give 1300.
	syn = tcp.Segment{SrcPort: 40001, DstPort: 80, Seq: 5000, Flags: tcp.FlagSYN, Window: 65535}
	syn.Options.MSS = 1380
	p.send(syn)
	sa := p.recv()
	if !sa.Flags.Has(tcp.FlagSYN|tcp.FlagACK) || sa.Ack != 5001 {
		t.Fatalf("want a SYN+ACK for 5001, got %v", sa.String())
	}
	rc := &rawConn{p: p, sport: 40001, dport: 80, sndNxt: 5001, rcvNxt: sa.Seq + 1}
	rc.send(tcp.FlagACK, nil)
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	rc.c = c.(*Conn)
	st := p.s.Stats()
	if st.SynCookiesSent != 1 || st.SynCookiesValid != 1 {
		t.Fatalf("cookies sent %d, valid %d; want 1 and 1", st.SynCookiesSent, st.SynCookiesValid)
	}
	if got := rc.c.RemoteAddr().String(); got != "[fd00:9::1]:40001" {
		t.Errorf("cookie connection from %s", got)
	}
	if info := tcbInfo(rc.c); info.MSS != 1360 {
		t.Errorf("cookie connection's MSS %d, want 1360 (IPv6's table)", info.MSS)
	}
	go rc.c.Write([]byte("hello over a cookie"))
	if seg := p.recv(); string(seg.Payload) != "hello over a cookie" {
		t.Fatalf("got %q", seg.Payload)
	}
}

// TestIPv6ThroughLossReorderingAndDuplication: 16 MiB over IPv6 through
// 5% loss with reordering and duplication both ways arrive byte-exact:
// loss recovery is indifferent to the family.
func TestIPv6ThroughLossReorderingAndDuplication(t *testing.T) {
	m := tun.Impairment{Loss: 0.05, Reorder: 0.02, ReorderGap: 2, Duplicate: 0.01}
	var imp *tun.Impaired
	a, b := dualPair(t, 1500, func(d tun.Device) tun.Device {
		var err error
		if imp, err = tun.Impair(d, tun.ImpairConfig{Seed: 6, In: m, Out: m}); err != nil {
			t.Fatal(err)
		}
		return imp
	})
	l, err := b.Listen("tcp6", ":7000")
	if err != nil {
		t.Fatal(err)
	}
	done := hashReceiver(l, time.Now().Add(2*time.Minute))
	data := randomBytes(16<<20, 6)
	c, err := a.Dial("tcp6", "[fd00:9::2]:7000")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.Close()
	r := <-done
	if r.err != nil || r.n != int64(len(data)) || r.sum != sha256.Sum256(data) {
		t.Fatalf("received %d bytes (err %v); sent %d, sha256 match %v", r.n, r.err, len(data), r.sum == sha256.Sum256(data))
	}
	info := tcbInfo(c.(*Conn))
	if info.Retransmits == 0 {
		t.Errorf("no retransmissions through 5%% loss: the impairment did not bite")
	}
	t.Logf("16 MiB over IPv6 at 5%% loss: %d retransmitted segments, dropped %+v", info.Retransmits, imp.Stats())
}

// TestShortTCPHeaderCountedOnce: a TCP header shorter than 20 bytes, or
// with a data offset below 5 words or past the segment, with a good
// checksum, is dropped in either family and counted as tcp_short. The
// network layer checks only the checksum (its pseudo-header); the header's
// structure is checked once, by tcp.Parse.
func TestShortTCPHeaderCountedOnce(t *testing.T) {
	for _, p := range []*rawPeer{newRawPeer(t, Config{}), newRawPeer6(t, Config{})} {
		seg := tcp.Segment{SrcPort: 40000, DstPort: 80, Seq: 1, Flags: tcp.FlagSYN, Window: 65535}
		buf := make([]byte, 100)
		hdr, n := ip.BuildTCP(p.net, buf, p.dst, 0, &seg, false)
		nl := hdr - seg.HeaderLen()
		var bad [][]byte
		for _, off := range []byte{0, 4, 15} { // data offset in words
			b := slices.Clone(buf[:n])
			b[nl+12] = off << 4
			bad = append(bad, b)
		}
		bad = append(bad, slices.Clone(buf[:nl+19])) // 19 bytes of TCP
		for _, b := range bad {
			// Length fields and checksums made right for what is there.
			seg := b[nl:]
			if p.net.Version() == 4 {
				h := header.IPv4(b)
				h.SetTotalLength(uint16(len(b)))
				h.SetChecksum(0)
				h.SetChecksum(^h.CalculateChecksum())
			} else {
				header.IPv6(b).SetPayloadLength(uint16(len(seg)))
			}
			seg[16], seg[17] = 0, 0
			sum := ip.TCPChecksum(p.addr, p.dst, seg)
			seg[16], seg[17] = byte(sum>>8), byte(sum)
			p.write(b)
		}
		p.settle()
		st := p.s.Stats()
		if st.Drops["tcp_short"] != 4 || st.Drops["tcp_checksum"] != 0 || st.ResetsSent != 0 {
			t.Errorf("IPv%d: drops %v, resets %d; want 4 tcp_short and nothing else", p.net.Version(), st.Drops, st.ResetsSent)
		}
	}
}

// TestIPv6TimeWait: the side that closes an IPv6 connection first holds
// its TIME-WAIT, keyed by the IPv6 tuple and shown with it in brackets;
// the side that closed second holds none; a new connection on another
// tuple is unaffected.
func TestIPv6TimeWait(t *testing.T) {
	a, b := dualPair(t, 1500, nil)
	l, err := b.Listen("tcp6", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := a.Dial("tcp6", "[fd00:9::2]:7")
	if err != nil {
		t.Fatal(err)
	}
	local := c.LocalAddr().String()
	sc := <-accepted
	c.Close() // a closes first: a ends in TIME-WAIT
	buf := make([]byte, 1)
	if _, err := sc.Read(buf); err == nil {
		t.Fatal("b read data, want EOF")
	}
	sc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var tw []string
		for _, ci := range a.Connections() {
			if ci.State == tcp.TimeWait {
				tw = append(tw, ci.Local.String()+" "+ci.Remote.String())
			}
		}
		if len(tw) == 1 && tw[0] == local+" [fd00:9::2]:7" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a's TIME-WAIT entries %q, want %q", tw, local+" [fd00:9::2]:7")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := b.StateCounts()[tcp.TimeWait]; n != 0 {
		t.Errorf("b, which closed second, holds %d TIME-WAIT entries", n)
	}
	// A new connection from another port is not held up by it.
	c2, err := a.Dial("tcp6", "[fd00:9::2]:7")
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
}

// TestParamProblemRateLimited: an IPv6 packet carrying an option whose
// type asks to be reported (RFC 8200 §4.2) is answered with an ICMPv6
// Parameter Problem pointing at it; a burst of them is answered at most
// errorBurst times at one instant, the rest counted as rate-limited (RFC
// 4443 §2.4 (f)), and the bucket refills with time.
func TestParamProblemRateLimited(t *testing.T) {
	p := newRawPeer6(t, Config{})
	seg := tcp.Segment{SrcPort: 40000, DstPort: 80, Seq: 1, Flags: tcp.FlagSYN, Window: 65535}
	tcpb := make([]byte, seg.HeaderLen())
	seg.Marshal(tcpb)
	opts := []byte{ip.ProtoTCP, 0, 0x80, 0, 1, 2, 0, 0} // option 0x80 (action 10), then PadN
	pkt := make([]byte, ip.IPv6HeaderLen+len(opts)+len(tcpb))
	ip.BuildIPv6(pkt, p.addr, p.dst, 60, 0, len(opts)+len(tcpb))
	copy(pkt[ip.IPv6HeaderLen:], opts)
	copy(pkt[ip.IPv6HeaderLen+len(opts):], tcpb)

	p.write(pkt)
	p.settle()
	select {
	case b := <-p.in:
		m, r := ip.Parse(b, p.addr)
		if r != ip.DropNone || m.Protocol != ip.ProtoICMPv6 || m.Payload[0] != ip.ICMPv6ParamProblem || m.Payload[1] != 2 ||
			binary.BigEndian.Uint32(m.Payload[4:8]) != 42 {
			t.Fatalf("the stack answered %v % x, want a Parameter Problem, code 2, pointer 42", r, b[:min(len(b), 48)])
		}
	case <-time.After(time.Second):
		t.Fatal("no Parameter Problem")
	}
	for range 99 {
		p.write(pkt)
	}
	p.settle()
	st := p.s.Stats()
	if st.ICMPErrorsSent != errorBurst || st.ICMPErrorsLimited != 100-errorBurst || st.Drops["extension_header"] != 100 {
		t.Fatalf("sent %d, limited %d, dropped %d; want %d, %d, 100", st.ICMPErrorsSent, st.ICMPErrorsLimited,
			st.Drops["extension_header"], errorBurst, 100-errorBurst)
	}
	p.clock.Advance(10 * time.Millisecond) // room for 10 more
	for range 20 {
		p.write(pkt)
	}
	p.settle()
	if st := p.s.Stats(); st.ICMPErrorsSent != errorBurst+10 {
		t.Fatalf("10 ms later: %d sent in all, want %d", st.ICMPErrorsSent, errorBurst+10)
	}
}
