package stack

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// rawPeer is a hand-driven peer on the far end of a tun.Pipe: the test
// writes exactly the packets it wants the stack to see (however hostile)
// and reads back what the stack answers. The stack runs on a ManualClock.
type rawPeer struct {
	t     *testing.T
	s     *Stack
	clock *ManualClock
	dev   tun.Device
	addr  netip.Addr // the peer's address
	net   ip.Network // the peer's network layer, which builds its packets
	dst   netip.Addr // the stack's address
	in    chan []byte
	buf   []byte
	sent  uint64        // packets written
	got   atomic.Uint64 // packets the stack wrote that the peer has read
}

var (
	rawStackAddr  = netip.MustParseAddr("10.9.0.2")
	rawStackAddr6 = netip.MustParseAddr("fd00:9::2")
)

// newRawPeer starts a stack with cfg (Addr and Clock are set here) and a
// raw peer facing it over IPv4.
func newRawPeer(t *testing.T, cfg Config) *rawPeer {
	t.Helper()
	return newRawPeerAt(t, cfg, netip.AddrFrom4([4]byte{10, 9, 0, 1}), rawStackAddr)
}

// newRawPeer6 is newRawPeer over IPv6: the stack's address is Addr6.
func newRawPeer6(t *testing.T, cfg Config) *rawPeer {
	t.Helper()
	return newRawPeerAt(t, cfg, netip.MustParseAddr("fd00:9::1"), rawStackAddr6)
}

// newRawPeerAt starts a stack at stackAddr and a raw peer at addr.
func newRawPeerAt(t *testing.T, cfg Config, addr, stackAddr netip.Addr) *rawPeer {
	t.Helper()
	// A plain link, whatever TUND_TEST_OFFLOAD says: the peer speaks in
	// wire segments and keeps in step by counting packets.
	da, db := tun.Pipe(1500)
	clock := NewManualClock()
	if stackAddr.Is4() {
		cfg.Addr = stackAddr
	} else {
		cfg.Addr6 = stackAddr
	}
	cfg.Clock = clock
	s, err := New(da, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var n ip.Network
	if addr.Is4() {
		n = ip.NewIPv4(addr)
	} else {
		n = ip.NewIPv6(addr)
	}
	p := &rawPeer{t: t, s: s, clock: clock, dev: db, addr: addr, net: n, dst: stackAddr,
		in: make(chan []byte, 1<<16), buf: make([]byte, 1500)}
	go func() {
		for {
			b := make([]byte, 1500)
			n, err := db.Read(b)
			if err != nil {
				close(p.in)
				return
			}
			select {
			case p.in <- b[:n]:
			default: // the test is not reading: like a full link, drop
			}
			p.got.Add(1)
		}
	}()
	t.Cleanup(func() { s.Close() })
	return p
}

// send writes seg (ports, sequence numbers, flags, options, payload as
// given) from the peer's address, with correct checksums.
func (p *rawPeer) send(seg tcp.Segment) {
	p.t.Helper()
	_, n := ip.BuildTCP(p.net, p.buf, p.dst, 0, &seg, false)
	p.write(p.buf[:n])
}

// write hands a raw packet to the stack.
func (p *rawPeer) write(pkt []byte) {
	p.t.Helper()
	if _, err := p.dev.Write(pkt); err != nil {
		p.t.Fatal(err)
	}
	p.sent++
}

// settle waits until the stack's reader has taken every packet written so
// far (the pipe holds 1024, so floods call it every few hundred).
func (p *rawPeer) settle() {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.s.stats.packetsIn.Load() < p.sent {
		if time.Now().After(deadline) {
			p.t.Fatalf("the stack took %d of %d packets", p.s.stats.packetsIn.Load(), p.sent)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// sync waits until the stack has taken every packet written so far and
// the peer has read every packet the stack wrote: nothing is in flight,
// so virtual time can move on without outrunning the goroutines.
func (p *rawPeer) sync() {
	p.t.Helper()
	p.settle()
	deadline := time.Now().Add(10 * time.Second)
	for p.got.Load() < p.s.stats.packetsOut.Load() {
		if time.Now().After(deadline) {
			p.t.Fatalf("the peer read %d of %d packets", p.got.Load(), p.s.stats.packetsOut.Load())
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// recv returns the next TCP segment the stack sent, or fails the test
// after a second of wall time.
func (p *rawPeer) recv() tcp.Segment {
	p.t.Helper()
	seg, _ := p.recvRaw()
	return seg
}

// recvRaw is recv that also returns the whole IP packet.
func (p *rawPeer) recvRaw() (tcp.Segment, []byte) {
	p.t.Helper()
	select {
	case b := <-p.in:
		var seg tcp.Segment
		pkt, r := ip.Parse(b, p.addr)
		if r != ip.DropNone || pkt.Protocol != ip.ProtoTCP || pkt.Src != p.dst {
			p.t.Fatalf("stack sent a packet the peer drops (%v, protocol %d, from %v)", r, pkt.Protocol, pkt.Src)
		}
		if err := tcp.Parse(pkt.Payload, &seg); err != nil {
			p.t.Fatalf("stack sent a bad segment: %v", err)
		}
		return seg, b
	case <-time.After(time.Second):
		p.t.Fatalf("the stack sent nothing")
	}
	panic("unreachable")
}

// drain returns how many segments the stack sent that are still unread,
// and reads them.
func (p *rawPeer) drain() (n int) {
	p.settle()
	time.Sleep(20 * time.Millisecond) // the peer's reader catches up
	for {
		select {
		case <-p.in:
			n++
		default:
			return n
		}
	}
}

// rawConn is a connection the raw peer opened to a stack listener.
type rawConn struct {
	p            *rawPeer
	sport, dport uint16
	sndNxt       tcp.Seq // the peer's next sequence number
	rcvNxt       tcp.Seq // what the peer has received of the stack's
	c            *Conn   // the stack's side, accepted
}

// dial does the three-way handshake from sport to a listener on dport
// (which the test made) and accepts the stack's side.
func (p *rawPeer) dial(l net.Listener, sport, dport uint16, iss tcp.Seq) *rawConn {
	p.t.Helper()
	syn := tcp.Segment{SrcPort: sport, DstPort: dport, Seq: iss, Flags: tcp.FlagSYN, Window: 65535}
	syn.Options.MSS = 1460
	p.send(syn)
	sa := p.recv()
	if !sa.Flags.Has(tcp.FlagSYN|tcp.FlagACK) || sa.Ack != iss+1 {
		p.t.Fatalf("want SYN+ACK for %d, got %v", iss+1, sa.String())
	}
	rc := &rawConn{p: p, sport: sport, dport: dport, sndNxt: iss + 1, rcvNxt: sa.Seq + 1}
	rc.send(tcp.FlagACK, nil)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	select {
	case c := <-accepted:
		rc.c = c.(*Conn)
	case <-time.After(5 * time.Second):
		p.t.Fatalf("the handshake did not complete")
	}
	return rc
}

// send sends a segment of this connection at the peer's SND.NXT.
func (rc *rawConn) send(flags tcp.Flags, payload []byte) {
	rc.p.send(tcp.Segment{SrcPort: rc.sport, DstPort: rc.dport, Seq: rc.sndNxt, Ack: rc.rcvNxt,
		Flags: flags, Window: 65535, Payload: payload})
}

// timeWaitAt opens a connection from the raw peer whose stack side
// closes first and so ends in the stack's TIME-WAIT table.
func timeWaitAt(t *testing.T, p *rawPeer) *rawConn {
	t.Helper()
	l, err := p.s.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	rc := p.dial(l, 40000, 80, 1000)
	rc.c.Close() // the stack closes first: it will hold TIME-WAIT
	fin := p.recv()
	if !fin.Flags.Has(tcp.FlagFIN) {
		t.Fatalf("want the stack's FIN, got %v", fin.String())
	}
	rc.rcvNxt = fin.Seq + 1
	rc.send(tcp.FlagACK|tcp.FlagFIN, nil) // ACK of its FIN and ours together
	if ack := p.recv(); ack.Flags != tcp.FlagACK || ack.Ack != rc.sndNxt+1 {
		t.Fatalf("want the ACK of our FIN, got %v", ack.String())
	}
	if n := p.s.StateCounts()[tcp.TimeWait]; n != 1 {
		t.Fatalf("%d TIME-WAIT entries, want 1", n)
	}
	return rc
}

// TestFinFloodInTimeWait: a peer that retransmits its FIN 50,000 times at
// a TIME-WAIT entry must not grow anything per FIN (one expiry item per
// entry), and is answered with at most one ACK per rate-limit interval.
func TestFinFloodInTimeWait(t *testing.T) {
	msl := 10 * time.Second
	p := newRawPeer(t, Config{TCP: tcp.Config{MSL: msl}})
	rc := timeWaitAt(t, p)

	const flood = 50_000
	for i := 0; i < flood; i++ {
		rc.send(tcp.FlagACK|tcp.FlagFIN, nil) // the same FIN again and again
		if i%500 == 499 {
			p.settle()
		}
	}
	acks := p.drain()
	p.s.twq.mu.Lock()
	queued := len(p.s.twq.items)
	p.s.twq.mu.Unlock()
	if queued != 1 {
		t.Errorf("%d expiry items queued for one TIME-WAIT entry after %d FINs, want 1", queued, flood)
	}
	if acks != 1 {
		t.Errorf("%d ACKs for %d FINs within one instant, want 1 (rate-limited)", acks, flood)
	}
	if got := p.s.Stats().AcksRateLimited; got < flood-1 {
		t.Errorf("AcksRateLimited %d, want at least %d", got, flood-1)
	}

	// Later, a retransmitted FIN is answered again: the limit is a rate.
	p.clock.Advance(time.Second)
	rc.send(tcp.FlagACK|tcp.FlagFIN, nil)
	if ack := p.recv(); ack.Flags != tcp.FlagACK || ack.Ack != rc.sndNxt+1 {
		t.Fatalf("want the ACK of our FIN again, got %v", ack.String())
	}
	// Each FIN restarted the 2MSL wait; it ends 2MSL after the last one.
	p.clock.Advance(2*msl - time.Millisecond)
	if n := p.s.StateCounts()[tcp.TimeWait]; n != 1 {
		t.Fatalf("%d TIME-WAIT entries 2MSL-1ms after the last FIN, want 1", n)
	}
	p.clock.Advance(time.Millisecond)
	if n := p.s.StateCounts()[tcp.TimeWait]; n != 0 {
		t.Fatalf("%d TIME-WAIT entries 2MSL after the last FIN, want 0", n)
	}
	p.s.twq.mu.Lock()
	queued = len(p.s.twq.items)
	p.s.twq.mu.Unlock()
	if queued != 0 {
		t.Errorf("%d expiry items left with the table empty", queued)
	}
}

// TestRetransmittedFinRestartsTwoMSLWithDefaults: with the default MSL
// (Config.TCP left zero), a FIN retransmitted into the TIME-WAIT table
// restarts a full 2MSL wait, not a zero one.
func TestRetransmittedFinRestartsTwoMSLWithDefaults(t *testing.T) {
	p := newRawPeer(t, Config{})
	rc := timeWaitAt(t, p)
	p.clock.Advance(time.Second)
	rc.send(tcp.FlagACK|tcp.FlagFIN, nil)
	if ack := p.recv(); ack.Flags != tcp.FlagACK {
		t.Fatalf("want the ACK of the FIN again, got %v", ack.String())
	}
	twoMSL := 2 * tcp.DefaultConfig().MSL
	p.clock.Advance(twoMSL - time.Millisecond)
	if n := p.s.StateCounts()[tcp.TimeWait]; n != 1 {
		t.Fatalf("%d TIME-WAIT entries 2MSL-1ms after the FIN, want 1", n)
	}
	p.clock.Advance(time.Millisecond)
	if n := p.s.StateCounts()[tcp.TimeWait]; n != 0 {
		t.Fatalf("%d TIME-WAIT entries 2MSL after the FIN, want 0", n)
	}
}

// TestTimeWaitTableCap: past MaxTimeWait entries, a connection closes
// without TIME-WAIT; the count says so and the table stays at the cap.
func TestTimeWaitTableCap(t *testing.T) {
	p := newRawPeer(t, Config{MaxTimeWait: 1})
	timeWaitAt(t, p) // fills the table
	l, err := p.s.Listen("tcp", ":81")
	if err != nil {
		t.Fatal(err)
	}
	rc := p.dial(l, 40001, 81, 5000)
	rc.c.Close()
	fin := p.recv()
	rc.rcvNxt = fin.Seq + 1
	rc.send(tcp.FlagACK|tcp.FlagFIN, nil)
	if ack := p.recv(); ack.Flags != tcp.FlagACK || ack.Ack != rc.sndNxt+1 {
		t.Fatalf("want the ACK of our FIN, got %v", ack.String())
	}
	// The ACK of our FIN leaves before the connection moves on to
	// TIME-WAIT (the state change follows the segment's processing), so
	// the count is waited for, not read at once.
	p.settle()
	st := p.s.Stats()
	for deadline := time.Now().Add(5 * time.Second); (st.TimeWaitOverflow == 0 || len(p.s.allConns()) != 0) &&
		time.Now().Before(deadline); st = p.s.Stats() {
		time.Sleep(time.Millisecond)
	}
	if st.TimeWait != 1 || st.TimeWaitOverflow != 1 {
		t.Fatalf("TIME-WAIT %d, overflow %d; want 1 and 1", st.TimeWait, st.TimeWaitOverflow)
	}
	if s := rc.c.State(); s != tcp.Closed {
		t.Errorf("the overflowed connection reports %v, want CLOSED", s)
	}
	if n := len(p.s.allConns()); n != 0 {
		t.Errorf("%d connections left in the table", n)
	}
}

// TestOutOfWindowStorm: segments outside the receive window are each
// unacceptable; they draw one ACK per rate-limit interval, not one each,
// and the connection still moves data afterwards.
func TestOutOfWindowStorm(t *testing.T) {
	p := newRawPeer(t, Config{})
	l, err := p.s.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	rc := p.dial(l, 40000, 80, 1000)
	const storm = 20_000
	for i := 0; i < storm; i++ {
		// Data far beyond the window, and bare ACKs far behind it.
		seq := rc.sndNxt.Add(1 << 30)
		if i%2 == 1 {
			seq = rc.sndNxt.Add(-(1 << 30))
		}
		p.send(tcp.Segment{SrcPort: rc.sport, DstPort: rc.dport, Seq: seq, Ack: rc.rcvNxt,
			Flags: tcp.FlagACK, Window: 65535, Payload: []byte("x")})
		if i%500 == 499 {
			p.settle()
		}
	}
	if acks := p.drain(); acks != 1 {
		t.Errorf("%d ACKs for %d out-of-window segments within one instant, want 1", acks, storm)
	}
	st := p.s.Stats()
	if st.Drops["out_of_window"] != storm || st.AcksRateLimited != storm-1 {
		t.Errorf("out_of_window %d, acks rate-limited %d; want %d and %d", st.Drops["out_of_window"], st.AcksRateLimited, storm, storm-1)
	}
	// The connection is unharmed: data in order is taken and ACKed.
	p.clock.Advance(time.Second)
	rc.send(tcp.FlagACK|tcp.FlagPSH, []byte("hello"))
	rc.sndNxt = rc.sndNxt.Add(5)
	buf := make([]byte, 16)
	n, err := rc.c.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v after the storm", buf[:n], err)
	}
}

// fragNeeded builds the ICMP "fragmentation needed" a router at
// 10.9.0.254 would send about pkt, one of the stack's packets, with the
// given next-hop MTU (RFC 1191 §4).
func fragNeeded(t *testing.T, pkt []byte, mtu uint16) []byte {
	t.Helper()
	orig, reason := ip.Parse(pkt, netip.Addr{})
	if reason != ip.DropNone {
		t.Fatalf("cannot quote the stack's packet: %v", reason)
	}
	out := make([]byte, 1500)
	n := ip.DestUnreachable(out, netip.AddrFrom4([4]byte{10, 9, 0, 254}), &orig, 4, 7)
	if n == 0 {
		t.Fatal("DestUnreachable built nothing")
	}
	m := header.ICMPv4(out[ip.IPv4HeaderLen:n])
	m.SetMTU(mtu)
	m.SetChecksum(0)
	m.SetChecksum(^checksum.Checksum(m, 0))
	return out[:n]
}

// TestForgedFragNeededFloorsAndExpires: an ICMP "fragmentation needed"
// with the IPv4 minimum MTU of 68 must not shrink every later segment to
// 28 bytes: the path MTU is floored at MinPathMTU (552, as Linux's
// min_pmtu), and raised again after PMTUExpire (RFC 1191 §6.3).
func TestForgedFragNeededFloorsAndExpires(t *testing.T) {
	p := newRawPeer(t, Config{})
	l, err := p.s.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	rc := p.dial(l, 40000, 80, 1000)
	go rc.c.Write(make([]byte, 64<<10))
	first, pkt := p.recvRaw()
	if len(first.Payload) != 1460 {
		t.Fatalf("first segment carries %d bytes, want 1460", len(first.Payload))
	}
	p.write(fragNeeded(t, pkt, 68))
	p.settle()
	// Everything in flight is resent in segments that fit the floor. (The
	// rest of the initial window, sent before the ICMP, comes first.)
	got, resent, full := 0, false, 0
	for got < 64<<10 {
		seg := p.recv()
		n := len(seg.Payload)
		if n == 1460 && !resent {
			continue
		}
		resent = true
		// (A segment may be shorter where the send ring wraps.)
		if n > 552-40 || n < 552-40 && got+n < 64<<10 && n < 64 {
			t.Fatalf("segment of %d bytes at %d after the ICMP, want 512 (MTU floored at 552)", n, uint32(seg.Seq))
		}
		if n == 552-40 {
			full++
		}
		if seg.Seq == rc.rcvNxt {
			rc.rcvNxt = rc.rcvNxt.Add(len(seg.Payload))
			got += len(seg.Payload)
			rc.send(tcp.FlagACK, nil)
		}
	}
	if full < 100 {
		t.Fatalf("only %d segments of 512 bytes", full)
	}
	// Ten minutes later the path MTU is tried at full size again.
	if largest := largestAfterPMTUExpire(p, rc); largest != 1460 {
		t.Fatalf("after PMTUExpire the largest segment carries %d bytes, want 1460 again", largest)
	}
}

// largestAfterPMTUExpire lets PMTUExpire pass, has the stack's side of rc
// send 8000 bytes, takes them in order (ACKing each) and returns the
// largest segment that carried them: the path MTU tried at full size
// again (RFC 1191 §6.3).
func largestAfterPMTUExpire(p *rawPeer, rc *rawConn) int {
	p.t.Helper()
	p.settle() // every ACK taken, so no retransmission timer runs meanwhile
	p.clock.Advance(tcp.DefaultConfig().PMTUExpire)
	go rc.c.Write(make([]byte, 8000))
	largest := 0
	for got := 0; got < 8000; {
		seg := p.recv()
		if seg.Seq == rc.rcvNxt {
			got += len(seg.Payload)
			largest = max(largest, len(seg.Payload))
			rc.rcvNxt = rc.rcvNxt.Add(len(seg.Payload))
			rc.send(tcp.FlagACK, nil)
		}
	}
	return largest
}

// TestBlindAttacks: segments with guessed sequence numbers (RFC 5961)
// neither reset, nor desynchronize, nor inject into the connection; the
// challenge ACKs they draw are capped; the connection moves data after.
func TestBlindAttacks(t *testing.T) {
	p := newRawPeer(t, Config{})
	l, err := p.s.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	rc := p.dial(l, 40000, 80, 1000)
	seg := func(flags tcp.Flags, seq, ack tcp.Seq, payload []byte) tcp.Segment {
		return tcp.Segment{SrcPort: rc.sport, DstPort: rc.dport, Seq: seq, Ack: ack, Flags: flags, Window: 65535, Payload: payload}
	}
	// An RST inside the window but not at RCV.NXT: a challenge ACK, no reset.
	p.send(seg(tcp.FlagRST, rc.sndNxt.Add(1000), 0, nil))
	if ack := p.recv(); ack.Flags != tcp.FlagACK || ack.Ack != rc.sndNxt {
		t.Fatalf("in-window RST: want a challenge ACK for %d, got %v", uint32(rc.sndNxt), ack.String())
	}
	// A SYN on the synchronized connection: a challenge ACK too.
	p.send(seg(tcp.FlagSYN, rc.sndNxt.Add(5), 0, nil))
	if ack := p.recv(); ack.Flags != tcp.FlagACK || ack.Ack != rc.sndNxt {
		t.Fatalf("SYN: want a challenge ACK, got %v", ack.String())
	}
	// Data in the window whose ACK acknowledges what was never sent
	// (RFC 5961 §5.2): dropped, never delivered.
	p.send(seg(tcp.FlagACK|tcp.FlagPSH, rc.sndNxt, rc.rcvNxt.Add(1<<20), []byte("injected")))
	// Data whose ACK is older than any window the peer offered: dropped.
	p.send(seg(tcp.FlagACK|tcp.FlagPSH, rc.sndNxt, rc.rcvNxt.Add(-(1 << 30)), []byte("injected")))
	// An RST outside the window: ignored without an answer.
	p.send(seg(tcp.FlagRST, rc.sndNxt.Add(1<<30), 0, nil))
	// A flood of blind RSTs across the sequence space.
	const flood = 20_000
	for i := 0; i < flood; i++ {
		p.send(seg(tcp.FlagRST, rc.sndNxt.Add(1+i*214_748), 0, nil))
		if i%500 == 499 {
			p.settle()
		}
	}
	if n := p.drain(); n > tcp.DefaultConfig().ChallengeACKLimit {
		t.Errorf("%d ACKs for the blind segments, want at most the challenge limit %d", n, tcp.DefaultConfig().ChallengeACKLimit)
	}
	if st := rc.c.State(); st != tcp.Established {
		t.Fatalf("after the blind segments the connection is %v", st)
	}
	// The real peer's data still arrives, and nothing injected did.
	p.clock.Advance(time.Second)
	rc.send(tcp.FlagACK|tcp.FlagPSH, []byte("real"))
	rc.sndNxt = rc.sndNxt.Add(4)
	buf := make([]byte, 16)
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := rc.c.Read(buf)
	if err != nil || string(buf[:n]) != "real" {
		t.Fatalf("read %q, %v; want just the real peer's bytes", buf[:n], err)
	}
	if _, err := rc.c.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	for {
		s := p.recv()
		if string(s.Payload) == "back" {
			break
		}
	}
}

// TestZeroWindowOrphanThroughTheStack: the server closes a connection
// whose client holds its window shut and answers every probe; the client
// cannot hold the orphan (or its send buffer) past the orphan bound.
func TestZeroWindowOrphanThroughTheStack(t *testing.T) {
	p := newRawPeer(t, Config{})
	l, err := p.s.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	syn := tcp.Segment{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: tcp.FlagSYN, Window: 8192}
	syn.Options.MSS = 1460
	p.send(syn)
	sa := p.recv()
	rc := &rawConn{p: p, sport: 40000, dport: 80, sndNxt: 1001, rcvNxt: sa.Seq + 1}
	ack := func(win uint16) {
		p.send(tcp.Segment{SrcPort: 40000, DstPort: 80, Seq: rc.sndNxt, Ack: rc.rcvNxt, Flags: tcp.FlagACK, Window: win})
	}
	ack(8192)
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c.Write(make([]byte, 64<<10))
		c.Close()
	}()
	// Take five segments, then shut the window and keep it shut,
	// answering every probe as a live but stalled reader would.
	for rc.rcvNxt.Sub(sa.Seq+1) < 5*1460 {
		s := p.recv()
		if s.Seq == rc.rcvNxt {
			rc.rcvNxt = rc.rcvNxt.Add(len(s.Payload))
		}
	}
	ack(0)
	p.settle()
	waitStack := time.Now().Add(5 * time.Second)
	for p.s.Stats().Orphans != 1 {
		if time.Now().After(waitStack) {
			t.Fatal("the closed connection never became an orphan")
		}
		time.Sleep(time.Millisecond)
	}
	var held time.Duration
	reset := false
	probes := 0
	for step := 0; step < 24*3600 && !reset; step++ {
		p.clock.Advance(100 * time.Millisecond)
		held += 100 * time.Millisecond
		p.sync()
		for len(p.in) > 0 {
			s := p.recv()
			if s.Flags.Has(tcp.FlagRST) {
				reset = true
				break
			}
			probes++
			ack(0) // a probe: answered, window still shut
		}
		p.sync()
	}
	if !reset {
		t.Fatalf("the orphan was still held after %v", held)
	}
	st := p.s.Stats()
	if held > 2*time.Minute || st.Orphans != 0 || st.Connections != 0 || st.MemoryUsed != 0 {
		t.Fatalf("held %v; then %d orphans, %d connections, %d ring bytes; want under 2m and 0, 0, 0", held, st.Orphans, st.Connections, st.MemoryUsed)
	}
	t.Logf("a zero-window peer that answered %d probes held the orphan %v after the application's close", probes, held)
}
