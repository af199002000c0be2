package tun

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"
)

func TestPipeRoundTripInOrder(t *testing.T) {
	a, b := Pipe(1500)
	defer a.Close()
	for i := 0; i < 100; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 1+i*10)
		if _, err := a.Write(p); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Write(append(p, 0xee)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1500)
	for i := 0; i < 100; i++ {
		want := bytes.Repeat([]byte{byte(i)}, 1+i*10)
		n, err := b.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("a->b packet %d: %d bytes %v", i, n, err)
		}
		n, err = a.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], append(want, 0xee)) {
			t.Fatalf("b->a packet %d: %d bytes %v", i, n, err)
		}
	}
}

func TestPipeFullQueueDrops(t *testing.T) {
	a, b := Pipe(100)
	defer a.Close()
	for i := 0; i < pipeQueueLen+10; i++ {
		if n, err := a.Write([]byte{1, 2, 3}); n != 3 || err != nil {
			t.Fatalf("write %d: %d %v", i, n, err)
		}
	}
	if d := a.(*PipeEnd).Drops(); d != 10 {
		t.Fatalf("drops %d, want 10", d)
	}
	_ = b
	if _, err := a.Write(make([]byte, 101)); !errors.Is(err, ErrTooBig) {
		t.Fatalf("oversized write: %v", err)
	}
}

func TestPipeCloseUnblocksRead(t *testing.T) {
	a, b := Pipe(1500)
	errc := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 1500))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	a.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if _, err := b.Write([]byte{1}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestPipeNoAllocs(t *testing.T) {
	a, b := Pipe(1500)
	defer a.Close()
	p, buf := make([]byte, 1400), make([]byte, 1500)
	allocs := testing.AllocsPerRun(1000, func() {
		a.Write(p)
		b.Read(buf)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet", allocs)
	}
}

func BenchmarkPipe(b *testing.B) {
	x, y := Pipe(1500)
	defer x.Close()
	p, buf := make([]byte, 1400), make([]byte, 1500)
	b.ReportAllocs()
	b.SetBytes(1400)
	for i := 0; i < b.N; i++ {
		x.Write(p)
		y.Read(buf)
	}
}
