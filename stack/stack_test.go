package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// testPipe is the in-memory link the tests join stacks with: with
// offloads (as tun.PipeOffload, so super-segments and partial checksums
// are exercised), unless TUND_TEST_OFFLOAD=0 (CI runs the suite both
// ways), and with two queues, so each stack runs two readers and spreads
// its flows over them (TUND_TEST_QUEUES=N for another count).
func testPipe(mtu int) (tun.Device, tun.Device) {
	queues := 2
	if n, err := strconv.Atoi(os.Getenv("TUND_TEST_QUEUES")); err == nil {
		queues = n
	}
	return testPipeQueues(mtu, queues)
}

// testPipeQueues is testPipe with n queues. A test that wraps an end (in
// tun.Impair, say) or reads and writes it by hand takes one: the wrapper
// hides the other queues, which nobody would read.
func testPipeQueues(mtu, n int) (tun.Device, tun.Device) {
	return tun.PipeMultiqueue(mtu, n, os.Getenv("TUND_TEST_OFFLOAD") != "0")
}

// pipePair starts two stacks joined by an in-memory link.
func pipePair(t testing.TB, mtu int) (a, b *Stack) {
	t.Helper()
	da, db := testPipe(mtu)
	var err error
	a, err = New(da, Config{Addr: netip.MustParseAddr("10.9.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	b, err = New(db, Config{Addr: netip.MustParseAddr("10.9.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestPipeEchoBothWays(t *testing.T) {
	a, b := pipePair(t, 1500)
	runEcho(t, a, b)
}

func runEcho(t *testing.T, a, b *Stack) {
	l, err := b.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := a.DialContext(ctx, "tcp", "10.9.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := randomBytes(8<<20, 1)
	go func() {
		c.Write(data)
		c.(*Conn).CloseWrite()
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("echo returned %d bytes (sha256 %x), want %d (%x)", n, h.Sum(nil), len(data), want)
	}
	if la := c.LocalAddr().(*net.TCPAddr); !la.IP.Equal(net.ParseIP("10.9.0.1")) {
		t.Fatalf("LocalAddr %v", la)
	}
}

func TestDialRefused(t *testing.T) {
	a, _ := pipePair(t, 1500)
	_, err := a.Dial("tcp", "10.9.0.2:4242")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial to a closed port: %v, want ECONNREFUSED", err)
	}
}

func TestPeerCloseGivesEOFAndStates(t *testing.T) {
	a, b := pipePair(t, 1500)
	l, err := b.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := a.Dial("tcp", "10.9.0.2:80")
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	buf := make([]byte, 16)
	n, err := io.ReadFull(s, buf[:5])
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	if _, err := s.Read(buf); err != io.EOF {
		t.Fatalf("read after FIN: %v, want io.EOF", err)
	}
	waitState(t, s.(*Conn), tcp.CloseWait)
	waitState(t, c.(*Conn), tcp.FinWait2)
	s.Close()
	waitState(t, c.(*Conn), tcp.TimeWait)
}

func waitState(t *testing.T, c *Conn, want tcp.State) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("state %v, want %v", c.State(), want)
		}
		time.Sleep(time.Millisecond)
	}
}
