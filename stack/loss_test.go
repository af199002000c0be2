package stack

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// impairedPair joins two stacks through tun.Impair on a's end, so both
// directions suffer, with a minimum RTO fit for a link whose RTT is
// microseconds (as `ip route ... rto_min` would set on Linux).
func impairedPair(t testing.TB, m tun.Impairment, cc string) (a, b *Stack, imp *tun.Impaired) {
	t.Helper()
	tc := tcp.Config{MinRTO: 5 * time.Millisecond, InitialRTO: 50 * time.Millisecond, CongestionControl: cc}
	a, b = pipePairWrap(t, Config{TCP: tc}, Config{TCP: tc}, func(d tun.Device) tun.Device {
		var err error
		if imp, err = tun.Impair(d, tun.ImpairConfig{Seed: 42, In: m, Out: m}); err != nil {
			t.Fatal(err)
		}
		return imp
	})
	return a, b, imp
}

// TestTransfersThroughLossReorderingAndDuplication: 50 MiB from one
// stack to the other through random loss (1, 5 and 10 %), reordering and
// duplication in both directions arrive byte-exact.
func TestTransfersThroughLossReorderingAndDuplication(t *testing.T) {
	for _, tc := range []struct {
		loss float64
		cc   string
	}{{0.01, "newreno"}, {0.05, "cubic"}, {0.10, "newreno"}} {
		t.Run(fmt.Sprintf("%s/%g%%", tc.cc, tc.loss*100), func(t *testing.T) {
			m := tun.Impairment{Loss: tc.loss, Reorder: 0.02, ReorderGap: 2, Duplicate: 0.01}
			a, b, imp := impairedPair(t, m, tc.cc)

			l, err := b.Listen("tcp", ":7000")
			if err != nil {
				t.Fatal(err)
			}
			done := hashReceiver(l, time.Time{})
			const size = 50 << 20
			data := randomBytes(size, 77)
			start := time.Now()
			c, err := a.Dial("tcp", "10.9.0.2:7000")
			if err != nil {
				t.Fatal(err)
			}
			c.SetWriteDeadline(time.Now().Add(3 * time.Minute))
			if _, err := c.Write(data); err != nil {
				t.Fatal(err)
			}
			c.(*Conn).CloseWrite()
			var r hashResult
			select {
			case r = <-done:
			case <-time.After(3 * time.Minute):
				t.Fatal("transfer did not finish in 3 minutes")
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			ci := tcbInfo(c.(*Conn))
			if want := sha256.Sum256(data); r.n != size || r.sum != want {
				t.Fatalf("received %d bytes, want %d identical", r.n, size)
			}
			st := imp.Stats()
			t.Logf("50 MiB in %v (%.0f Mbit/s): %d retransmissions, %d recoveries, %d probes, %d timeouts, %d undone, RTO floor %v; link lost %d, duplicated %d, reordered %d",
				time.Since(start).Round(time.Millisecond), size*8/time.Since(start).Seconds()/1e6,
				ci.Retransmits, ci.Recoveries, ci.Probes, ci.Timeouts, ci.SpuriousUndone, ci.RTOMin,
				st.In.Lost+st.Out.Lost, st.In.Duplicated+st.Out.Duplicated, st.In.Reordered+st.Out.Reordered)
			c.Close()
		})
	}
}

// TestLostPeerTimesOut: once the peer vanishes mid-transfer, the sender
// gives up with ETIMEDOUT after its retries, in bounded time.
func TestLostPeerTimesOut(t *testing.T) {
	tc := tcp.Config{MinRTO: 5 * time.Millisecond, InitialRTO: 50 * time.Millisecond, MaxRTO: 200 * time.Millisecond, MaxRetries: 8}
	a, b, da := dropPair(t, Config{TCP: tc}, Config{})
	l, _ := b.Listen("tcp", ":7001")
	go func() {
		if c, err := l.Accept(); err == nil {
			io.Copy(io.Discard, c)
		}
	}()
	c, err := a.Dial("tcp", "10.9.0.2:7001")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(randomBytes(100000, 5)); err != nil {
		t.Fatal(err)
	}
	da.mu.Lock()
	da.drop = func(*tcp.Segment) bool { return true } // the peer is gone
	da.mu.Unlock()
	start := time.Now()
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		_, werr = c.Write(randomBytes(100000, uint64(i)))
	}
	if !errors.Is(werr, syscall.ETIMEDOUT) {
		t.Fatalf("write error %v, want ETIMEDOUT", werr)
	}
	// 8 retries backing off from the RTO to 200 ms: well under 3 s.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("gave up after %v", d)
	}
	t.Logf("ETIMEDOUT after %v", time.Since(start).Round(time.Millisecond))
}

// tcbInfo reads a connection's counters, whatever its state.
func tcbInfo(c *Conn) tcp.Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tcb.Info()
}

// hashResult is what hashReceiver's connection delivered: its length and
// SHA-256, or the error that ended it.
type hashResult struct {
	n   int64
	sum [32]byte
	err error
}

// hashReceiver accepts one connection on l, reads it to EOF (by deadline
// if not zero) and sends its length and SHA-256 on the returned channel.
func hashReceiver(l net.Listener, deadline time.Time) <-chan hashResult {
	done := make(chan hashResult, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- hashResult{err: err}
			return
		}
		defer c.Close()
		if !deadline.IsZero() {
			c.SetDeadline(deadline)
		}
		h := sha256.New()
		var r hashResult
		r.n, r.err = io.Copy(h, c)
		copy(r.sum[:], h.Sum(nil))
		done <- r
	}()
	return done
}
