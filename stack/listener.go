package stack

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/tund-project/tund/tcp"
)

// Listener is a passive TCP socket. It implements net.Listener.
//
// As on Linux (since 2.2), a listener keeps two queues, each bounded by
// its backlog: the SYN queue of connections still in the handshake
// (SYN-RECEIVED) and the accept queue of established connections waiting
// for Accept. A connection is in one of them at a time, so a slow Accept
// does not shrink the room for handshakes, nor handshakes the room for a
// slow Accept. A SYN that finds the accept queue full is dropped (the
// client retransmits it), and so is an ACK that would complete a
// handshake then (the connection stays half-open, resending its SYN+ACK);
// a SYN that finds the SYN queue full is answered with a SYN cookie (the
// default), else it takes the place of the oldest half-open connection
// if that one's SYN+ACK has gone unanswered for a whole retransmission
// timeout (RFC 4987 §3.4), else it is dropped.
type Listener struct {
	s       *Stack
	port    uint16
	keys    []lkey     // its entries in the listener table: one per family
	local   netip.Addr // the address it is bound to: the stack's, or [::] for both families
	addr    *net.TCPAddr
	backlog int

	mu       sync.Mutex
	tl       *tcp.Listening // the LISTEN state and its trace
	synq     synQueue       // half-open connections, oldest first
	queue    []*Conn        // the accept queue
	closed   bool
	ready_   chan struct{} // cap-1 wake-up for Accept
	closedCh chan struct{}
}

// synQueue is a listener's SYN queue: its half-open connections with the
// time each was admitted, in the order they came, so the oldest can be
// found when one must make room. A connection leaves from anywhere in the
// queue (its handshake completes, or it is reset or times out): its entry
// is zeroed, so the queue holds no pointer to it, and skipped when
// reached; the order array is compacted when such holes dominate it, so
// it stays within twice the queue's length.
type synQueue struct {
	live map[*Conn]int // index of each connection's entry in fifo
	fifo []synEntry    // admission order; departed entries are zero
	head int           // fifo[:head] are done with
}

type synEntry struct {
	c  *Conn
	at time.Duration
}

func (q *synQueue) len() int { return len(q.live) }

// add puts c at the tail of the queue, admitted at now.
func (q *synQueue) add(c *Conn, now time.Duration) {
	if q.live == nil {
		q.live = make(map[*Conn]int)
	}
	if len(q.fifo) > 2*len(q.live)+64 {
		kept := q.fifo[:0]
		for _, e := range q.fifo[q.head:] {
			if e.c != nil {
				q.live[e.c] = len(kept)
				kept = append(kept, e)
			}
		}
		clear(q.fifo[len(kept):])
		q.fifo, q.head = kept, 0
	}
	q.live[c] = len(q.fifo)
	q.fifo = append(q.fifo, synEntry{c, now})
}

// remove takes c out of the queue; it reports whether c was in it.
func (q *synQueue) remove(c *Conn) bool {
	i, ok := q.live[c]
	if !ok {
		return false
	}
	delete(q.live, c)
	q.fifo[i] = synEntry{}
	if len(q.live) == 0 { // every entry is zero: start the array again
		q.fifo, q.head = q.fifo[:0], 0
	}
	return true
}

// takeOldest removes and returns the oldest connection if it was
// admitted at or before cutoff; nil if the queue is empty or its oldest
// is younger.
func (q *synQueue) takeOldest(cutoff time.Duration) *Conn {
	for ; q.head < len(q.fifo); q.head++ {
		e := q.fifo[q.head]
		if e.c == nil {
			continue
		}
		if e.at > cutoff {
			return nil
		}
		q.remove(e.c)
		return e.c
	}
	return nil
}

// Listen announces on address with the stack's default backlog. network
// is "tcp" (every family the stack has an address in, as Go's
// dual-stack sockets do), "tcp4" or "tcp6". address is ":port", or
// "host:port" with host one of the stack's addresses (that family only),
// "0.0.0.0" (IPv4 only) or "::" (every family, for "tcp"); port 0 picks
// an ephemeral port free in every family the listener takes.
func (s *Stack) Listen(network, address string) (net.Listener, error) {
	return s.ListenBacklog(network, address, s.cfg.Backlog)
}

// ListenBacklog is Listen with an explicit backlog.
func (s *Stack) ListenBacklog(network, address string, backlog int) (*Listener, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: network, Err: err}
	}
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return nil, opErr(net.UnknownNetworkError(network))
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, opErr(err)
	}
	v4, v6, err := s.listenFamilies(network, host)
	if err != nil {
		return nil, opErr(err)
	}
	port, err := portOf(address)
	if err != nil {
		return nil, opErr(err)
	}
	if backlog <= 0 {
		backlog = s.cfg.Backlog
	}
	if s.refusing() {
		return nil, opErr(s.closedErr())
	}
	s.at("listen")
	l := &Listener{
		s: s, backlog: backlog,
		ready_:   make(chan struct{}, 1),
		closedCh: make(chan struct{}),
	}
	s.lmu.Lock()
	defer s.lmu.Unlock()
	// Checked again under lmu, which stop's snapshot of the listeners
	// takes: a Listen racing with Close is in the snapshot or fails here.
	if s.refusing() {
		return nil, opErr(s.closedErr())
	}
	free := func(p uint16) bool {
		_, in4 := s.listeners[lkey{port: p}]
		_, in6 := s.listeners[lkey{port: p, v6: true}]
		return !(v4 && in4) && !(v6 && in6)
	}
	if port == 0 {
		span := ephemeralLast - ephemeralFirst + 1
		start := rand.IntN(span)
		for i := 0; i < span; i++ {
			p := uint16(ephemeralFirst + (start+i)%span)
			if free(p) {
				port = p
				break
			}
		}
		if port == 0 {
			return nil, opErr(os.NewSyscallError("bind", syscall.EADDRINUSE))
		}
	}
	if !free(port) {
		return nil, opErr(os.NewSyscallError("bind", syscall.EADDRINUSE))
	}
	l.port = port
	if v4 {
		l.keys = append(l.keys, lkey{port: port})
	}
	if v6 {
		l.keys = append(l.keys, lkey{port: port, v6: true})
	}
	local := s.cfg.Addr
	switch {
	case v4 && v6:
		local = netip.IPv6Unspecified() // as Go shows a dual-stack socket
	case v6:
		local = s.cfg.Addr6
	}
	l.local = local
	l.addr = &net.TCPAddr{IP: local.AsSlice(), Port: int(port)}
	l.tl = tcp.NewListening(tcp.Config{Trace: s.tracer(netip.AddrPortFrom(local, port), netip.AddrPort{})})
	for _, k := range l.keys {
		s.listeners[k] = l
	}
	return l, nil
}

// listenFamilies says which families a listener for network ("tcp",
// "tcp4", "tcp6") on host (from "host:port") takes: EADDRNOTAVAIL for an
// address that is not the stack's, or a family the stack has no address
// in.
func (s *Stack) listenFamilies(network, host string) (v4, v6 bool, err error) {
	v4, v6 = network != "tcp6", network != "tcp4"
	if host != "" {
		a, perr := netip.ParseAddr(host)
		switch {
		case perr != nil:
			return false, false, os.NewSyscallError("bind", syscall.EADDRNOTAVAIL)
		case a.Unmap().Is4():
			// A v4 address (or v4-mapped): that family only.
			a = a.Unmap()
			v6 = false
			if !a.IsUnspecified() && a != s.cfg.Addr {
				v4 = false
			}
		case a.IsUnspecified():
			// "::": every family the network allows.
		default:
			v4 = false
			if a != s.cfg.Addr6 {
				v6 = false
			}
		}
	}
	if network == "tcp" {
		// Only the families the stack has an address in.
		v4, v6 = v4 && s.v4 != nil, v6 && s.v6 != nil
	} else if v4 && s.v4 == nil || v6 && s.v6 == nil {
		v4, v6 = false, false
	}
	if !v4 && !v6 {
		return false, false, os.NewSyscallError("bind", syscall.EADDRNOTAVAIL)
	}
	return v4, v6, nil
}

// classify says what the listener does with a segment that found no
// connection (tcp.Listening.Classify).
func (l *Listener) classify(seg *tcp.Segment) tcp.ListenAction {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tl.Classify(seg)
}

// onSyn is called by the reader for a SYN to the listening port: admit it
// to the SYN queue if there is room, creating the connection in
// SYN-RECEIVED. When the SYN reopens a TIME-WAIT tuple, old is the old
// incarnation, whose sequence space the new ISS must clear. out is the
// reader's packet buffer, for a SYN cookie answer.
func (l *Listener) onSyn(key tuple, syn *tcp.Segment, reopen bool, old *tcp.TimeWaitEntry, out []byte) {
	s := l.s
	now := s.now()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	if len(l.queue) >= l.backlog {
		// The application is not accepting fast enough. As on Linux the
		// SYN is dropped, cookies or not (a cookie's ACK would find no
		// room either); the client's retransmission tries again.
		l.mu.Unlock()
		s.stats.backlogFull.Add(1)
		s.traceLoop(key, tcp.LoopAcceptQueueFull, syn)
		return
	}
	var evict *Conn
	if l.synq.len() >= l.backlog {
		if !s.cfg.NoSynCookies {
			// The SYN queue overflows (a SYN flood, most likely): answer
			// statelessly, as Linux does with tcp_syncookies=1.
			l.mu.Unlock()
			s.sendCookie(key, syn, out)
			s.traceLoop(key, tcp.LoopSynCookie, syn)
			return
		}
		// RFC 4987 §3.4: recycle the oldest half-open connection, but
		// only one whose SYN+ACK has gone unanswered for a whole
		// retransmission timeout: a real client answers within a round
		// trip, so a fresh entry is never the one given up.
		if evict = l.synq.takeOldest(now - s.initialRTO()); evict == nil {
			l.mu.Unlock()
			s.stats.synQueueFull.Add(1)
			s.traceLoop(key, tcp.LoopSynQueueFull, syn)
			return
		}
	}
	f := s.familyOf(key.addr())
	c := s.newConn(f, key, false)
	l.synq.add(c, now)
	l.mu.Unlock()
	if evict != nil {
		l.evict(evict)
	}
	l.admit(c, func(c *Conn, now time.Duration) *tcp.Conn {
		iss := s.isn.ISN(f.net.Addr(), key.addr(), key.lport, key.rport, now)
		if reopen {
			iss = old.ReopenISS(iss)
		}
		return tcp.NewPassive(c.tcpConfig(), c, syn, iss, now)
	})
}

// evict gives up c, a half-open connection taken off the SYN queue to
// make room, unless its handshake completed meanwhile.
func (l *Listener) evict(c *Conn) {
	c.lock()
	defer c.unlock()
	if c.tcb == nil || c.tcb.State() != tcp.SynReceived {
		return
	}
	l.s.stats.halfOpenEvicted.Add(1)
	c.tcb.Abort(l.s.now())
	c.after()
}

// initialRTO is how long a SYN+ACK waits for its answer before it is
// first sent again.
func (s *Stack) initialRTO() time.Duration {
	if s.tcpCfg.InitialRTO > 0 {
		return s.tcpCfg.InitialRTO
	}
	return tcp.DefaultConfig().InitialRTO
}

// admit opens c, already in the SYN queue (or, for a cookie, about to be
// established), with the control block open makes; it reaches the accept
// queue once established (Listener.ready).
func (l *Listener) admit(c *Conn, open func(c *Conn, now time.Duration) *tcp.Conn) {
	s := l.s
	s.at("admit")
	c.lst = l
	c.lock()
	defer c.unlock()
	if !s.connRoom() || s.insert(c.key, c) != nil { // full, taken, or the stack is stopping
		c.lst = nil
		l.halfOpenGone(c)
		return
	}
	s.stats.passiveOpens.Add(1)
	c.tcb = open(c, s.now())
	c.after()
}

// sendCookie answers syn with a SYN+ACK whose ISS is a SYN cookie
// (RFC 4987 §3.6), keeping no state.
func (s *Stack) sendCookie(key tuple, syn *tcp.Segment, out []byte) {
	mss := 536 // RFC 9293 §3.7.1: without the option, assume 536
	if syn.Options.MSS != 0 {
		mss = int(syn.Options.MSS)
	}
	f := s.familyOf(key.addr())
	mss = min(mss, f.tcp.MSS)
	iss := s.cookies.Make(f.net.Addr(), key.addr(), syn, mss, s.now())
	synack := tcp.CookieSynAck(f.tcp, syn, iss)
	s.stats.synCookiesSent.Add(1)
	s.writeSegment(out, f, key, s.flowLabel(key), &synack)
}

// onCookieAck tries seg, an ACK that found no connection, as the end of
// a SYN cookie handshake. It reports whether it took the segment; if not,
// the caller resets it as usual.
func (l *Listener) onCookieAck(key tuple, seg *tcp.Segment) bool {
	s := l.s
	if s.cfg.NoSynCookies || seg.Flags.Has(tcp.FlagSYN) || seg.Flags.Has(tcp.FlagRST) {
		return false
	}
	now := s.now()
	f := s.familyOf(key.addr())
	opts, ok := s.cookies.Check(f.net.Addr(), key.addr(), seg, now)
	if !ok {
		s.stats.synCookiesBad.Add(1)
		return false
	}
	l.mu.Lock()
	if l.closed || len(l.queue) >= l.backlog {
		// No room to queue it: drop the ACK, as Linux does; the client's
		// data retransmission or a later SYN tries again.
		l.mu.Unlock()
		s.stats.backlogFull.Add(1)
		return true
	}
	l.mu.Unlock()
	s.stats.synCookiesOK.Add(1)
	l.admit(s.newConn(f, key, false), func(c *Conn, now time.Duration) *tcp.Conn {
		return tcp.NewPassiveCookie(c.tcpConfig(), c, seg, opts, now)
	})
	return true
}

// Accept implements net.Listener: it waits for the next completed
// connection.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: l.s.closedErr()}
		}
		if len(l.queue) > 0 {
			c := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			l.mu.Unlock()
			c.lock()
			c.lst = nil
			c.unlock()
			return c, nil
		}
		l.mu.Unlock()
		select {
		case <-l.ready_:
		case <-l.closedCh:
		}
	}
}

// acceptFull reports whether the accept queue holds its backlog.
func (l *Listener) acceptFull() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue) >= l.backlog
}

// ready moves a connection that finished its handshake from the SYN
// queue to the accept queue. Conn.input has checked there was room, so
// the queue stays within its backlog (two readers completing handshakes
// at the same instant may each pass that check: the queue then holds at
// most one more per reader). Called with c.mu held.
func (l *Listener) ready(c *Conn) {
	l.mu.Lock()
	l.synq.remove(c)
	if l.closed {
		l.mu.Unlock()
		c.lst = nil
		c.tcb.Abort(c.s.now())
		return
	}
	l.queue = append(l.queue, c)
	l.mu.Unlock()
	notify(l.ready_)
}

// halfOpenGone forgets a connection that died in SYN-RECEIVED.
func (l *Listener) halfOpenGone(c *Conn) {
	l.mu.Lock()
	l.synq.remove(c)
	l.mu.Unlock()
}

// Close implements net.Listener: stop listening, reset the connections
// nobody accepted, and unblock Accept.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
	l.closed = true
	l.tl.Close()
	queue := l.queue
	l.queue = nil
	close(l.closedCh)
	l.mu.Unlock()

	l.s.lmu.Lock()
	for _, k := range l.keys {
		if l.s.listeners[k] == l {
			delete(l.s.listeners, k)
		}
	}
	l.s.lmu.Unlock()
	for _, c := range queue {
		c.abort()
	}
	return nil
}

// Addr implements net.Listener; it is a *net.TCPAddr.
func (l *Listener) Addr() net.Addr { return l.addr }

// String describes the listener.
func (l *Listener) String() string { return fmt.Sprintf("listener %v backlog %d", l.addr, l.backlog) }
