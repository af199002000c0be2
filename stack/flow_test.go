package stack

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tund-project/tund/tcp"
)

// connInfo returns the snapshot of the connection with local port lport.
func connInfo(s *Stack, lport uint16) (ConnInfo, bool) {
	for _, ci := range s.Connections() {
		if ci.Local.Port() == lport && ci.Remote.IsValid() {
			return ci, true
		}
	}
	return ConnInfo{}, false
}

// TestStoppedReaderStopsSenderAtWindowEdge: a reader that stops reading
// fills its buffer; the sender sends exactly up to the right edge of the
// window and no further, waits (persist timer armed, nothing in flight),
// and resumes when the reader reads again. Every byte arrives intact.
func TestStoppedReaderStopsSenderAtWindowEdge(t *testing.T) {
	a, b := pipePair(t, 1500)
	l, err := b.Listen("tcp", ":5001")
	if err != nil {
		t.Fatal(err)
	}
	const rcvBuf = 64 << 10
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.(*Conn).SetReadBuffer(rcvBuf)
		accepted <- c.(*Conn)
	}()
	c, err := a.Dial("tcp", "10.9.0.2:5001")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-accepted
	defer sc.Close()
	data := randomBytes(1<<20, 7)
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		wrote <- err
	}()
	// Wait for the window to close and the sender to settle.
	var ci, si ConnInfo
	lport := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ci, _ = connInfo(a, lport)
		si, _ = connInfo(b, 5001)
		if ci.SndWnd == 0 && ci.SndNxt == ci.SndUna && ci.Timer == "persist" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ci.SndWnd != 0 || ci.SndNxt != ci.SndUna {
		t.Fatalf("sender did not settle at a closed window: snd_wnd %d, in flight %d, timer %q",
			ci.SndWnd, ci.SndNxt.Sub(ci.SndUna), ci.Timer)
	}
	if ci.Timer != "persist" {
		t.Errorf("sender's timer %q, want persist (window probes)", ci.Timer)
	}
	// Exactly at the edge: what the receiver holds is everything the
	// sender got acknowledged, and at least the whole buffer (less than
	// one window-scale unit the scaled window field cannot express; more
	// if the window offered before SetReadBuffer shrank the buffer
	// reached further, since an offered window is honoured).
	if acked := len(data) - ci.SendQ; si.RecvQ != acked {
		t.Errorf("receiver holds %d bytes, sender had %d acknowledged", si.RecvQ, acked)
	}
	if si.RecvQ < rcvBuf-128 {
		t.Errorf("receiver holds %d bytes, want the %d-byte buffer full", si.RecvQ, rcvBuf)
	}
	t.Logf("sender stopped with the receiver holding %d bytes (buffer %d)", si.RecvQ, rcvBuf)
	// It stays there: nothing more goes while nobody reads.
	time.Sleep(300 * time.Millisecond)
	if si2, _ := connInfo(b, 5001); si2.RecvQ != si.RecvQ {
		t.Errorf("receiver's queue moved from %d to %d without a read", si.RecvQ, si2.RecvQ)
	}
	// Reading again resumes the transfer; all bytes arrive intact.
	c.(*Conn).CloseWrite()
	h := sha256.New()
	sc.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(h, sc)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("read %d bytes, want %d identical", n, len(data))
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

// TestSetReadBufferLimitsWindowAndSetWriteBufferLimitsQueue: the
// connection's buffers follow SetReadBuffer / SetWriteBuffer, and a bad
// size is EINVAL.
func TestSetReadBufferLimitsWindowAndSetWriteBufferLimitsQueue(t *testing.T) {
	a, b := pipePair(t, 1500)
	l, err := b.Listen("tcp", ":5002")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			c.(*Conn).SetReadBuffer(20000)
			io.Copy(io.Discard, c)
		}
	}()
	c, err := a.Dial("tcp", "10.9.0.2:5002")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := c.(*Conn)
	if err := tc.SetWriteBuffer(0); err == nil {
		t.Error("SetWriteBuffer(0) accepted")
	}
	if err := tc.SetWriteBuffer(30000); err != nil {
		t.Fatal(err)
	}
	if err := tc.SetNoDelay(true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(randomBytes(200000, 3)); err != nil {
		t.Fatal(err)
	}
	ci, _ := connInfo(a, uint16(c.LocalAddr().(*net.TCPAddr).Port))
	if ci.SndBuf != 30000 || ci.SendQ > 30000 {
		t.Errorf("send buffer %d holding %d, want 30000 at most", ci.SndBuf, ci.SendQ)
	}
	if ci.SndWnd > 20000 {
		t.Errorf("peer window %d beyond its 20000-byte SetReadBuffer", ci.SndWnd)
	}
	tc.Close()
	if err := tc.SetNoDelay(false); err == nil {
		t.Error("SetNoDelay after Close accepted")
	}
}

// TestZeroWindowHeldForMinutesOfVirtualTime: both stacks run on one
// ManualClock. The receiver stops reading; the sender sits at a zero
// window for ten minutes of virtual time, probing with backoff, and the
// receiver answers every probe: the connection stays up. Then the reader
// reads and everything arrives.
func TestZeroWindowHeldForMinutesOfVirtualTime(t *testing.T) {
	clk := NewManualClock()
	a, b := pipePairCfg(t, Config{Clock: clk}, Config{Clock: clk})
	l, err := b.Listen("tcp", ":5004")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan *Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			c.(*Conn).SetReadBuffer(16 << 10)
			accepted <- c.(*Conn)
		}
	}()
	c, err := a.Dial("tcp", "10.9.0.2:5004")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-accepted
	defer sc.Close()
	data := randomBytes(300<<10, 9)
	go c.Write(data)
	lport := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	settled := func() (ConnInfo, bool) {
		ci, _ := connInfo(a, lport)
		return ci, ci.SndWnd == 0 && ci.SndNxt == ci.SndUna && ci.Timer == "persist"
	}
	// Real time passes for the packets only; the protocol's timers wait
	// for Advance. Nudge virtual time in small steps until the window is
	// shut and the sender waits on its persist timer.
	for i := 0; i < 2000; i++ {
		if _, ok := settled(); ok {
			break
		}
		clk.Advance(time.Millisecond)
		time.Sleep(100 * time.Microsecond)
	}
	ci, ok := settled()
	if !ok {
		t.Fatalf("sender never settled at a zero window: %+v", ci.Info)
	}
	probesBefore := b.Stats().SegmentsIn
	start := clk.Now()
	for clk.Now()-start < 10*time.Minute {
		clk.Advance(time.Second)
		time.Sleep(200 * time.Microsecond) // let a probe and its answer cross the pipe
	}
	ci, _ = connInfo(a, lport)
	probes := b.Stats().SegmentsIn - probesBefore
	t.Logf("10 min of virtual time at a zero window: %d probes reached the receiver; sender state %v, timer %s in %v",
		probes, ci.State, ci.Timer, ci.TimerAt)
	if ci.State != tcp.Established {
		t.Fatalf("sender state %v after ten minutes of answered probes, want ESTABLISHED", ci.State)
	}
	// Probes back off to MaxRTO (60 s): about 9 in 10 minutes, never one
	// per second, never none.
	if probes < 5 || probes > 30 {
		t.Errorf("%d probes in 10 minutes, want a backed-off handful", probes)
	}
	// Reading again resumes the transfer. Keep virtual time moving so
	// delayed ACKs fire.
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				clk.Advance(5 * time.Millisecond)
				time.Sleep(200 * time.Microsecond)
			}
		}
	}()
	defer close(stop)
	got := make([]byte, len(data))
	sc.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(sc, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data differs after the window reopened")
	}
}
