package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tund-project/tund/tcp"
)

// acceptOne accepts a single connection on a fresh listener of s.
func acceptOne(t *testing.T, s *Stack) (net.Listener, <-chan *Conn) {
	t.Helper()
	l, err := s.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan *Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			ch <- c.(*Conn)
		}
	}()
	return l, ch
}

// TestSetLingerZeroResets: SetLinger(0) then Close resets the connection;
// the peer's Read fails with ECONNRESET.
func TestSetLingerZeroResets(t *testing.T) {
	a, b := pipePair(t, 1500)
	l, accepted := acceptOne(t, b)
	c, err := a.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if err := c.(*Conn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("queued"))
	c.Close()
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	var rerr error
	for rerr == nil {
		_, rerr = sc.Read(buf)
	}
	if !errors.Is(rerr, syscall.ECONNRESET) {
		t.Fatalf("peer read: %v, want ECONNRESET", rerr)
	}
}

// TestCloseReadGivesEOF: after CloseRead, Read returns io.EOF while the
// writing side still works.
func TestCloseReadGivesEOF(t *testing.T) {
	a, b := pipePair(t, 1500)
	l, accepted := acceptOne(t, b)
	c, err := a.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-accepted
	defer sc.Close()
	if err := c.(*Conn).CloseRead(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read after CloseRead: %v, want io.EOF", err)
	}
	sc.Write([]byte("ignored"))
	if _, err := c.Write([]byte("still writing")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 13)
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "still writing" {
		t.Fatalf("peer read %q %v", buf, err)
	}
}

// TestKeepAliveDetectsVanishedPeer: with keepalives on, an idle
// connection whose peer vanished fails with ETIMEDOUT — in virtual time.
func TestKeepAliveDetectsVanishedPeer(t *testing.T) {
	clk := NewManualClock()
	a, b, da := dropPair(t, Config{Clock: clk}, Config{Clock: clk})
	l, accepted := acceptOne(t, b)
	c, err := a.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	<-accepted
	tc := c.(*Conn)
	if err := tc.SetKeepAlivePeriod(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := tc.SetKeepAlive(true); err != nil {
		t.Fatal(err)
	}
	// An answering peer keeps it alive for an hour of virtual time.
	for i := 0; i < 120; i++ {
		clk.Advance(30 * time.Second)
		time.Sleep(200 * time.Microsecond)
	}
	if s := tc.State(); s != tcp.Established {
		t.Fatalf("state %v after an hour of answered keepalives", s)
	}
	// The peer vanishes (nothing gets through any more): 9 probes later,
	// ETIMEDOUT.
	da.mu.Lock()
	da.drop = func(*tcp.Segment) bool { return true }
	da.mu.Unlock()
	for i := 0; i < 12; i++ {
		clk.Advance(30 * time.Second)
		time.Sleep(200 * time.Microsecond)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("read after the peer vanished: %v, want ETIMEDOUT", err)
	}
}

// TestHTTPBothWaysWithKeepAliveReuse: net/http serves on a stack listener
// and a net/http client dials through the other stack; with keep-alive
// the second and later requests reuse the first connection.
func TestHTTPBothWaysWithKeepAliveReuse(t *testing.T) {
	a, b := pipePair(t, 1500)
	l, err := b.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from %s", r.URL.Path, r.RemoteAddr)
	})}
	go srv.Serve(l)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: a.DialContext}, Timeout: 10 * time.Second}
	reused := 0
	for i := 0; i < 10; i++ {
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) {
				if info.Reused {
					reused++
				}
			},
		})
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://10.9.0.2:8080/n%d", i), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !strings.HasPrefix(string(body), fmt.Sprintf("hello /n%d from 10.9.0.1:", i)) {
			t.Fatalf("request %d: %q %v", i, body, err)
		}
	}
	if reused != 9 {
		t.Errorf("%d of 9 follow-up requests reused the connection", reused)
	}
}

// TestErrorsAsTheKernelGivesThem: each failure wraps the errno the
// kernel's sockets would, inside a *net.OpError, so errors.Is works.
func TestErrorsAsTheKernelGivesThem(t *testing.T) {
	a, b := pipePair(t, 1500)
	// EADDRINUSE: a port already listened on.
	l, err := b.Listen("tcp", ":6000")
	if err != nil {
		t.Fatal(err)
	}
	var op *net.OpError
	if _, err := b.Listen("tcp", ":6000"); !errors.Is(err, syscall.EADDRINUSE) || !errors.As(err, &op) {
		t.Errorf("second Listen: %v, want an OpError wrapping EADDRINUSE", err)
	}
	// ECONNREFUSED: nobody listens.
	if _, err := a.Dial("tcp", "10.9.0.2:6001"); !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &op) {
		t.Errorf("Dial to a closed port: %v, want ECONNREFUSED", err)
	}
	// Accept unblocks with net.ErrClosed when the listener closes.
	acc := make(chan error, 1)
	go func() { _, err := l.Accept(); acc <- err }()
	time.Sleep(10 * time.Millisecond)
	l.Close()
	select {
	case err := <-acc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not unblock")
	}
	// ECONNABORTED: the local stack shut down under the connection.
	l2, accepted := acceptOne(t, b)
	c, err := a.Dial("tcp", l2.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	<-accepted
	a.Close()
	if _, err := c.Write([]byte("x")); !errors.Is(err, syscall.ECONNABORTED) {
		t.Errorf("Write after the stack closed: %v, want ECONNABORTED", err)
	}
	// net.ErrClosed after Close.
	c.Close()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	if la, ra := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr); la.Port == 0 || ra.Port != l2.Addr().(*net.TCPAddr).Port {
		t.Errorf("addresses %v %v", la, ra)
	}
}

// TestDialContextHonoursCancellationAndDeadline: a handshake that cannot
// complete (every packet lost) ends when the context does — by deadline
// or by cancellation — with the context's error, long before the SYN
// retries would give up.
func TestDialContextHonoursCancellationAndDeadline(t *testing.T) {
	a, b, da := dropPair(t, Config{}, Config{})
	da.mu.Lock()
	da.drop = func(*tcp.Segment) bool { return true } // nothing from a gets through
	da.mu.Unlock()
	b.Listen("tcp", ":6100")

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := a.DialContext(ctx, "tcp", "10.9.0.2:6100")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("dial with a 100 ms deadline: %v after %v", err, time.Since(start))
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel2() }()
	_, err = a.DialContext(ctx2, "tcp", "10.9.0.2:6100")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("dial cancelled: %v, want context.Canceled", err)
	}
	// The abandoned attempts leave nothing behind.
	if n := len(a.allConns()); n != 0 {
		t.Errorf("%d connections left after abandoned dials", n)
	}
}

// TestDialPortsDoNotRepeat: successive connections to one destination
// take successive ephemeral ports (RFC 6056 Algorithm 3), so none is
// reused before the range has gone round; picked at random, one of twenty
// now and then met an earlier one's TIME-WAIT at the server.
func TestDialPortsDoNotRepeat(t *testing.T) {
	a, _ := pipePair(t, 1500)
	raddr := netip.AddrFrom4([4]byte{10, 9, 0, 2})
	seen := map[uint16]bool{}
	var prev uint16
	for i := 0; i < 2000; i++ {
		c := &Conn{s: a}
		key, err := a.dialPort(raddr, 80, c)
		if err != nil {
			t.Fatal(err)
		}
		if seen[key.lport] {
			t.Fatalf("dial %d reused port %d", i, key.lport)
		}
		if i > 0 && key.lport != prev+1 && !(prev == ephemeralLast && key.lport == ephemeralFirst) {
			t.Fatalf("dial %d took port %d after %d, want the next one", i, key.lport, prev)
		}
		seen[key.lport], prev = true, key.lport
		c.key = key
		a.remove(c)
	}
}
