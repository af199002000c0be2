package stack

import (
	"io"
	"sync"
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
