package stack

import (
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// BenchmarkPipeTransfer streams data from one stack to another, 1 MiB
// per op, over tun.Pipe ("pipe": every segment a packet of its own) and
// tun.PipeOffload ("offload": super-segments of up to 64 KiB). After a
// warm-up (rings at size, the pipe's slots grown) it reports allocs/seg,
// the process's allocations per TCP segment either stack sent (data and
// ACKs, a super-segment counted as its pieces): the steady data path
// allocates nothing, so this reads 0 with -benchmem's allocs/op.
//
//	go test -run X -bench PipeTransfer -benchmem ./stack
func BenchmarkPipeTransfer(b *testing.B) {
	for _, bc := range []struct {
		name string
		pipe func(mtu int) (tun.Device, tun.Device)
		to   string // the discard server: its family is the connection's
	}{
		{"pipe", tun.Pipe, "10.9.0.2:9"}, {"offload", tun.PipeOffload, "10.9.0.2:9"},
		{"pipe-IPv6", tun.Pipe, "[fd00:9::2]:9"}, {"offload-IPv6", tun.PipeOffload, "[fd00:9::2]:9"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			da, db := bc.pipe(1500)
			x, err := New(da, Config{Addr: dualA4, Addr6: dualA6})
			if err != nil {
				b.Fatal(err)
			}
			defer x.Close()
			y, err := New(db, Config{Addr: dualB4, Addr6: dualB6})
			if err != nil {
				b.Fatal(err)
			}
			defer y.Close()
			c := discardConnTo(b, x, y, bc.to)
			chunk := make([]byte, 1<<20)
			for range 64 { // warm-up
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			segs := func() uint64 { return x.stats.segmentsOut.Load() + y.stats.segmentsOut.Load() }
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			mallocs, segs0, queued0 := ms.Mallocs, segs(), x.stats.backlogQueued.Load()+y.stats.backlogQueued.Load()
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms)
			n := float64(segs() - segs0)
			b.ReportMetric(float64(ms.Mallocs-mallocs)/n, "allocs/seg")
			b.ReportMetric(n/float64(b.N), "segs/op")
			b.ReportMetric(float64(x.stats.backlogQueued.Load()+y.stats.backlogQueued.Load()-queued0)/float64(b.N), "queued/op")
		})
	}
}

// discardConn is a connection from x to a server on y (10.9.0.2) that
// reads and throws away everything; it is closed when the test ends.
func discardConn(tb testing.TB, x, y *Stack) net.Conn {
	tb.Helper()
	return discardConnTo(tb, x, y, "10.9.0.2:9")
}

// discardConnTo is discardConn to the address to (port 9) of y.
func discardConnTo(tb testing.TB, x, y *Stack, to string) net.Conn {
	tb.Helper()
	l, err := y.Listen("tcp", ":9")
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
	}()
	c, err := x.Dial("tcp", to)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// TestSteadyTransferDoesNotAllocatePerSegment guards the hot path: a MiB
// is ~720 data segments and ~360 ACKs (or a few dozen super-segments and
// their ACKs, with offloads), and the stacks may allocate less than once
// per ten packets.
func TestSteadyTransferDoesNotAllocatePerSegment(t *testing.T) {
	x, y := pipePair(t, 1500)
	c := discardConn(t, x, y)
	chunk := make([]byte, 1<<20)
	for i := 0; i < 4; i++ { // let the rings grow to size
		c.Write(chunk)
	}
	packets := func() uint64 {
		xs, ys := x.Stats(), y.Stats()
		return xs.PacketsIn + xs.PacketsOut + ys.PacketsIn + ys.PacketsOut
	}
	before := packets()
	const runs = 20
	allocs := testing.AllocsPerRun(runs, func() {
		if _, err := c.Write(chunk); err != nil {
			t.Fatal(err)
		}
	})
	perMiB := float64(packets()-before) / (runs + 1) // AllocsPerRun runs once more to warm up
	// Well under one allocation per packet read or written (with
	// offloads a MiB is a few dozen packets, without some 1,100).
	if allocs > perMiB/10 {
		t.Fatalf("%.1f allocations per MiB sent, %.0f packets: the per-packet path allocates", allocs, perMiB)
	}
	t.Logf("%.1f allocations per MiB, %.0f packets", allocs, perMiB)
}

// BenchmarkConnChurn opens and closes connections between two stacks
// over tun.Pipe as fast as 8 clients can, each a short exchange (100
// bytes each way). The client closes first and so holds the TIME-WAIT,
// kept short (MSL 100 ms) so its ports come free: a server closing first
// would have the client reuse ports its TIME-WAIT table still holds, and
// this stack picks ephemeral ports at random, so now and then one comes
// back within half a millisecond, before its ISN clock has moved past the
// old connection's sequence space, and waits out the entry. ns/op is the
// cost of one whole connection on both stacks; conns/s is the rate.
func BenchmarkConnChurn(b *testing.B) {
	b.Run("IPv4", func(b *testing.B) { connChurn(b, "10.9.0.2:80") })
	b.Run("IPv6", func(b *testing.B) { connChurn(b, "[fd00:9::2]:80") })
}

// connChurn is BenchmarkConnChurn with the server at to.
func connChurn(b *testing.B, to string) {
	x, y := pipePairCfg(b, Config{TCP: tcp.Config{MSL: 100 * time.Millisecond}, Addr6: dualA6}, Config{Addr6: dualB6})
	l, err := y.Listen("tcp", ":80")
	if err != nil {
		b.Fatal(err)
	}
	go serveEach(l, func(c net.Conn) {
		buf := make([]byte, 100)
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		c.Write(buf)
		c.Read(buf[:1]) // the client's FIN
	})
	const clients = 8
	var next atomic.Int64
	errs := make(chan error, clients)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < clients; w++ {
		go func() {
			req, resp := make([]byte, 100), make([]byte, 100)
			for next.Add(1) <= int64(b.N) {
				c, err := x.Dial("tcp", to)
				if err != nil {
					errs <- err
					return
				}
				if _, err := c.Write(req); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, resp); err != nil {
					errs <- err
					return
				}
				c.Close()
			}
			errs <- nil
		}()
	}
	for w := 0; w < clients; w++ {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "conns/s")
}

// serveEach accepts connections on l until it is closed and runs handle
// for each on its own goroutine, closing the connection afterwards.
func serveEach(l net.Listener, handle func(c net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}
