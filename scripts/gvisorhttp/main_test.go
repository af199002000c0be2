package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// The HTTP service must send exactly what tund's does: N bytes of
// "tund tund ...", across the 64 KiB writes, and refuse a bad N.
func TestBytesHandlerServesNBytesOfThePattern(t *testing.T) {
	srv := httptest.NewServer(bytesHandler())
	defer srv.Close()
	for _, n := range []int{0, 1, 5, 64<<10 - 1, 64 << 10, 200_003} {
		resp, err := http.Get(srv.URL + "/bytes/" + strconv.Itoa(n))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /bytes/%d: %v, status %d", n, err, resp.StatusCode)
		}
		want := bytes.Repeat([]byte("tund "), n/5+1)[:n]
		if !bytes.Equal(body, want) {
			t.Fatalf("GET /bytes/%d: %d bytes, not the pattern", n, len(body))
		}
	}
	for _, bad := range []string{"-1", "x", "68719476737"} {
		resp, err := http.Get(srv.URL + "/bytes/" + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /bytes/%s: status %d, want 400", bad, resp.StatusCode)
		}
	}
}

// echo returns every byte, in order, until the peer half-closes.
func TestEchoReturnsEveryByte(t *testing.T) {
	a, b := net.Pipe()
	go echo(b)
	msg := bytes.Repeat([]byte("0123456789abcdef"), 10_000)
	go func() {
		a.Write(msg)
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(a, got); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if !bytes.Equal(got, msg) {
		t.Fatal("echo changed the bytes")
	}
}
