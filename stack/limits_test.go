package stack

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// acceptAll accepts every connection on a new listener of s and hands
// them out on the channel.
func acceptAll(t *testing.T, s *Stack) (net.Listener, <-chan net.Conn) {
	t.Helper()
	l, err := s.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan net.Conn, 1024)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	return l, ch
}

// TestMaxConnections: past MaxConnections a dial fails with ENOBUFS and a
// SYN from a peer is dropped (counted); closing one makes room again.
func TestMaxConnections(t *testing.T) {
	a, b := pipePairCfg(t, Config{MaxConnections: 2}, Config{MaxConnections: 3})
	_, accepted := acceptAll(t, b)
	var conns []net.Conn
	for i := 0; i < 2; i++ {
		c, err := a.Dial("tcp", "10.9.0.2:80")
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		<-accepted
	}
	if _, err := a.Dial("tcp", "10.9.0.2:80"); !errors.Is(err, syscall.ENOBUFS) {
		t.Fatalf("third dial past MaxConnections 2: %v, want ENOBUFS", err)
	}
	if got := a.Stats().ConnLimitHit; got != 1 {
		t.Fatalf("ConnLimitHit %d, want 1", got)
	}
	conns[0].(*Conn).SetLinger(0)
	conns[0].Close()
	waitFor(t, func() bool { return a.Stats().Connections == 1 })
	c, err := a.Dial("tcp", "10.9.0.2:80")
	if err != nil {
		t.Fatalf("dial after a close made room: %v", err)
	}
	c.Close()
}

// TestMaxConnectionsDropsSyn: a listener's SYN is dropped when the stack
// holds MaxConnections; the client's SYN retransmission gets in later.
func TestMaxConnectionsDropsSyn(t *testing.T) {
	a, b := pipePairCfg(t, Config{}, Config{MaxConnections: 1})
	_, accepted := acceptAll(t, b)
	first, err := a.Dial("tcp", "10.9.0.2:80")
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	done := make(chan error, 1)
	go func() {
		c, err := a.Dial("tcp", "10.9.0.2:80")
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	waitFor(t, func() bool { return b.Stats().Drops["conn_limit"] > 0 })
	sc.(*Conn).SetLinger(0)
	sc.Close()
	first.Close()
	if err := <-done; err != nil {
		t.Fatalf("second dial once room was made: %v", err)
	}
}

// TestMaxOrphans: past MaxOrphans, a connection the application closes
// while the peer keeps it from finishing is reset at once instead of
// lingering as an orphan.
func TestMaxOrphans(t *testing.T) {
	a, b := pipePairCfg(t, Config{MaxOrphans: 1}, Config{})
	_, accepted := acceptAll(t, b)
	var peers []net.Conn
	for i := 0; i < 2; i++ {
		c, err := a.Dial("tcp", "10.9.0.2:80")
		if err != nil {
			t.Fatal(err)
		}
		sc := <-accepted
		peers = append(peers, sc)
		// Fill the peer's window (it never reads), then close: the FIN
		// waits behind the data, so the connection is an orphan.
		c.(*Conn).SetWriteBuffer(4 << 20)
		go c.Write(make([]byte, 2<<20))
		waitFor(t, func() bool { return tcbInfo(c.(*Conn)).SndWnd == 0 })
		c.Close()
	}
	waitFor(t, func() bool { return a.Stats().OrphanOverflow == 1 })
	st := a.Stats()
	if st.Orphans != 1 {
		t.Fatalf("%d orphans, want 1 (the cap)", st.Orphans)
	}
	// The second peer was told: a reset, not a FIN after its data.
	peers[1].SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, peers[1])
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the peer of the connection past the cap read until %v, want ECONNRESET", err)
	}
}

// TestMemoryLimitHolds: fifty connections whose receivers stop reading
// cannot take more ring memory than the budget (plus each ring's first
// page); once the readers read again, every byte arrives intact, and the
// idle connections give their memory back.
func TestMemoryLimitHolds(t *testing.T) {
	const budget = 8 << 20
	a, b := pipePairCfg(t, Config{MemLimit: budget}, Config{MemLimit: budget})
	_, accepted := acceptAll(t, b)
	const n, size = 50, 1 << 20
	var wg sync.WaitGroup
	var readers []net.Conn
	for i := 0; i < n; i++ {
		c, err := a.Dial("tcp", "10.9.0.2:80")
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, <-accepted)
		wg.Add(1)
		go func(c net.Conn, seed int) {
			defer wg.Done()
			c.Write(pattern(size, seed))
			c.Close()
		}(c, i)
	}
	// The windows fill and stay full: the receiver comes under pressure
	// (waited for, not slept for: a loaded machine may take a while).
	end := time.Now().Add(10 * time.Second)
	for b.Stats().MemoryPressure == "normal" && time.Now().Before(end) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // and anything still in flight lands
	peakA, peakB := a.Stats().MemoryUsed, b.Stats().MemoryUsed
	floor := int64(2 * n * 4096)
	if peakB > budget+floor || peakA > budget+floor {
		t.Fatalf("ring memory %d (sender) and %d (receiver), budget %d (+%d floors)", peakA, peakB, budget, floor)
	}
	if b.Stats().MemoryPressure == "normal" {
		t.Fatalf("receiver at %d of %d bytes: never under pressure", peakB, budget)
	}
	var rwg sync.WaitGroup
	errs := make(chan error, n)
	for i, r := range readers {
		rwg.Add(1)
		go func(r net.Conn, seed int) {
			defer rwg.Done()
			r.SetReadDeadline(time.Now().Add(60 * time.Second))
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, pattern(size, seed)) {
				errs <- fmt.Errorf("connection %d: %d bytes, %v", seed, len(got), err)
			}
			r.Close()
		}(r, i)
	}
	rwg.Wait()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, func() bool { return a.Stats().MemoryUsed == 0 && b.Stats().MemoryUsed == 0 })
	t.Logf("budget %d: peak %d / %d bytes; pressure began %d times, growth refused %d times", budget, peakA, peakB,
		b.Stats().MemoryPressureEvents, b.Stats().MemoryRefused)
}

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}
