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
// is ~720 data segments and ~360 ACKs, so even one allocation per packet
// would show as hundreds here.
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
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := c.Write(chunk); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 50 {
		t.Fatalf("%.0f allocations per MiB sent: the per-packet path allocates", allocs)
	}
	t.Logf("%.1f allocations per MiB", allocs)
}
