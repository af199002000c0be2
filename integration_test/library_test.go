package integration

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tun"
)

// TestKernelClientToLibraryEcho: a kernel TCP socket in the namespace
// talks to an echo service written against the stack's net.Listener.
func TestKernelClientToLibraryEcho(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	st := startLibraryStack(t, ns)
	l, err := st.Listen("tcp", ":7")
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

	for _, f := range families {
		t.Run(f.name, func(t *testing.T) { kernelEcho(t, ns, f) })
	}
}

// kernelEcho has a kernel socket in ns send 8 MiB to the echo service at
// the stack's address of family f and checks every byte comes back.
func kernelEcho(t *testing.T, ns string, f ipFamily) {
	var kc net.Conn
	err := tun.InNetNS(ns, func() error {
		var err error
		kc, err = (&net.Dialer{Timeout: 5 * time.Second}).Dial("tcp", f.stackAt(7))
		return err
	})
	if err != nil {
		t.Fatalf("kernel dial: %v", err)
	}
	defer kc.Close()
	data := randomBytes(8<<20, 3)
	errc := make(chan error, 1)
	go func() {
		_, err := kc.Write(data)
		if err == nil {
			err = kc.(*net.TCPConn).CloseWrite()
		}
		errc <- err
	}()
	kc.SetReadDeadline(time.Now().Add(time.Minute))
	got, err := io.ReadAll(kc)
	if err != nil {
		t.Fatalf("kernel read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("kernel write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echoed %d bytes, want %d identical", len(got), len(data))
	}
}

// TestLibraryDialsNcListener: the stack dials out to `nc -l` (-4, then
// -6) in the namespace and sends it 10 MiB.
func TestLibraryDialsNcListener(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	st := startLibraryStack(t, ns)
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) { dialNc(t, ns, st, f) })
	}
}

func dialNc(t *testing.T, ns string, st *stack.Stack, f ipFamily) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := newHashingWriter()
	nc := inNS(ctx, ns, "nc", f.flag, "-l", f.host, "5001")
	nc.Stdout = got
	if err := nc.Start(); err != nil {
		t.Fatal(err)
	}
	ncDone := make(chan error, 1)
	go func() { ncDone <- nc.Wait() }()

	// nc needs a moment to listen; a refused dial means "not yet".
	var c net.Conn
	for {
		var err error
		c, err = st.DialContext(ctx, "tcp", f.hostAt(5001))
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ECONNREFUSED) || ctx.Err() != nil {
			t.Fatalf("dial nc: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	data := randomBytes(10<<20, 5)
	if _, err := c.Write(data); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ncDone:
		if err != nil {
			t.Fatalf("nc -l: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("nc -l did not finish")
	}
	want := newHashingWriter()
	want.Write(data)
	if got.n != int64(len(data)) || got.sum() != want.sum() {
		t.Fatalf("nc received %d bytes sha256 %s, want %d %s", got.n, got.sum(), len(data), want.sum())
	}
}

// TestLibraryDialsKernelListenerBothWays: a kernel listener and the
// stack exchange different data in both directions with half-closes.
func TestLibraryDialsKernelListenerBothWays(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	st := startLibraryStack(t, ns)
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) { bothWays(t, ns, st, f) })
	}
}

func bothWays(t *testing.T, ns string, st *stack.Stack, f ipFamily) {
	var kl net.Listener
	if err := tun.InNetNS(ns, func() error {
		var err error
		kl, err = net.Listen("tcp", f.hostAt(5002))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer kl.Close()
	up, down := randomBytes(6<<20+17, 11), randomBytes(9<<20+5, 12)
	type result struct {
		got []byte
		err error
	}
	kres := make(chan result, 1)
	go func() {
		c, err := kl.Accept()
		if err != nil {
			kres <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		werr := make(chan error, 1)
		go func() {
			_, err := c.Write(down)
			if err == nil {
				err = c.(*net.TCPConn).CloseWrite()
			}
			werr <- err
		}()
		got, err := io.ReadAll(c)
		if err == nil {
			err = <-werr
		}
		kres <- result{got, err}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := st.DialContext(ctx, "tcp", f.hostAt(5002))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(up)
		if err == nil {
			err = c.(*stack.Conn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("stack read: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("stack write: %v", err)
	}
	if !bytes.Equal(got, down) {
		t.Fatalf("stack received %d bytes, want %d identical", len(got), len(down))
	}
	k := <-kres
	if k.err != nil {
		t.Fatalf("kernel side: %v", k.err)
	}
	if !bytes.Equal(k.got, up) {
		t.Fatalf("kernel received %d bytes, want %d identical", len(k.got), len(up))
	}
}

// TestDialRefusedByKernel: a connection to a port nobody listens on in
// the namespace fails with ECONNREFUSED from the kernel's reset.
func TestDialRefusedByKernel(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	st := startLibraryStack(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, f := range families {
		_, err := st.DialContext(ctx, "tcp", f.hostAt(5999))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial %s: %v, want ECONNREFUSED", f.hostAt(5999), err)
		}
		var opErr *net.OpError
		if !errors.As(err, &opErr) {
			t.Fatalf("dial error %T is not a *net.OpError", err)
		}
	}
	_ = os.Getpid
}
