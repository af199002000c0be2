package stack

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"weak"

	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// vanishingDev is a device that can be pulled out from under the stack,
// as `ip link del` does to a TUN device: from then on every Read and
// Write fails with EBADFD, the error a deleted TUN device's file gives.
type vanishingDev struct {
	tun.Device
	gone atomic.Bool
}

var errDeviceGone = &os.PathError{Op: "read", Path: "tun", Err: syscall.EBADFD}

func (d *vanishingDev) Read(p []byte) (int, error) {
	n, err := d.Device.Read(p)
	if d.gone.Load() {
		return 0, errDeviceGone
	}
	return n, err
}

func (d *vanishingDev) Write(p []byte) (int, error) {
	if d.gone.Load() {
		return 0, errDeviceGone
	}
	return d.Device.Write(p)
}

// pull deletes the device: a Read blocked in it wakes with the error.
func (d *vanishingDev) pull() {
	d.gone.Store(true)
	d.Device.Close()
}

// TestDeviceFailureStopsStack: when the device fails for good, the stack
// stops as a whole: Done is closed, Err wraps the device's error, and
// every blocked call (Read, Write, Accept, Dial) returns an error that
// says so instead of hanging; nothing is left in the table or running.
func TestDeviceFailureStopsStack(t *testing.T) {
	base := runtime.NumGoroutine()
	var dev *vanishingDev
	da, db := testPipeQueues(1500, 1)
	dev = &vanishingDev{Device: da}
	quiet := slog.New(slog.DiscardHandler)
	a, err := New(dev, Config{Addr: netip.MustParseAddr("10.9.0.1"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(db, Config{Addr: netip.MustParseAddr("10.9.0.2"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	reader, _ := connected(t, a, b) // the peer never sends: Read blocks
	writer, _ := connected(t, a, b) // the peer never reads: Write blocks
	l, err := a.Listen("tcp", ":90")
	if err != nil {
		t.Fatal(err)
	}
	results := startCalls(map[string]func() error{
		"Read":   func() error { _, err := reader.Read(make([]byte, 10)); return err },
		"Write":  func() error { _, err := writer.Write(make([]byte, 16<<20)); return err },
		"Accept": func() error { _, err := l.Accept(); return err },
		// 10.9.0.3 does not exist: the SYN goes unanswered.
		"Dial": func() error { _, err := a.Dial("tcp", "10.9.0.3:80"); return err },
	})
	waitFor(t, func() bool { return writer.tcbSendQueue() > 0 && len(a.allConns()) == 3 })

	dev.pull()
	within(t, a.Done(), "Done after the device failed")
	if err := a.Err(); !errors.Is(err, syscall.EBADFD) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Err() = %v, want one wrapping EBADFD and net.ErrClosed", err)
	}
	for i := 0; i < 4; i++ {
		r := within(t, results, "a blocked call after the device failed")
		if !errors.Is(r.err, syscall.EBADFD) || !errors.Is(r.err, net.ErrClosed) {
			t.Errorf("%s: %v, want an error wrapping EBADFD and net.ErrClosed", r.what, r.err)
		}
	}
	if _, err := a.Dial("tcp", "10.9.0.2:80"); !errors.Is(err, syscall.EBADFD) {
		t.Errorf("Dial after the failure: %v, want EBADFD", err)
	}
	if _, err := a.Listen("tcp", ":91"); !errors.Is(err, syscall.EBADFD) {
		t.Errorf("Listen after the failure: %v, want EBADFD", err)
	}
	if n := len(a.Connections()); n != 0 {
		t.Errorf("%d connections and listeners after the failure", n)
	}
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	within(t, closed, "Close after the failure")
	b.Close()
	settleGoroutines(t, base)
}

// callResult is what a blocking call returned.
type callResult struct {
	what string
	err  error
}

// startCalls runs each call on its own goroutine; the channel gets
// their results as they return.
func startCalls(calls map[string]func() error) <-chan callResult {
	results := make(chan callResult, len(calls))
	for what, call := range calls {
		go func() { results <- callResult{what, call()} }()
	}
	return results
}

// tcbSendQueue is the bytes queued and not yet acknowledged.
func (c *Conn) tcbSendQueue() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tcb.SendQueue()
}

// TestVanishedPeerFreesEverything: a peer that vanishes mid-transfer is
// given up with ETIMEDOUT within the retry bound (virtual time), and then
// everything is freed: the table is empty, no timer is armed, the
// blocked writer has returned, and once the application closes and drops
// the connection nothing in the stack keeps it (or its buffers) alive.
func TestVanishedPeerFreesEverything(t *testing.T) {
	clk := NewManualClock() // a's; b's stays still (it only receives)
	a, b, da := dropPair(t, Config{Clock: clk}, Config{Clock: NewManualClock()})
	c, sc := connected(t, a, b)
	go io.Copy(io.Discard, sc)
	base := runtime.NumGoroutine()
	if _, err := c.Write(randomBytes(200000, 1)); err != nil {
		t.Fatal(err)
	}
	da.mu.Lock()
	da.drop = func(*tcp.Segment) bool { return true } // the peer is gone
	da.mu.Unlock()
	werr := make(chan error, 1)
	go func() {
		for {
			if _, err := c.Write(randomBytes(1<<20, 2)); err != nil {
				werr <- err
				return
			}
		}
	}()
	// 15 retransmissions (the default), backing off from at most the
	// 1 s initial RTO to the 60 s maximum: under 16 minutes, as Linux's
	// tcp_retries2=15 (924.6 s).
	const bound = 16 * time.Minute
	start := clk.Now()
	for len(a.allConns()) != 0 && clk.Now()-start < bound {
		clk.Advance(time.Second)
		time.Sleep(50 * time.Microsecond) // let the writer refill
	}
	gaveUp := clk.Now() - start
	if err := within(t, werr, "Write to a vanished peer"); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("Write: %v after %v of virtual time, want ETIMEDOUT", err, gaveUp)
	}
	t.Logf("ETIMEDOUT after %v of virtual time", gaveUp)
	if gaveUp >= bound {
		t.Fatalf("gave up after %v, bound %v", gaveUp, bound)
	}
	if n := len(a.allConns()); n != 0 {
		t.Errorf("%d connections left", n)
	}
	if n := clk.armedTimers(); n != 0 {
		t.Errorf("%d timers still armed", n)
	}
	settleGoroutines(t, base)
	// The application closes the connection and forgets it: nothing in
	// the stack may keep it, its rings or its timer alive.
	c.Close()
	wp := weak.Make(c)
	c = nil
	clk.Advance(time.Second) // the clock lets go of stopped timers
	for i := 0; i < 5 && wp.Value() != nil; i++ {
		runtime.GC()
	}
	if wp.Value() != nil {
		t.Error("the closed connection is still reachable from the stack")
	}
}

// TestShutdownClosesGracefully: Shutdown stops the listeners, sends a
// FIN on every connection (the peer reads EOF, not a reset), and returns
// nil as soon as the peers have closed too; new work is refused.
func TestShutdownClosesGracefully(t *testing.T) {
	a, b := pipePair(t, 1500)
	var conns []*Conn
	for i := 0; i < 3; i++ {
		c, sc := connected(t, a, b)
		go func() { // the server reads to EOF, then closes
			io.Copy(io.Discard, sc)
			sc.Close()
		}()
		conns = append(conns, c)
	}
	l, err := b.Listen("tcp", ":81")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		accepted <- err
	}()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- b.Shutdown(ctx)
	}()
	if err := within(t, accepted, "Accept during Shutdown"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept: %v, want net.ErrClosed", err)
	}
	for _, c := range conns {
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("client Read: %v, want io.EOF (the server's FIN)", err)
		}
		c.Close() // the client closes in turn
	}
	if err := within(t, done, "Shutdown"); err != nil {
		t.Fatalf("Shutdown: %v, want nil", err)
	}
	if n := len(b.allConns()); n != 0 {
		t.Errorf("%d connections left after Shutdown", n)
	}
	for _, c := range conns {
		if err := tcbErr(c); err != nil {
			t.Errorf("client connection ended with %v, want a clean close", err)
		}
	}
	if _, err := b.Dial("tcp", "10.9.0.1:80"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Shutdown: %v, want net.ErrClosed", err)
	}
	if _, err := b.Listen("tcp", ":82"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Listen after Shutdown: %v, want net.ErrClosed", err)
	}
}

// TestShutdownResetsAfterGrace: a peer that never closes gets the FIN
// (it reads EOF), and when ctx ends Shutdown resets the connection and
// says how many it had to reset.
func TestShutdownResetsAfterGrace(t *testing.T) {
	a, b := pipePair(t, 1500)
	c, sc := connected(t, a, b)
	served := make(chan error, 1)
	go func() { // the server waits for the client's FIN
		_, err := io.Copy(io.Discard, sc)
		served <- err
	}()
	dialed := make(chan error, 1)
	go func() { // a dial in SYN-SENT: 10.9.0.3 does not exist
		_, err := b.Dial("tcp", "10.9.0.3:80")
		dialed <- err
	}()
	waitFor(t, func() bool { return len(b.allConns()) == 2 })
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- b.Shutdown(ctx) }()
	if err := within(t, dialed, "Dial during Shutdown"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial in SYN-SENT during Shutdown: %v, want net.ErrClosed", err)
	}
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client Read: %v, want io.EOF", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a connection was open", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel() // the grace period is over
	if err := within(t, done, "Shutdown"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v, want context.Canceled", err)
	}
	waitState(t, c, tcp.Closed)
	if err := tcbErr(c); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client connection ended with %v, want ECONNRESET", err)
	}
	if err := within(t, served, "the server's Read"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("server Read after the reset: %v, want net.ErrClosed", err)
	}
	if n := len(b.allConns()); n != 0 {
		t.Errorf("%d connections left after Shutdown", n)
	}
}

func tcbErr(c *Conn) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tcb.Err()
}
