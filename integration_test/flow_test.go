package integration

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tun"
)

// slowReader reads r in chunk-sized reads with a pause between them,
// hashing what it reads, until EOF or the deadline.
func slowRead(r io.Reader, chunk int, pause time.Duration, limit time.Duration) (int, [32]byte, error) {
	h := sha256.New()
	buf := make([]byte, chunk)
	total := 0
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		n, err := r.Read(buf)
		h.Write(buf[:n])
		total += n
		if err == io.EOF {
			var sum [32]byte
			copy(sum[:], h.Sum(nil))
			return total, sum, nil
		}
		if err != nil {
			return total, [32]byte{}, err
		}
		time.Sleep(pause)
	}
	return total, [32]byte{}, io.ErrNoProgress
}

// TestStackSendsToTinySlowKernelReceiver: the kernel's socket has a tiny
// receive buffer (SO_RCVBUF 4 KiB) and reads slowly, so its window keeps
// closing: the stack must wait at zero windows, probe, avoid silly small
// segments, and resume every time the kernel reads. 1 MiB arrives intact.
func TestStackSendsToTinySlowKernelReceiver(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	st := startLibraryStack(t, ns)
	var kl net.Listener
	err := tun.InNetNS(ns, func() error {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
			if err != nil {
				return err
			}
			return serr
		}}
		var err error
		kl, err = lc.Listen(t.Context(), "tcp", hostAddr+":9100")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer kl.Close()
	type result struct {
		n   int
		sum [32]byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := kl.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		n, sum, err := slowRead(c, 1024, 200*time.Microsecond, 60*time.Second)
		res <- result{n, sum, err}
	}()
	c, err := st.Dial("tcp", hostAddr+":9100")
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(1<<20, 21)
	start := time.Now()
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.(*stack.Conn).CloseWrite()
	r := <-res
	if r.err != nil {
		t.Fatalf("kernel reader: %v after %d bytes", r.err, r.n)
	}
	if want := sha256.Sum256(data); r.n != len(data) || r.sum != want {
		t.Fatalf("kernel read %d bytes (sha256 %x), want %d (%x)", r.n, r.sum, len(data), want)
	}
	t.Logf("1 MiB into a 4 KiB kernel buffer read 1 KiB at a time: %v", time.Since(start).Round(time.Millisecond))
	c.Close()
}

// TestKernelSendsToSlowStackReader: the stack's connection has a small
// fixed receive buffer (SetReadBuffer 4 KiB) and its application reads
// slowly; the kernel sender must stop at our window and resume when we
// read. 1 MiB arrives intact.
func TestKernelSendsToSlowStackReader(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	st := startLibraryStack(t, ns)
	l, err := st.Listen("tcp", ":9101")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type result struct {
		n   int
		sum [32]byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		if err := c.(*stack.Conn).SetReadBuffer(4096); err != nil {
			res <- result{err: err}
			return
		}
		n, sum, err := slowRead(c, 700, 200*time.Microsecond, 60*time.Second)
		res <- result{n, sum, err}
	}()
	kc, err := nsDial(t, ns, stackAddr+":9101", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	data := randomBytes(1<<20, 22)
	start := time.Now()
	go func() {
		kc.Write(data)
		kc.CloseWrite()
	}()
	r := <-res
	if r.err != nil {
		t.Fatalf("stack reader: %v after %d bytes", r.err, r.n)
	}
	if want := sha256.Sum256(data); r.n != len(data) || !bytes.Equal(r.sum[:], want[:]) {
		t.Fatalf("stack read %d bytes, want %d identical", r.n, len(data))
	}
	t.Logf("1 MiB from the kernel into a 4 KiB stack buffer read 700 bytes at a time: %v", time.Since(start).Round(time.Millisecond))
}
