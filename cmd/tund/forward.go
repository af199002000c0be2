package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tun"
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
//     resets the client.

// forwardDialTimeout bounds the kernel's connect to a target.
const forwardDialTimeout = 10 * time.Second

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
	active   atomic.Int64  // joined connections open now
}

var fwdStats forwardStats

// startForward listens on f's port and forwards every connection. netns
// is the namespace the target is dialed in ("": the host's).
func startForward(st *stack.Stack, f forward, netns string, backlog int, log *slog.Logger) error {
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
		if errors.Is(err, syscall.ECONNREFUSED) {
			fwdStats.refused.Add(1)
		} else {
			fwdStats.failed.Add(1)
		}
		log.Debug("forward: target failed; resetting the client", "forward", f.String(), "client", c.RemoteAddr(), "err", err)
		_ = c.SetLinger(0)
		_ = c.Close()
		return
	}
	target := t.(*net.TCPConn)
	fwdStats.conns.Add(1)
	fwdStats.active.Add(1)
	defer fwdStats.active.Add(-1)
	c.SetNote("→ " + f.target)

	// Each direction copies until EOF (then half-closes the other side) or
	// an error (then resets the other side, if it was a reset). When both
	// are done, both connections are closed.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // client → target
		defer wg.Done()
		n, err := io.Copy(target, c) // c.WriteTo: straight from the receive ring
		fwdStats.toTarget.Add(uint64(n))
		carryEnd(err, func() { _ = target.CloseWrite() }, func() { _ = target.SetLinger(0); _ = target.Close() })
	}()
	go func() { // target → client
		defer wg.Done()
		n, err := io.Copy(c, target)
		fwdStats.toClient.Add(uint64(n))
		carryEnd(err, func() { _ = c.CloseWrite() }, func() { _ = c.SetLinger(0); _ = c.Close() })
	}()
	wg.Wait()
	_ = target.Close()
	_ = c.Close()
}

// carryEnd passes one direction's end to the other side: EOF (err nil)
// as a half-close, a reset as a reset; any other error (the other side
// failed first) needs nothing more.
func carryEnd(err error, halfClose, reset func()) {
	switch {
	case err == nil:
		halfClose()
	case errors.Is(err, syscall.ECONNRESET):
		fwdStats.resets.Add(1)
		reset()
	}
}
