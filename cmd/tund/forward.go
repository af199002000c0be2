package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tun"
	"golang.org/x/sys/unix"
)

// Forwarding (-forward LISTEN=TARGET): tund listens on its own address at
// port LISTEN and joins each connection it accepts to a kernel TCP
// connection to TARGET, so a real application (sshd, a web server, a
// database) speaks to its clients through tund's TCP. TARGET is dialed
// from the kernel side the clients are on: inside -netns when tund has
// one, else from the host. What each side does is carried to the other:
//
//   - bytes, both ways, with backpressure: a slow target stops tund
//     reading (its window shrinks), a slow client stops the reads from
//     the target;
//   - a FIN from either side becomes CloseWrite on the other (half-close);
//   - an RST from either side becomes an RST on the other (SO_LINGER 0);
//   - a target that refuses, or does not answer within the dial timeout,
//     resets the client;
//   - a kernel-side peer that vanishes in the middle of a connection (its
//     host gone silent) is given up after -forward-timeout, and the other
//     side reset: the kernel socket carries TCP_USER_TIMEOUT and
//     keepalive probes, so silence is noticed whether data is waiting to
//     be acknowledged or the connection is idle. A target process that
//     dies is noticed at once: its kernel closes or resets the socket,
//     and that is carried across like any close or reset.

// forwardDialTimeout bounds the kernel's connect to a target.
const forwardDialTimeout = 10 * time.Second

// defaultForwardTimeout is -forward-timeout's default: a peer answering
// nothing, not even keepalive probes, for this long is gone.
const defaultForwardTimeout = 60 * time.Second

// liveness makes a kernel socket notice a peer that has gone silent
// within timeout: TCP_USER_TIMEOUT bounds how long sent data may wait
// for its acknowledgment, and keepalive probes (after timeout/2 idle,
// then every timeout/4, at least a second apart, as the kernel counts)
// bring an idle connection under the same bound. Linux then fails the
// socket with ETIMEDOUT, which join carries to the other side as a
// reset.
func liveness(c *net.TCPConn, timeout time.Duration) error {
	idle := max(timeout/2, time.Second)
	if err := c.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: idle,
		Interval: max(timeout/4, time.Second), Count: 4}); err != nil {
		return err
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(timeout.Milliseconds()))
	}); err != nil {
		return err
	}
	return serr
}

// forward is one -forward.
type forward struct {
	port   int
	target string // host:port
}

func (f forward) String() string { return fmt.Sprintf("%d=%s", f.port, f.target) }

// forwardList is -forward's flag.Value.
type forwardList []forward

func (l *forwardList) String() string {
	s := make([]string, len(*l))
	for i, f := range *l {
		s[i] = f.String()
	}
	return strings.Join(s, " ")
}

func (l *forwardList) Set(v string) error {
	bad := func(why string) error { return fmt.Errorf("-forward %q: %s", v, why) }
	portStr, target, ok := strings.Cut(v, "=")
	if !ok {
		return bad("want LISTEN=TARGET, e.g. 22=127.0.0.1:22")
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return bad("the listening port must be a number between 1 and 65535")
	}
	if svc, taken := reservedPorts[port]; taken {
		return bad(fmt.Sprintf("port %d is the %s service's", port, svc))
	}
	host, tport, err := net.SplitHostPort(target)
	if err != nil || host == "" {
		return bad("the target must be HOST:PORT")
	}
	if p, err := strconv.Atoi(tport); err != nil || p < 1 || p > 65535 {
		return bad("the target's port must be a number between 1 and 65535")
	}
	for _, f := range *l {
		if f.port == port {
			return bad(fmt.Sprintf("port %d is already forwarded to %s", port, f.target))
		}
	}
	*l = append(*l, forward{port: port, target: target})
	return nil
}

// forwardStats are the forwarder's counters (metrics: tund_forward_*).
type forwardStats struct {
	conns    atomic.Uint64 // connections joined to a target
	toTarget atomic.Uint64 // bytes from clients to targets
	toClient atomic.Uint64 // bytes from targets to clients
	refused  atomic.Uint64 // targets that refused
	failed   atomic.Uint64 // targets unreachable, or too slow to answer
	resets   atomic.Uint64 // RSTs carried across, either way
	lost     atomic.Uint64 // peers that vanished mid-connection (ETIMEDOUT and the like)
	active   atomic.Int64  // joined connections open now
}

var fwdStats forwardStats

// forwardCounts is a snapshot of fwdStats, as the control command
// "forwards" sends it to tund stats.
type forwardCounts struct {
	Conns    uint64 `json:"connections"`
	Active   int64  `json:"active"`
	ToTarget uint64 `json:"bytes_to_target"`
	ToClient uint64 `json:"bytes_to_client"`
	Refused  uint64 `json:"refused"`
	Failed   uint64 `json:"unreachable"`
	Resets   uint64 `json:"resets"`
	Lost     uint64 `json:"lost"`
}

func (s *forwardStats) snapshot() forwardCounts {
	return forwardCounts{Conns: s.conns.Load(), Active: s.active.Load(), ToTarget: s.toTarget.Load(),
		ToClient: s.toClient.Load(), Refused: s.refused.Load(), Failed: s.failed.Load(), Resets: s.resets.Load(),
		Lost: s.lost.Load()}
}

// serveForwardCounts is the control command "forwards".
func serveForwardCounts(ctx context.Context, _ string, w io.Writer) error {
	return json.NewEncoder(w).Encode(fwdStats.snapshot())
}

// startForward listens on f's port and forwards every connection. netns
// is the namespace the target is dialed in ("": the host's); timeout is
// -forward-timeout.
func startForward(st *stack.Stack, f forward, netns string, backlog int, timeout time.Duration, log *slog.Logger) error {
	l, err := st.ListenBacklog("tcp", fmt.Sprintf(":%d", f.port), backlog)
	if err != nil {
		return fmt.Errorf("-forward %s: %w", f, err)
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		var c net.Conn
		err := tun.InNetNS(netns, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, "tcp", f.target)
			return err
		})
		if err == nil {
			if lerr := liveness(c.(*net.TCPConn), timeout); lerr != nil {
				log.Warn("forward: cannot bound the target's silence", "target", f.target, "err", lerr)
			}
		}
		return c, err
	}
	go serve(l, "forward "+f.String(), log, func(c *stack.Conn) {
		go forwardConn(c, f, dial, log)
	})
	return nil
}

// forwardConn joins c to a new connection to f's target.
func forwardConn(c *stack.Conn, f forward, dial func(context.Context) (net.Conn, error), log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), forwardDialTimeout)
	t, err := dial(ctx)
	cancel()
	if err != nil {
		targetFailed(err, c)
		log.Debug("forward: target failed; resetting the client", "forward", f.String(), "client", c.RemoteAddr(), "err", err)
		return
	}
	fwdStats.conns.Add(1)
	c.SetNote("→ " + f.target)
	join(c, t.(*net.TCPConn))
}

// tcpEnd is what join needs of either side: a stack.Conn or a kernel
// *net.TCPConn.
type tcpEnd interface {
	io.Reader
	io.Writer
	CloseWrite() error
	SetLinger(sec int) error
	Close() error
}

// join copies between client and target until both directions end. Each
// direction copies until EOF, then half-closes the other side; if it ends
// in an error instead (a reset, a peer gone silent), both sides are reset:
// the one that failed is dead already, and the other must not mistake the
// end for a clean close. Then both are closed.
func join(client, target tcpEnd) {
	fwdStats.active.Add(1)
	defer fwdStats.active.Add(-1)
	resetBoth := func() {
		_ = client.SetLinger(0)
		_ = target.SetLinger(0)
		_ = client.Close()
		_ = target.Close()
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // client → target
		defer wg.Done()
		n, err := io.Copy(target, client) // from a stack.Conn: WriteTo, straight from its receive ring
		fwdStats.toTarget.Add(uint64(n))
		carryEnd(err, func() { _ = target.CloseWrite() }, resetBoth)
	}()
	go func() { // target → client
		defer wg.Done()
		n, err := io.Copy(client, target)
		fwdStats.toClient.Add(uint64(n))
		carryEnd(err, func() { _ = client.CloseWrite() }, resetBoth)
	}()
	wg.Wait()
	_ = target.Close()
	_ = client.Close()
}

// forwardOut is one -forward-out: a kernel listener whose connections
// tund dials out through the TUN to a server on the kernel side.
type forwardOut struct {
	listen string // host:port, in tund's own namespace (port 0: any)
	target string // ADDR:PORT through the TUN
}

func (f forwardOut) String() string { return f.listen + "=" + f.target }

// forwardOutList is -forward-out's flag.Value.
type forwardOutList []forwardOut

func (l *forwardOutList) String() string {
	s := make([]string, len(*l))
	for i, f := range *l {
		s[i] = f.String()
	}
	return strings.Join(s, " ")
}

func (l *forwardOutList) Set(v string) error {
	bad := func(why string) error { return fmt.Errorf("-forward-out %q: %s", v, why) }
	listen, target, ok := strings.Cut(v, "=")
	if !ok {
		return bad("want LISTEN=TARGET, e.g. 127.0.0.1:2222=198.18.0.1:22")
	}
	if _, port, err := net.SplitHostPort(listen); err != nil {
		return bad("the listening address must be HOST:PORT (port 0: any)")
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return bad("the listening port must be a number between 0 and 65535")
	}
	ap, err := netip.ParseAddrPort(target)
	if err != nil || ap.Addr().Zone() != "" || ap.Port() == 0 {
		return bad("the target must be an ADDR:PORT on the kernel side, e.g. 198.18.0.1:22 or [fd00:7:5eed::1]:22")
	}
	*l = append(*l, forwardOut{listen: listen, target: target})
	return nil
}

// startForwardOut listens on f.listen (a kernel socket in tund's own
// namespace) and joins every connection to a connection tund dials
// through its stack to f.target: a client program's traffic then takes
// tund's active-open path.
func startForwardOut(st *stack.Stack, f forwardOut, timeout time.Duration, log *slog.Logger) error {
	l, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("-forward-out %s: %w", f, err)
	}
	log.Info("forwarding out", "listen", l.Addr().String(), "to", f.target, "through", "tund's stack")
	go func() {
		<-st.Done()
		l.Close()
	}()
	go func() {
		for {
			k, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), forwardDialTimeout)
				c, err := st.DialContext(ctx, "tcp", f.target)
				cancel()
				kc := k.(*net.TCPConn)
				if lerr := liveness(kc, timeout); lerr != nil {
					log.Warn("forward-out: cannot bound the client's silence", "client", kc.RemoteAddr(), "err", lerr)
				}
				if err != nil {
					targetFailed(err, kc)
					log.Debug("forward-out: target failed; resetting the client", "target", f.target, "err", err)
					return
				}
				fwdStats.conns.Add(1)
				sc := c.(*stack.Conn)
				sc.SetNote("← " + k.RemoteAddr().String())
				join(kc, sc)
			}()
		}
	}()
	return nil
}

// targetFailed counts a target that could not be reached and resets
// the client that was waiting for it.
func targetFailed(err error, client tcpEnd) {
	if errors.Is(err, syscall.ECONNREFUSED) {
		fwdStats.refused.Add(1)
	} else {
		fwdStats.failed.Add(1)
	}
	_ = client.SetLinger(0)
	_ = client.Close()
}

// carryEnd passes one direction's end to the other side: EOF (err nil)
// as a half-close; a reset, or a peer that vanished (ETIMEDOUT,
// EHOSTUNREACH…), as a reset of both. A copy that fails because the
// other direction already reset and closed the sockets (net.ErrClosed)
// needs nothing more.
func carryEnd(err error, halfClose, resetBoth func()) {
	switch {
	case err == nil:
		halfClose()
	case errors.Is(err, net.ErrClosed):
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		fwdStats.resets.Add(1)
		resetBoth()
	default:
		fwdStats.lost.Add(1)
		resetBoth()
	}
}
