package tun

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TUNSETOFFLOAD's flags (linux/if_tun.h); x/sys/unix does not name them.
const (
	tunFCsum = 0x01 // TUN_F_CSUM: we take packets with partial checksums
	tunFTSO4 = 0x02 // TUN_F_TSO4: ... and IPv4 TCP super-segments
	tunFTSO6 = 0x04 // TUN_F_TSO6: ... and IPv6 ones
)

// vnetQueue is a TUN file opened with IFF_VNET_HDR: every packet read or
// written is preceded by a virtio-net header. Reads and writes use readv
// and writev straight on the file descriptor, under Go's poller, so the
// header and the packet never have to be joined in one buffer.
type vnetQueue struct {
	f  *os.File
	rc syscall.RawConn

	// The reading side: one reader at a time (rmu), its iovecs and the
	// function given to the poller made once, so a read allocates nothing.
	rmu   sync.Mutex
	rhdr  [vnetHdrLen]byte
	riov  [2]unix.Iovec
	rn    int
	rerr  error
	rfn   func(fd uintptr) bool
	drops atomic.Uint64 // packets with an offload we did not ask for

	// Read's state: a super-segment read whole, handed out in pieces.
	cut cutter

	// refusal is set once the kernel refused a super-segment: offloads
	// are off from then on.
	refusal atomic.Pointer[error]
}

// openVnet opens (creating, or attaching to) the TUN device name with
// IFF_VNET_HDR and turns on checksum and TCP segmentation offload; multi
// opens it as one queue of a multi-queue device (IFF_MULTI_QUEUE). It
// returns the device's name.
func openVnet(name string, multi bool) (*vnetQueue, string, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, "", err
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	what := "IFF_VNET_HDR"
	if multi {
		flags |= unix.IFF_MULTI_QUEUE
		what += "|IFF_MULTI_QUEUE"
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("TUNSETIFF with %s: %w", what, err)
	}
	// The header is struct virtio_net_hdr, 10 bytes, the kernel's default;
	// say so in case the device was left with another size.
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("TUNSETVNETHDRSZ: %w", err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("TUNSETOFFLOAD: %w", err)
	}
	// Non-blocking under Go's poller, so Close unblocks a Read.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, "", err
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, "", err
	}
	q := &vnetQueue{f: f, rc: rc}
	q.riov[0].Base = &q.rhdr[0]
	q.riov[0].SetLen(vnetHdrLen)
	q.rfn = q.readv
	return q, ifr.Name(), nil
}

// readv is the poller's callback for one read: false asks it to wait for
// the descriptor to become readable and call again.
func (q *vnetQueue) readv(fd uintptr) bool {
	n, _, e := unix.Syscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&q.riov[0])), 2)
	if e == unix.EAGAIN {
		return false
	}
	q.rn, q.rerr = int(n), nil
	if e != 0 {
		q.rn, q.rerr = 0, e
	}
	return true
}

// readOffload reads one packet, possibly a super-segment, into p.
func (q *vnetQueue) readOffload(p []byte) (int, Offload, error) {
	if len(p) == 0 {
		return 0, Offload{}, nil
	}
	q.rmu.Lock()
	defer q.rmu.Unlock()
	for {
		q.riov[1].Base = &p[0]
		q.riov[1].SetLen(len(p))
		if err := q.rc.Read(q.rfn); err != nil {
			return 0, Offload{}, err
		}
		if q.rerr != nil {
			return 0, Offload{}, &os.PathError{Op: "read", Path: q.f.Name(), Err: q.rerr}
		}
		if q.rn < vnetHdrLen {
			q.drops.Add(1)
			continue
		}
		o, ok := decodeVnet(q.rhdr[:])
		if !ok {
			q.drops.Add(1)
			continue
		}
		return q.rn - vnetHdrLen, o, nil
	}
}

// read reads one ordinary packet into p: a super-segment, or a packet with
// a partial checksum, is read whole and handed out in pieces with
// complete checksums, one per call.
func (q *vnetQueue) read(p []byte) (int, error) {
	for {
		if q.cut.pending() {
			return q.cut.next(p), nil
		}
		n, o, err := q.readOffload(q.cut.buffer())
		if err != nil {
			return 0, err
		}
		if o.GSOSize == 0 {
			n = copy(p, q.cut.buf[:n])
			if o.CsumPartial && !completeChecksum(p[:n], o) {
				q.drops.Add(1)
				continue
			}
			return n, nil
		}
		if !q.cut.start(n, o, len(p)) {
			// Not something the kernel sends with these offloads.
			q.drops.Add(1)
		}
	}
}

// cutter hands out a super-segment (or a packet with a partial checksum)
// as ordinary packets, one per call: what Read does on a device that
// received one.
type cutter struct {
	buf     []byte // the packet being cut, read or copied here
	pkt     []byte // it, in buf; nil when nothing is pending
	o       Offload
	off, i  int // payload bytes and pieces already handed out
	hl, hdr int // IP header length, IP and TCP header length
}

func (c *cutter) pending() bool { return c.pkt != nil }

// buffer is where the next packet to cut goes.
func (c *cutter) buffer() []byte {
	if c.buf == nil {
		c.buf = make([]byte, MaxOffloadSize)
	}
	return c.buf
}

// start begins cutting the n-byte super-segment in buf, sent with o, into
// pieces for reads of max bytes. It reports false for a packet it cannot
// cut.
func (c *cutter) start(n int, o Offload, max int) bool {
	hl, hdr, total, err := tcpHeaders(c.buf[:n])
	if err != nil || max <= hdr || o.GSOSize == 0 {
		return false
	}
	c.pkt, c.o, c.off, c.i, c.hl, c.hdr = c.buf[:total], o, 0, 0, hl, hdr
	return true
}

// next cuts the next piece into p.
func (c *cutter) next(p []byte) int {
	if len(p) <= c.hdr {
		c.pkt = nil // a reader that shrank its buffer loses the rest
		return 0
	}
	size := len(c.pkt) - c.hdr
	step := size
	if c.o.GSOSize > 0 {
		step = int(c.o.GSOSize)
	}
	n := min(step, size-c.off, len(p)-c.hdr)
	last := c.off+n == size
	m := cutPiece(p, c.pkt, c.hl, c.hdr, c.off, n, c.i, last)
	c.off += n
	c.i++
	if last {
		c.pkt = nil
	}
	return m
}

// vnetWrite is the state of one writev: pooled, because writers run
// concurrently (every connection sends under its own lock) and the
// poller's callback must not allocate.
type vnetWrite struct {
	hdr [vnetHdrLen]byte
	iov [3]unix.Iovec
	cnt int
	err error
	fn  func(fd uintptr) bool
}

var vnetWrites = sync.Pool{New: func() any {
	w := new(vnetWrite)
	w.fn = w.writev
	return w
}}

func (w *vnetWrite) writev(fd uintptr) bool {
	_, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(w.cnt))
	if e == unix.EAGAIN {
		return false
	}
	w.err = nil
	if e != 0 {
		w.err = e
	}
	return true
}

// write sends head+payload behind a virtio-net header for o.
func (q *vnetQueue) write(head, payload []byte, o Offload) error {
	w := vnetWrites.Get().(*vnetWrite)
	defer vnetWrites.Put(w)
	encodeVnet(w.hdr[:], head, o)
	w.iov[0].Base = &w.hdr[0]
	w.iov[0].SetLen(vnetHdrLen)
	w.cnt = 1
	for _, b := range [][]byte{head, payload} {
		if len(b) > 0 {
			w.iov[w.cnt].Base = &b[0]
			w.iov[w.cnt].SetLen(len(b))
			w.cnt++
		}
	}
	err := q.rc.Write(w.fn)
	clear(w.iov[1:]) // drop the references to the caller's buffers
	if err != nil {
		return err
	}
	if w.err != nil {
		return &os.PathError{Op: "write", Path: q.f.Name(), Err: w.err}
	}
	return nil
}

// writeOffload sends a packet with offloads; if the kernel refuses a
// super-segment (EINVAL), offloads are off from then on and this one goes
// out cut into pieces.
func (q *vnetQueue) writeOffload(head, payload []byte, o Offload, mtu int) error {
	if o.GSOSize > 0 && q.refused() != nil {
		return writeCut(q, head, payload, o, mtu)
	}
	err := q.write(head, payload, o)
	if err != nil && o.GSOSize > 0 && errors.Is(err, unix.EINVAL) {
		refusal := fmt.Errorf("the kernel refused a TCP super-segment: %w", err)
		q.refusal.CompareAndSwap(nil, &refusal)
		return writeCut(q, head, payload, o, mtu)
	}
	return err
}

// Write lets writeCut send the pieces: ordinary packets, complete.
func (q *vnetQueue) Write(p []byte) (int, error) {
	if err := q.write(p, nil, Offload{}); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (q *vnetQueue) refused() error {
	if e := q.refusal.Load(); e != nil {
		return *e
	}
	return nil
}

// cutBufs holds the buffers writeCut joins and cuts packets in.
var cutBufs = sync.Pool{New: func() any { b := make([]byte, 2*MaxOffloadSize); return &b }}

// writeCut sends head+payload with offload o through w as ordinary
// packets: SoftwareGSO, for a device that cannot take o as it is.
func writeCut(w interface{ Write([]byte) (int, error) }, head, payload []byte, o Offload, mtu int) error {
	if o.GSOSize == 0 && !o.CsumPartial && len(payload) == 0 {
		_, err := w.Write(head)
		return err
	}
	bp := cutBufs.Get().(*[]byte)
	defer cutBufs.Put(bp)
	n := len(head) + len(payload)
	if n > MaxOffloadSize {
		return ErrTooBig
	}
	pkt := (*bp)[:n]
	copy(pkt, head)
	copy(pkt[len(head):], payload)
	piece := (*bp)[MaxOffloadSize:]
	return SoftwareGSO(pkt, o, piece, func(b []byte) error {
		if len(b) > mtu {
			return ErrTooBig
		}
		_, err := w.Write(b)
		return err
	})
}
