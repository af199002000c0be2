package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tun"
)

// serviceStacks joins a client stack to a server stack running the
// echo (7) and discard (9) services as tund does, over tun.Pipe.
func serviceStacks(t *testing.T) *stack.Stack {
	t.Helper()
	da, db := tun.Pipe(1500)
	client, err := stack.New(da, stack.Config{Addr: netip.MustParseAddr("10.9.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	server, err := stack.New(db, stack.Config{Addr: netip.MustParseAddr("10.9.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	for port, start := range map[int]func(*stack.Conn){7: inBursts(echo), 9: inBursts(discard)} {
		l, err := server.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			t.Fatal(err)
		}
		go serve(l, "test", slog.New(slog.DiscardHandler), start)
	}
	return client
}

// TestEchoInBursts: the echo service sends back 2 MiB on each of 8
// connections at once byte for byte, and closes after the client's FIN;
// discard counts what it throws away.
func TestEchoInBursts(t *testing.T) {
	client := serviceStacks(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.Dial("tcp", "10.9.0.2:7")
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			data := make([]byte, 2<<20)
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for j := range data {
				data[j] = byte(r.Uint32())
			}
			go func() {
				c.Write(data)
				c.(*stack.Conn).CloseWrite()
			}()
			h := sha256.New()
			n, err := io.Copy(h, c) // to EOF: the service closed after echoing all
			if want := sha256.Sum256(data); err != nil || n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
				t.Errorf("connection %d: echoed %d bytes (%v), want %d with the same SHA-256", i, n, err, len(data))
			}
		}()
	}
	wg.Wait()

	before := discarded.Load()
	c, err := client.Dial("tcp", "10.9.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	c.Write(make([]byte, 100000))
	c.(*stack.Conn).CloseWrite()
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("discard answered %d bytes, %v; want EOF", n, err)
	}
	c.Close()
	if got := discarded.Load() - before; got != 100000 {
		t.Fatalf("discard counted %d bytes, want 100000", got)
	}
}

// TestIdleServiceConnectionsHoldNoGoroutine: 200 echo and discard
// connections that have been used and sit idle run no goroutine.
func TestIdleServiceConnectionsHoldNoGoroutine(t *testing.T) {
	client := serviceStacks(t)
	base := runtime.NumGoroutine()
	var conns []net.Conn
	for i := range 200 {
		c, err := client.Dial("tcp", []string{"10.9.0.2:7", "10.9.0.2:9"}[i%2])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		msg := []byte("ping")
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("echo %d: %q, %v", i, got, err)
			}
		}
	}
	// The bursts end on their own once the bytes are handled.
	end := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+10 {
		if time.Now().After(end) {
			t.Fatalf("%d goroutines for %d idle connections (%d before)", runtime.NumGoroutine(), len(conns), base)
		}
		time.Sleep(time.Millisecond)
	}
	// And they still serve.
	for _, c := range conns[:4:4] {
		if _, err := c.Write([]byte("again")); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(conns[2], got); err != nil || string(got) != "again" {
		t.Fatalf("echo after idling: %q, %v", got, err)
	}
}
