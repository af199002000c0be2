package stack

import (
	"io"
	"testing"
)

// BenchmarkPipeTransfer streams data from one stack to another over
// tun.Pipe; allocs/op divided by the ~720 segments of each 1 MiB op shows
// whether the per-packet path allocates.
func BenchmarkPipeTransfer(b *testing.B) {
	x, y := pipePair(b, 1500)
	l, err := y.Listen("tcp", ":9")
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
	}()
	c, err := x.Dial("tcp", "10.9.0.2:9")
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(x.stats.backlogQueued.Load()+y.stats.backlogQueued.Load())/float64(b.N), "queued/op")
	c.Close()
}

// TestSteadyTransferDoesNotAllocatePerSegment guards the hot path: a MiB
// is ~720 data segments and ~360 ACKs (or a few dozen super-segments and
// their ACKs, with offloads), and the stacks may allocate less than once
// per ten packets.
func TestSteadyTransferDoesNotAllocatePerSegment(t *testing.T) {
	x, y := pipePair(t, 1500)
	l, err := y.Listen("tcp", ":9")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
	}()
	c, err := x.Dial("tcp", "10.9.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
