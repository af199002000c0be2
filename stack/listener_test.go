package stack

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// floodPeer drives the far end of a tun.Pipe by hand, from many addresses
// (rawPeer in hostile_test.go is the one-connection kind on a virtual
// clock): the test builds every
// segment it sends, from any address it likes (a spoofed flood, a real
// client), and reads what the stack sends back to each address.
type floodPeer struct {
	t   *testing.T
	dev tun.Device
	st  *Stack
	to  netip.Addr // the stack's address

	mu  sync.Mutex
	got map[netip.Addr][]tcp.Segment // what the stack sent, by destination
	new *sync.Cond
}

// newFloodPeer starts a stack with cfg on one end of a pipe and returns it
// with the peer holding the other end.
func newFloodPeer(t *testing.T, cfg Config) *floodPeer {
	t.Helper()
	da, db := testPipeQueues(1500, 1) // the peer reads one queue
	cfg.Addr = netip.MustParseAddr("10.9.0.2")
	st, err := New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &floodPeer{t: t, dev: da, st: st, to: cfg.Addr, got: map[netip.Addr][]tcp.Segment{}}
	p.new = sync.NewCond(&p.mu)
	done := make(chan struct{})
	go p.readLoop(done)
	t.Cleanup(func() {
		st.Close() // closes both ends of the pipe
		<-done
	})
	return p
}

func (p *floodPeer) readLoop(done chan struct{}) {
	defer close(done)
	buf := make([]byte, 1500)
	for {
		n, err := p.dev.Read(buf)
		if err != nil {
			return
		}
		b := buf[:n]
		if n < 20 || b[9] != 6 {
			continue
		}
		ihl := int(b[0]&0xf) * 4
		var seg tcp.Segment
		if tcp.Parse(b[ihl:], &seg) != nil {
			continue
		}
		seg.Payload = append([]byte(nil), seg.Payload...)
		dst := netip.AddrFrom4([4]byte(b[16:20]))
		p.mu.Lock()
		p.got[dst] = append(p.got[dst], seg)
		p.new.Broadcast()
		p.mu.Unlock()
	}
}

// send writes seg to the stack as an IPv4 packet from src.
func (p *floodPeer) send(src netip.Addr, seg tcp.Segment) {
	p.t.Helper()
	buf := make([]byte, 1500)
	tcpLen := seg.HeaderLen() + len(seg.Payload)
	n := ip.BuildIPv4(buf, src, p.to, uint8(header.TCPProtocolNumber), 1, tcpLen)
	seg.Marshal(buf[n : n+tcpLen])
	header.TCP(buf[n:]).SetChecksum(ip.TCPChecksum(src, p.to, buf[n:n+tcpLen]))
	if _, err := p.dev.Write(buf[:n+tcpLen]); err != nil {
		p.t.Fatal(err)
	}
}

// syn sends a SYN from src:sport to port, with an MSS option, as a client
// opening a connection would.
func (p *floodPeer) syn(src netip.Addr, sport, port uint16, iss tcp.Seq) {
	p.t.Helper()
	p.send(src, tcp.Segment{SrcPort: sport, DstPort: port, Seq: iss, Flags: tcp.FlagSYN, Window: 65535,
		Options: tcp.Options{MSS: 1460}})
}

// ack completes the handshake the SYN+ACK synack started.
func (p *floodPeer) ack(src netip.Addr, synack tcp.Segment) {
	p.t.Helper()
	p.send(src, tcp.Segment{SrcPort: synack.DstPort, DstPort: synack.SrcPort, Seq: synack.Ack, Ack: synack.Seq + 1,
		Flags: tcp.FlagACK, Window: 65535})
}

// next waits (bounded in real time) for the next segment the stack sends
// to dst, consuming it.
func (p *floodPeer) next(dst netip.Addr) tcp.Segment {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	stop := time.AfterFunc(5*time.Second, func() { p.mu.Lock(); p.new.Broadcast(); p.mu.Unlock() })
	defer stop.Stop()
	for len(p.got[dst]) == 0 {
		if time.Now().After(deadline) {
			p.t.Fatalf("nothing from the stack to %v within 5 s", dst)
		}
		p.new.Wait()
	}
	seg := p.got[dst][0]
	p.got[dst] = p.got[dst][1:]
	return seg
}

// sent is how many segments to dst are waiting to be taken by next.
func (p *floodPeer) sent(dst netip.Addr) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.got[dst])
}

// waitStat polls the stack's counters (bounded in real time) until cond
// holds: the reader goroutine handles each packet a moment after send.
func (p *floodPeer) waitStat(what string, cond func(Stats) bool) Stats {
	p.t.Helper()
	for end := time.Now().Add(5 * time.Second); ; {
		st := p.st.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(end) {
			p.t.Fatalf("stack never reached %s: %+v", what, st)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitStates polls StateCounts until state has n connections.
func (p *floodPeer) waitStates(state tcp.State, n int) {
	p.t.Helper()
	for end := time.Now().Add(5 * time.Second); p.st.StateCounts()[state] != n; {
		if time.Now().After(end) {
			p.t.Fatalf("stack states %v, want %v %d", p.st.StateCounts(), state, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// acceptFrom accepts the next connection on l and checks it comes from
// want ("ip:port").
func (p *floodPeer) acceptFrom(l *Listener, want string) net.Conn {
	p.t.Helper()
	c, err := l.Accept()
	if err != nil {
		p.t.Fatal(err)
	}
	if got := c.RemoteAddr().String(); got != want {
		c.Close()
		p.t.Fatalf("accepted %s, want %s", got, want)
	}
	return c
}

func peerAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 9, 1, byte(i)}) }

func isSynAck(s tcp.Segment) bool { return s.Flags == tcp.FlagSYN|tcp.FlagACK }

// TestSynQueueAndAcceptQueueAreSeparate: as on Linux, the backlog bounds
// the SYN queue and the accept queue each, not their sum. With a backlog
// of 2 and nobody accepting, one established connection waits for Accept
// while two more handshakes are admitted (BSD's single count would have
// dropped the second). The first to complete fills the accept queue; the
// ACK completing the other finds it full and is dropped, as Linux drops
// it, so the accept queue never holds more than its backlog: that client
// waits half-open until its SYN+ACK is resent and there is room. A SYN
// that finds the accept queue full is dropped as backlog_full; once the
// application accepts, the client's next SYN gets in.
func TestSynQueueAndAcceptQueueAreSeparate(t *testing.T) {
	var trace traceLog
	clk := NewManualClock()
	p := newFloodPeer(t, Config{Clock: clk, NoSynCookies: true, Trace: trace.add})
	l, err := p.st.ListenBacklog("tcp", ":80", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, h1, h2, late := peerAddr(1), peerAddr(2), peerAddr(3), peerAddr(4)

	p.syn(a, 1000, 80, 100)
	p.ack(a, p.next(a))
	p.waitStates(tcp.Established, 1)

	p.syn(h1, 1000, 80, 200)
	p.syn(h2, 1000, 80, 300)
	sa1, sa2 := p.next(h1), p.next(h2)
	if !isSynAck(sa1) || !isSynAck(sa2) {
		t.Fatalf("answers to the two SYNs: %v, %v; want SYN+ACKs", sa1, sa2)
	}
	p.waitStates(tcp.SynReceived, 2)
	for _, ci := range p.st.Connections() {
		if ci.State == tcp.Listen && (ci.SynQueue != 2 || ci.RecvQ != 1) {
			t.Errorf("listener shows SYN queue %d, accept queue %d; want 2 and 1", ci.SynQueue, ci.RecvQ)
		}
	}
	if d := p.st.Stats().Drops; d["backlog_full"]+d["syn_queue_full"] != 0 {
		t.Fatalf("drops %v with one connection queued and two in the handshake on a backlog of 2", d)
	}
	// h1's ACK takes the last place in the accept queue; h2's finds it
	// full and is dropped, as on Linux: h2 stays half-open, so the accept
	// queue never holds more than its backlog.
	p.ack(h1, sa1)
	p.waitStates(tcp.Established, 2)
	p.ack(h2, sa2)
	p.waitStat("backlog_full 1", func(s Stats) bool { return s.Drops["backlog_full"] == 1 })
	trace.want(t, "10.9.1.3:1000 SYN-RECEIVED → SYN-RECEIVED on rcv ACK of SYN seq=301 ack="+fmt.Sprint(sa2.Seq+1)+" (accept queue full: drop the ACK)", 1)
	if counts := p.st.StateCounts(); counts[tcp.Established] != 2 || counts[tcp.SynReceived] != 1 {
		t.Fatalf("states %v, want 2 established and h2 still half-open", counts)
	}
	for _, ci := range p.st.Connections() {
		if ci.State == tcp.Listen && (ci.RecvQ != 2 || ci.SendQ != 2 || ci.SynQueue != 1) {
			t.Errorf("listener shows Recv-Q %d, Send-Q %d, SYN queue %d; want its accept queue full at its backlog 2, h2 in the SYN queue",
				ci.RecvQ, ci.SendQ, ci.SynQueue)
		}
	}
	p.syn(late, 1000, 80, 400)
	p.waitStat("backlog_full 2", func(s Stats) bool { return s.Drops["backlog_full"] == 2 })
	if n := p.sent(late); n != 0 {
		t.Fatalf("the stack answered a SYN that found the accept queue full (%d segments)", n)
	}
	trace.want(t, "10.9.1.4:1000 LISTEN → LISTEN on rcv SYN seq=400 ack=0 (accept queue full: drop the SYN)", 1)

	want := map[string]bool{"10.9.1.1:1000": true, "10.9.1.2:1000": true, "10.9.1.3:1000": true}
	accept := func() {
		t.Helper()
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if r := c.RemoteAddr().String(); !want[r] {
			t.Errorf("accepted %s, want one of %v", r, want)
		}
		delete(want, c.RemoteAddr().String())
		t.Cleanup(func() { c.Close() })
	}
	accept()
	accept()
	// With room again, h2's SYN+ACK, resent at one RTO, draws its ACK
	// again, which now completes the handshake.
	clk.Advance(time.Second)
	if sa := p.next(h2); !isSynAck(sa) {
		t.Fatalf("h2 after one RTO: %v, want its SYN+ACK again", sa)
	}
	p.ack(h2, sa2)
	accept()
	if len(want) != 0 {
		t.Errorf("never accepted %v", want)
	}
	p.syn(late, 1000, 80, 400) // its retransmission
	if sa := p.next(late); !isSynAck(sa) {
		t.Fatalf("answer to the SYN after Accept drained the queue: %v, want a SYN+ACK", sa)
	}
}

// TestSynQueueFullRecyclesStaleHalfOpen: with SYN cookies off, a SYN
// that finds the SYN queue full takes the place of the oldest half-open
// connection, but only one whose SYN+ACK has gone unanswered for a whole
// retransmission timeout (RFC 4987 §3.4): a spoofed flood of four SYNs
// holds the queue for one second of virtual time, not for the 63 s of
// SYN+ACK retries; and the real client's fresh entry is never the one
// given up, however many SYNs follow it.
func TestSynQueueFullRecyclesStaleHalfOpen(t *testing.T) {
	clk := NewManualClock()
	var trace traceLog
	p := newFloodPeer(t, Config{Clock: clk, NoSynCookies: true, Trace: trace.add})
	l, err := p.st.ListenBacklog("tcp", ":80", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	flood := func(i int) netip.Addr { return peerAddr(100 + i) }
	for i := 1; i <= 4; i++ {
		p.syn(flood(i), 2000, 80, tcp.Seq(i*1000))
		if sa := p.next(flood(i)); !isSynAck(sa) {
			t.Fatalf("flood SYN %d answered %v", i, sa)
		}
	}
	p.waitStates(tcp.SynReceived, 4)

	// Half an RTO later every entry is still fresh: SYNs are dropped.
	clk.Advance(500 * time.Millisecond)
	real := peerAddr(1)
	p.syn(flood(5), 2000, 80, 5000)
	p.syn(real, 3000, 80, 77)
	st := p.waitStat("two syn_queue_full drops", func(s Stats) bool { return s.Drops["syn_queue_full"] == 2 })
	trace.want(t, "LISTEN → LISTEN on rcv SYN", 2)
	trace.want(t, "10.9.1.1:3000 LISTEN → LISTEN on rcv SYN seq=77 ack=0 (SYN queue full: drop the SYN)", 1)
	if st.HalfOpenEvicted != 0 || p.sent(real) != 0 || p.sent(flood(5)) != 0 {
		t.Fatalf("a SYN displaced a half-open connection younger than an RTO: evicted %d, answers %d/%d",
			st.HalfOpenEvicted, p.sent(real), p.sent(flood(5)))
	}

	// At one RTO every flood entry resends its SYN+ACK, unanswered; the
	// real client's retransmitted SYN takes the oldest one's place.
	clk.Advance(500 * time.Millisecond)
	for i := 1; i <= 4; i++ {
		if sa := p.next(flood(i)); !isSynAck(sa) {
			t.Fatalf("flood entry %d at 1 s: %v, want its SYN+ACK again", i, sa)
		}
	}
	p.syn(real, 3000, 80, 77)
	synack := p.next(real)
	if !isSynAck(synack) {
		t.Fatalf("the real client's SYN at one RTO was answered %v, want a SYN+ACK", synack)
	}
	if rst := p.next(flood(1)); rst.Flags&tcp.FlagRST == 0 {
		t.Errorf("the evicted oldest entry (flood 1) got %v, want an RST", rst)
	}
	p.waitStat("one eviction", func(s Stats) bool { return s.HalfOpenEvicted == 1 })

	// Three more flood SYNs displace the three old entries left; the next
	// finds only fresh ones (the real client's among them) and is dropped.
	for i := 6; i <= 8; i++ {
		p.syn(flood(i), 2000, 80, tcp.Seq(i*1000))
		if sa := p.next(flood(i)); !isSynAck(sa) {
			t.Fatalf("flood SYN %d after one RTO answered %v", i, sa)
		}
	}
	p.waitStat("four evictions", func(s Stats) bool { return s.HalfOpenEvicted == 4 })
	p.syn(flood(9), 2000, 80, 9000)
	st = p.waitStat("a third syn_queue_full drop", func(s Stats) bool { return s.Drops["syn_queue_full"] == 3 })
	if st.HalfOpenEvicted != 4 {
		t.Fatalf("HalfOpenEvicted %d, want 4: a fresh entry was given up", st.HalfOpenEvicted)
	}

	p.ack(real, synack)
	defer p.acceptFrom(l, "10.9.1.1:3000").Close()
	if counts := p.st.StateCounts(); counts[tcp.SynReceived] != 3 || counts[tcp.Established] != 1 {
		t.Errorf("states %v, want the 3 fresh flood entries half-open and the real client established", counts)
	}
}

// TestSynCookiesOnByDefault: with the default Config a SYN that finds the
// SYN queue full is answered with a cookie, and the ACK returning it
// makes a connection that Accept returns, while the half-open ones stay.
// A SYN that finds the accept queue full is dropped even so, as on Linux:
// the cookie's ACK would find no room either.
func TestSynCookiesOnByDefault(t *testing.T) {
	var trace traceLog
	p := newFloodPeer(t, Config{Clock: NewManualClock(), Trace: trace.add})
	l, err := p.st.ListenBacklog("tcp", ":80", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 1; i <= 2; i++ {
		p.syn(peerAddr(100+i), 2000, 80, tcp.Seq(i*1000))
		p.next(peerAddr(100 + i))
	}
	p.waitStates(tcp.SynReceived, 2)

	real := peerAddr(1)
	p.syn(real, 3000, 80, 77)
	synack := p.next(real)
	if !isSynAck(synack) {
		t.Fatalf("SYN to a full SYN queue answered %v, want a cookie SYN+ACK", synack)
	}
	if st := p.st.Stats(); st.SynCookiesSent != 1 || st.Drops["syn_queue_full"] != 0 {
		t.Fatalf("SynCookiesSent %d, syn_queue_full %d; want a cookie and no drop", st.SynCookiesSent, st.Drops["syn_queue_full"])
	}
	trace.want(t, "10.9.1.1:3000 LISTEN → LISTEN on rcv SYN seq=77 ack=0 (SYN queue full: send SYN+ACK with a cookie)", 1)
	p.ack(real, synack)
	defer p.acceptFrom(l, "10.9.1.1:3000").Close()
	if st := p.st.Stats(); st.SynCookiesValid != 1 {
		t.Errorf("SynCookiesValid %d, want 1", st.SynCookiesValid)
	}
	p.waitStates(tcp.SynReceived, 2)

	// Fill the accept queue: two cookie connections nobody accepts.
	for i := 2; i <= 3; i++ {
		p.syn(peerAddr(i), 3000, 80, 77)
		p.ack(peerAddr(i), p.next(peerAddr(i)))
	}
	p.waitStates(tcp.Established, 3)
	before := p.st.Stats()
	p.syn(peerAddr(4), 3000, 80, 77)
	after := p.waitStat("backlog_full", func(s Stats) bool { return s.Drops["backlog_full"] == before.Drops["backlog_full"]+1 })
	if after.SynCookiesSent != before.SynCookiesSent || p.sent(peerAddr(4)) != 0 {
		t.Errorf("a SYN that found the accept queue full was answered (cookies sent %d → %d)",
			before.SynCookiesSent, after.SynCookiesSent)
	}
}

// TestStalledAcceptorAbsorbsBurst: the application stops accepting while
// 600 connections open at once (an accept loop held up by the scheduler
// or a garbage collection, a burst of clients). With the default backlog
// the accept queue holds them all: no SYN is dropped, and Accept then
// returns every one. (With the old default of 128 shared by both queues,
// 472 of the SYNs were dropped: each cost its client a 1 s
// retransmission.)
func TestStalledAcceptorAbsorbsBurst(t *testing.T) {
	// Virtual time that never moves: a dropped SYN is never sent again,
	// and its dial fails at the context's deadline.
	clk := NewManualClock()
	client, server := pipePairCfg(t, Config{Clock: clk}, Config{Clock: clk})
	l, err := server.Listen("tcp", ":8000")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 600
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i], errs[i] = client.DialContext(ctx, "tcp", "10.9.0.2:8000")
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("dials: %v", err)
	}
	for _, c := range conns {
		defer c.Close()
	}
	if d := server.Stats().Drops; d["backlog_full"] != 0 || d["syn_queue_full"] != 0 {
		t.Errorf("drops %v while %d connections waited for Accept", d, n)
	}
	for i := range n {
		c, err := l.Accept()
		if err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
		c.Close()
	}
}

// TestSynQueueAgainstModel drives the SYN queue with random admissions,
// departures from anywhere and evictions, against a plain ordered list:
// takeOldest always finds the oldest connection old enough, departed ones
// are never returned nor pointed to, and the order array stays within
// twice the queue's length however many connections pass through.
func TestSynQueueAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	var q synQueue
	type entry struct {
		c  *Conn
		at time.Duration
	}
	var model []entry
	var now time.Duration
	for step := 0; step < 200000; step++ {
		now += time.Duration(rng.IntN(3)) * time.Millisecond
		switch op := rng.IntN(10); {
		case op < 5 && len(model) < 300: // admit
			c := new(Conn)
			q.add(c, now)
			model = append(model, entry{c, now})
			if len(q.fifo) > 2*q.len()+65 {
				t.Fatalf("step %d: order array of %d for %d connections", step, len(q.fifo), q.len())
			}
		case op < 8 && len(model) > 0: // one leaves from anywhere
			i := rng.IntN(len(model))
			if !q.remove(model[i].c) {
				t.Fatalf("step %d: remove of a queued connection failed", step)
			}
			if q.remove(model[i].c) {
				t.Fatalf("step %d: a connection removed twice", step)
			}
			model = append(model[:i], model[i+1:]...)
		default: // evict the oldest admitted at least 100 ms ago
			cutoff := now - 100*time.Millisecond
			got := q.takeOldest(cutoff)
			var want *Conn
			if len(model) > 0 && model[0].at <= cutoff {
				want = model[0].c
				model = model[1:]
			}
			if got != want {
				t.Fatalf("step %d: takeOldest = %p, want %p", step, got, want)
			}
		}
		if q.len() != len(model) {
			t.Fatalf("step %d: len %d, want %d", step, q.len(), len(model))
		}
	}
	live := 0
	for _, e := range q.fifo {
		if e.c != nil {
			live++
		}
	}
	if live != len(model) {
		t.Errorf("the order array points to %d connections, %d are queued", live, len(model))
	}
}
