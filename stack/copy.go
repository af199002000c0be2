package stack

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// copyBufSize is the size of the buffers WriteTo borrows: io.Copy's.
const copyBufSize = 32 << 10

// copyBufs are WriteTo's buffers, shared by every connection of the
// process.
var copyBufs = sync.Pool{New: func() any {
	b := make([]byte, copyBufSize)
	return &b
}}

// WriteTo implements io.WriterTo, so that io.Copy from a Conn (an echo
// or discard server's whole body) brings no buffer of its own: it waits
// for bytes holding none, then moves what is ready through a buffer
// borrowed from a pool that every connection shares, and gives it back
// before it waits again. A connection idle in io.Copy thus holds no copy
// buffer, where io.Copy's own would be 32 KiB per connection. It returns
// at the peer's FIN (a nil error, as io.Copy wants), or with the error of
// the read or of w.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		bp := copyBufs.Get().(*[]byte)
		n, err := c.tryRead(*bp)
		if n > 0 {
			k, werr := w.Write((*bp)[:n])
			total += int64(k)
			if werr == nil && k < n {
				werr = io.ErrShortWrite
			}
			err = werr
		}
		copyBufs.Put(bp)
		switch {
		case err == errWouldBlock:
			if err := c.waitRead(); err != nil {
				return total, err
			}
		case err == io.EOF:
			return total, nil
		case err != nil:
			return total, err
		}
	}
}

// NotifyReadable arranges for f to be called once, as soon as Read would
// not block: at once, on the caller's goroutine, if it would not now;
// otherwise on the stack's goroutine when bytes, the peer's FIN or an
// error arrive (a stack that stops aborts its connections, which counts).
// f must not block or call into the connection, which is locked while f
// runs: it starts or wakes whoever reads. A server can so keep an idle
// connection with no goroutine blocked in Read, and so no goroutine
// stack (tund's echo and discard services do). A later call replaces an
// f not yet called; after Close, f is never called.
func (c *Conn) NotifyReadable(f func()) {
	c.lock()
	if c.closed || c.tcb == nil {
		c.unlock()
		return
	}
	if !c.tcb.Readable() {
		c.onReadable = f
		c.unlock()
		return
	}
	c.onReadable = nil
	c.unlock()
	f()
}

// ReadFrom implements io.ReaderFrom, so that io.Copy to a Conn from a
// kernel socket (a forwarded connection's target, say) moves each byte
// once: the socket's read lands straight in the send ring, through no
// buffer of io.Copy's, and a connection waiting for the socket holds no
// buffer at all. It waits for room in the send buffer first (the
// backpressure a slow peer puts on the source), then for the socket to
// be readable, then reads with the connection locked. Readers other
// than a kernel socket are copied the ordinary way. It returns nil at
// r's EOF, as io.Copy wants.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	sc, ok := r.(syscall.Conn)
	if !ok {
		return io.Copy(writerOnly{c}, r)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return io.Copy(writerOnly{c}, r)
	}
	var total int64
	for {
		if err := c.waitWritable(); err != nil {
			return total, err
		}
		var n int
		var rerr, werr error
		// RawConn.Read calls the function until it reports done, waiting
		// for the socket to be readable between calls.
		err := rc.Read(func(fd uintptr) bool {
			rerr = nil
			c.lock()
			defer c.unlock()
			if c.closed {
				werr = c.opErr("write", net.ErrClosed)
				return true
			}
			n, werr = c.tcb.WriteFunc(func(room []byte) int {
				k, err := unix.Read(int(fd), room)
				for err == unix.EINTR {
					k, err = unix.Read(int(fd), room)
				}
				if err != nil {
					rerr = err
					return 0
				}
				if k == 0 {
					rerr = io.EOF
				}
				return k
			}, c.s.now())
			c.after()
			werr = c.opErr("write", werr)
			return rerr != unix.EAGAIN
		})
		total += int64(n)
		if rerr == unix.EAGAIN {
			rerr = nil // rc.Read stopped waiting: err says why
		}
		switch {
		case werr != nil:
			return total, werr
		case rerr == io.EOF:
			return total, nil
		case rerr != nil:
			return total, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", rerr)}
		case err != nil: // the socket closed or its deadline passed
			return total, err
		}
	}
}

// waitWritable waits until the send buffer has room (or the connection
// cannot send at all, which the write then reports), or fails when the
// write deadline passes.
func (c *Conn) waitWritable() error {
	for {
		c.lock()
		if c.closed {
			c.unlock()
			notify(c.wr)
			return c.opErr("write", net.ErrClosed)
		}
		if c.wdl().expired() {
			c.unlock()
			return c.opErr("write", os.ErrDeadlineExceeded)
		}
		ok := c.tcb.Writable()
		c.unlock()
		if ok {
			return nil
		}
		select {
		case <-c.wr:
		case <-c.wdl().wait():
			return c.opErr("write", os.ErrDeadlineExceeded)
		}
	}
}

// writerOnly hides a Conn's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }
