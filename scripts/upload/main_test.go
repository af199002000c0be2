package main

import (
	"io"
	"net"
	"testing"
	"time"
)

// discardServer accepts one connection on loopback, reads it to the end
// (or, with stopAfter >= 0, only that many bytes), reports what it read,
// and closes, as the discard service does.
func discardServer(t *testing.T, stopAfter int64) (string, <-chan int64) {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- -1
			return
		}
		var r io.Reader = c
		if stopAfter >= 0 {
			r = io.LimitReader(c, stopAfter)
		}
		n, _ := io.Copy(io.Discard, r)
		c.Close()
		got <- n
	}()
	return l.Addr().String(), got
}

func TestUploadCountsEveryByteDelivered(t *testing.T) {
	const n = 3<<20 + 12345 // not a multiple of the chunk
	addr, got := discardServer(t, -1)
	r, err := upload(addr, n, 64<<10, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if served := <-got; served != n {
		t.Fatalf("server read %d bytes, want %d", served, n)
	}
	if r.Bytes != n || r.Elapsed <= 0 || r.Gbps <= 0 {
		t.Fatalf("result %+v", r)
	}
}

// A server that stops reading and closes early must make the upload fail,
// not report a speed.
func TestUploadFailsWhenTheServerClosesEarly(t *testing.T) {
	addr, got := discardServer(t, 1<<20)
	if r, err := upload(addr, 64<<20, 256<<10, 20*time.Second); err == nil {
		t.Fatalf("upload to a server that closed after 1 MiB succeeded: %+v", r)
	}
	if served := <-got; served != 1<<20 {
		t.Fatalf("server read %d bytes, want %d", served, 1<<20)
	}
}
