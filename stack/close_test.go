package stack

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tund-project/tund/tcp"
)

// armedTimers counts the clock's timers that are still armed.
func (m *ManualClock) armedTimers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, t := range m.timers {
		if t.armed {
			n++
		}
	}
	return n
}

// setHook installs s's test hook.
func setHook(s *Stack, f func(point string)) { s.testHook.Store(&f) }

// within waits up to 5 s for ch; a call that is still blocked then is
// one that Close (or a device failure) failed to wake.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: still blocked after 5 s", what)
		panic("unreachable")
	}
}

// settleGoroutines waits up to 5 s for the goroutine count to come back
// to base, and fails with every goroutine's stack if it does not.
func settleGoroutines(t *testing.T, base int) {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(end) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%d goroutines, %d before:\n%s", n, base, buf)
	}
}

// TestCloseAbortsDialThatPassedTheCheck: a Dial that has passed the
// closing check when Close runs (and so is not in Close's snapshot) is
// refused with net.ErrClosed instead of waiting out its SYN retries.
func TestCloseAbortsDialThatPassedTheCheck(t *testing.T) {
	clk := NewManualClock() // never advanced: a SYN retry would never come
	a, _ := pipePairCfg(t, Config{Clock: clk}, Config{Clock: NewManualClock()})
	var once sync.Once
	setHook(a, func(p string) {
		if p == "dial" {
			once.Do(func() { a.Close() })
		}
	})
	errc := make(chan error, 1)
	go func() {
		c, err := a.Dial("tcp", "10.9.0.2:80")
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	if err := within(t, errc, "Dial racing Close"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Dial racing Close: %v, want net.ErrClosed", err)
	}
	if n := len(a.allConns()); n != 0 || clk.armedTimers() != 0 {
		t.Fatalf("after Close: %d connections, %d timers armed", n, clk.armedTimers())
	}
}

// TestCloseAbortsListenThatPassedTheCheck: a Listen that has passed the
// closing check when Close runs fails with net.ErrClosed; it must not
// hand out a listener whose Accept blocks for ever.
func TestCloseAbortsListenThatPassedTheCheck(t *testing.T) {
	a, _ := pipePair(t, 1500)
	var once sync.Once
	setHook(a, func(p string) {
		if p == "listen" {
			once.Do(func() { a.Close() })
		}
	})
	l, err := a.Listen("tcp", ":80")
	if err == nil {
		errc := make(chan error, 1)
		go func() {
			_, err := l.Accept()
			errc <- err
		}()
		err = within(t, errc, "Accept on a listener made while closing")
	}
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Listen/Accept racing Close: %v, want net.ErrClosed", err)
	}
	if n := len(a.Connections()); n != 0 {
		t.Fatalf("after Close: %d entries in Connections", n)
	}
}

// TestCloseAbortsPassiveOpenDuringClose: a SYN the reader admits while
// Close runs (after Close's snapshot of the table) must not leave a
// SYN-RECEIVED connection behind with its retransmission timer running.
func TestCloseAbortsPassiveOpenDuringClose(t *testing.T) {
	clkB := NewManualClock()
	a, b := pipePairCfg(t, Config{Clock: NewManualClock()}, Config{Clock: clkB})
	if _, err := b.Listen("tcp", ":80"); err != nil {
		t.Fatal(err)
	}
	aborted := make(chan struct{})
	closed := make(chan struct{})
	var once, abortOnce sync.Once
	setHook(b, func(p string) {
		switch p {
		case "admit": // on b's reader, with the SYN in hand
			once.Do(func() {
				go func() {
					b.Close()
					close(closed)
				}()
				<-aborted // Close has snapshotted and aborted the table
			})
		case "aborted":
			abortOnce.Do(func() { close(aborted) })
		}
	})
	dialed := make(chan error, 1)
	go func() {
		c, err := a.Dial("tcp", "10.9.0.2:80")
		if c != nil {
			c.Close()
		}
		dialed <- err
	}()
	within(t, closed, "b.Close")
	if n := len(b.allConns()); n != 0 {
		t.Errorf("after Close: %d connections left in the table", n)
	}
	if n := clkB.armedTimers(); n != 0 {
		t.Errorf("after Close: %d timers still armed", n)
	}
	a.Close()
	within(t, dialed, "a's Dial after a.Close")
}

// TestCloseStopsTimeWaitTimerForGood: a connection that enters
// TIME-WAIT while Close runs (one Close's snapshot missed, or the reader
// answering a FIN just before the device closes) must not re-arm the
// TIME-WAIT table's timer, or add to a table nobody will expire.
func TestCloseStopsTimeWaitTimerForGood(t *testing.T) {
	clkB := NewManualClock()
	a, b := pipePairCfg(t, Config{Clock: NewManualClock()}, Config{Clock: clkB})
	c, sc := connected(t, a, b)
	sc.Close() // b closes first: b holds TIME-WAIT
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	c.Close()
	var key tuple
	var rec tcp.TimeWaitEntry
	waitFor(t, func() bool {
		for i := range b.shards {
			sh := &b.shards[i]
			sh.mu.RLock()
			for k, r := range sh.tw {
				key, rec = k, r
			}
			sh.mu.RUnlock()
		}
		return rec.Expires != 0
	})
	b.Close()
	if n := clkB.armedTimers(); n != 0 {
		t.Fatalf("after Close: %d timers armed", n)
	}
	// What a late FIN's TIME-WAIT restart, or a connection entering
	// TIME-WAIT just after the snapshot, does:
	b.addTimeWait(key, nil, rec)
	b.twPush(key, rec.Expires+time.Second)
	if n := clkB.armedTimers(); n != 0 {
		t.Errorf("TIME-WAIT timer re-armed after Close (%d timers armed)", n)
	}
	if n := b.timeWaitCount(); n != 0 {
		t.Errorf("%d TIME-WAIT entries after Close", n)
	}
}

// waitFor polls cond for up to 10 s of wall time.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// connected dials b from a and returns both ends.
func connected(t *testing.T, a, b *Stack) (client, server *Conn) {
	t.Helper()
	l, accepted := acceptOne(t, b)
	c, err := a.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c.(*Conn), within(t, accepted, "Accept")
}

// deadlineArmed reports whether d has a runtime timer pending.
func deadlineArmed(d *deadline) bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.timer != nil
}

// TestConnCloseStopsDeadlineTimers: Close stops the read and write
// deadline timers (a far deadline would otherwise keep its timer for
// hours after the connection is gone), and a deadline set after Close is
// an error, as on a *net.TCPConn.
func TestConnCloseStopsDeadlineTimers(t *testing.T) {
	a, b := pipePair(t, 1500)
	tc, _ := connected(t, a, b)
	tc.SetDeadline(time.Now().Add(time.Hour))
	if !deadlineArmed(tc.rdl()) || !deadlineArmed(tc.wdl()) {
		t.Fatal("deadline timers not armed")
	}
	tc.Close()
	if deadlineArmed(tc.rdl()) || deadlineArmed(tc.wdl()) {
		t.Error("deadline timers still armed after Close")
	}
	if err := tc.SetReadDeadline(time.Now().Add(time.Hour)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetReadDeadline after Close: %v, want net.ErrClosed", err)
	}
	if deadlineArmed(tc.rdl()) {
		t.Error("SetReadDeadline after Close armed a timer")
	}
}

// TestStackCloseStopsDeadlineTimers: Stack.Close stops the deadline
// timers of the connections it aborts.
func TestStackCloseStopsDeadlineTimers(t *testing.T) {
	a, b := pipePair(t, 1500)
	tc, _ := connected(t, a, b)
	tc.SetDeadline(time.Now().Add(time.Hour))
	a.Close()
	if deadlineArmed(tc.rdl()) || deadlineArmed(tc.wdl()) {
		t.Error("deadline timers still armed after Stack.Close")
	}
	if _, err := tc.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Stack.Close: %v, want net.ErrClosed", err)
	}
}

// TestCloseRacesWithDialListenAccept races Dial, Listen and Accept
// against Close, many times over: every call returns within 5 s, with
// success or an error wrapping net.ErrClosed, and no goroutine is left.
func TestCloseRacesWithDialListenAccept(t *testing.T) {
	rounds := 300
	if testing.Short() {
		rounds = 50
	}
	base := runtime.NumGoroutine()
	for i := 0; i < rounds; i++ {
		if err := closeRaceRound(i); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	settleGoroutines(t, base)
}

func closeRaceRound(i int) error {
	da, db := testPipe(1500)
	quiet := slog.New(slog.DiscardHandler)
	a, err := New(da, Config{Addr: netip.MustParseAddr("10.9.0.1"), Logger: quiet})
	if err != nil {
		return err
	}
	b, err := New(db, Config{Addr: netip.MustParseAddr("10.9.0.2"), Logger: quiet})
	if err != nil {
		return err
	}
	defer b.Close()
	lb, err := b.Listen("tcp", ":80")
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := lb.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	start := make(chan struct{})
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	closedOK := func(what string, err error) {
		if err != nil && !errors.Is(err, net.ErrClosed) {
			errs <- fmt.Errorf("%s: %w (want net.ErrClosed)", what, err)
		}
	}
	for k := 0; k < 4; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := a.Dial("tcp", "10.9.0.2:80")
			closedOK("Dial", err)
			if err == nil {
				c.Close()
			}
		}()
	}
	for k := 0; k < 2; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			l, err := a.Listen("tcp", ":0")
			closedOK("Listen", err)
			if err != nil {
				return
			}
			_, err = l.Accept() // nobody dials a: only Close ends it
			if err == nil {
				err = errors.New("accepted a connection nobody made")
			}
			closedOK("Accept", err)
		}()
	}
	close(start)
	// Close at a different moment each round: before, during and after
	// the calls pass their checks.
	for spin := 0; spin < (i%16)*200; spin++ {
		runtime.Gosched()
	}
	a.Close()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return errors.New("a call was still blocked 5 s after Close")
	}
	close(errs)
	var msgs []string
	for err := range errs {
		msgs = append(msgs, err.Error())
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "; "))
	}
	if n := len(a.allConns()); n != 0 {
		return fmt.Errorf("%d connections left after Close", n)
	}
	return nil
}
