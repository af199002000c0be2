package tun

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// The pcap file format written by Capture: the classic libpcap format
// (https://www.tcpdump.org/manpages/pcap-savefile.5.html), little-endian,
// with nanosecond timestamps, which every current reader of pcap files
// understands: tcpdump -r (libpcap 1.5 or later), tshark, Wireshark,
// Go's gopacket.
const (
	// PcapMagicNanos is the magic number that opens the file. It is the
	// nanosecond variant of the classic 0xa1b2c3d4: the fraction of a
	// record's timestamp counts nanoseconds, not microseconds, which
	// matters when a round trip through the TUN device takes tens of
	// microseconds.
	PcapMagicNanos = 0xa1b23c4d
	// PcapLinkTypeRaw is LINKTYPE_RAW: each record is a bare IP packet,
	// IPv4 or IPv6 (readers tell them apart by the version nibble), with
	// no link-layer header, exactly what a Device carries. One capture
	// holds both families.
	PcapLinkTypeRaw = 101
	// PcapSnapLen is the largest number of bytes recorded per packet; it
	// is MaxOffloadSize, the largest packet a Device carries, so no
	// packet is cut short.
	PcapSnapLen = 65535
)

// Buffering of a capture: records go through a buffer of captureBufSize
// bytes, written out when it fills, at most captureFlushDelay after a
// record went in, on Flush and on Close.
const (
	captureBufSize    = 64 << 10
	captureFlushDelay = time.Second
)

// CaptureStats counts what a Captured device has recorded.
type CaptureStats struct {
	// Packets and Bytes are the packets recorded and their bytes, both
	// directions together, not counting the pcap headers. After a write
	// error, the last of them, still buffered, may be missing from the file.
	Packets, Bytes uint64
	// Missed is how many packets went through the device but were not
	// recorded because writing the capture had failed (see Captured.Err).
	Missed uint64
}

// Captured is a Device that records every packet it carries to a pcap
// file; make one with Capture.
type Captured struct {
	dev Device
	off Offloader // dev, if it is one
	mtu int

	mu        sync.Mutex
	bw        *bufio.Writer
	hdr       [16]byte // the record header being written; preallocated
	armed     bool     // the flush timer is running
	timer     *time.Timer
	cut       []byte // where a super-segment is joined and cut for the record
	closed    bool
	err       error // the first error writing the capture; capturing stopped
	st        CaptureStats
	closeOnce sync.Once
	cerr      error
}

// Capture wraps dev so that every packet returned by Read and every packet
// passed to Write is appended to w as a pcap record, in the order the two
// happen; the file starts with the pcap global header, which Capture
// writes and flushes before it returns (so a w that cannot be written is
// an error at once). The format is described at PcapMagicNanos: classic
// pcap, nanosecond timestamps from time.Now, link type LINKTYPE_RAW (raw
// IPv4 and IPv6), snap length 65535.
//
// A packet given to Write is recorded before it is passed on to dev, so a
// reply read from dev can never precede it in the file; a packet longer
// than the MTU, which dev refuses, is not recorded.
//
// Records are buffered: they reach w when 64 KiB are pending, within a
// second of being recorded, on Flush, and on Close. The file is complete
// once Close has returned. A failure to write w never affects the link:
// the packets keep flowing, capturing stops, Err reports the error and
// Stats counts the packets missed. Capture does not close w.
func Capture(dev Device, w io.Writer) (*Captured, error) {
	if dev == nil {
		return nil, errors.New("tun: capture: nil device")
	}
	if w == nil {
		return nil, errors.New("tun: capture: nil writer")
	}
	c := &Captured{dev: dev, mtu: dev.MTU(), bw: bufio.NewWriterSize(w, captureBufSize)}
	c.off, _ = dev.(Offloader)
	var gh [24]byte
	le := binary.LittleEndian
	le.PutUint32(gh[0:], PcapMagicNanos)
	le.PutUint16(gh[4:], 2) // version 2.4
	le.PutUint16(gh[6:], 4)
	// gh[8:16]: thiszone and sigfigs, always 0.
	le.PutUint32(gh[16:], PcapSnapLen)
	le.PutUint32(gh[20:], PcapLinkTypeRaw)
	c.bw.Write(gh[:])
	if err := c.bw.Flush(); err != nil {
		return nil, fmt.Errorf("tun: capture: write pcap header: %w", err)
	}
	c.timer = time.AfterFunc(time.Hour, c.flushLater)
	c.timer.Stop()
	return c, nil
}

// record appends one packet to the capture. It never fails: an error
// writing w is remembered and stops the capture.
func (c *Captured) record(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recordLocked(p)
}

// recordOffload records a packet that went by with offloads as the wire
// would carry it: a super-segment as its pieces, every checksum complete
// (SoftwareGSO), so tshark and tcptrace see what the peer's TCP saw.
func (c *Captured) recordOffload(head, payload []byte, o Offload) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(head) + len(payload)
	if c.cut == nil {
		c.cut = make([]byte, 2*MaxOffloadSize)
	}
	if n > MaxOffloadSize {
		return
	}
	pkt := c.cut[:n]
	copy(pkt[copy(pkt, head):], payload)
	if SoftwareGSO(pkt, o, c.cut[MaxOffloadSize:], func(b []byte) error {
		c.recordLocked(b)
		return nil
	}) != nil {
		c.recordLocked(pkt) // not a TCP packet we can cut: as it is
	}
}

// recordLocked is record with c.mu held.
func (c *Captured) recordLocked(p []byte) {
	if c.closed {
		return
	}
	if c.err != nil {
		c.st.Missed++
		return
	}
	incl := len(p)
	if incl > PcapSnapLen {
		incl = PcapSnapLen
	}
	now := time.Now() // under c.mu, so the file is in time order
	le := binary.LittleEndian
	le.PutUint32(c.hdr[0:], uint32(now.Unix()))
	le.PutUint32(c.hdr[4:], uint32(now.Nanosecond()))
	le.PutUint32(c.hdr[8:], uint32(incl))
	le.PutUint32(c.hdr[12:], uint32(len(p)))
	c.bw.Write(c.hdr[:])
	if _, err := c.bw.Write(p[:incl]); err != nil {
		// bufio.Writer keeps its first error and fails every later
		// write, so checking the last write of a record is enough.
		c.fail(err)
		c.st.Missed++
		return
	}
	c.st.Packets++
	c.st.Bytes += uint64(len(p))
	if !c.armed {
		c.armed = true
		c.timer.Reset(captureFlushDelay)
	}
}

// fail stops the capture after a write error; c.mu is held.
func (c *Captured) fail(err error) {
	if c.err == nil {
		c.err = fmt.Errorf("tun: capture: %w", err)
	}
}

// flushLater is the flush timer's function.
func (c *Captured) flushLater() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = false
	if !c.closed {
		c.flushLocked()
	}
}

// flushLocked writes out the buffered records; c.mu is held.
func (c *Captured) flushLocked() error {
	if c.err != nil {
		return c.err
	}
	if err := c.bw.Flush(); err != nil {
		c.fail(err)
		return c.err
	}
	return nil
}

// Read implements Device: it reads a packet from the wrapped device and
// records it.
func (c *Captured) Read(p []byte) (int, error) {
	n, err := c.dev.Read(p)
	if n > 0 && err == nil {
		c.record(p[:n])
	}
	return n, err
}

// Write implements Device: it records p, then writes it to the wrapped
// device.
func (c *Captured) Write(p []byte) (int, error) {
	if len(p) > c.mtu {
		return 0, ErrTooBig
	}
	c.record(p)
	return c.dev.Write(p)
}

// ReadOffload implements Offloader: the wrapped device's, if it is an
// Offloader, recording what it read as the wire carried it (a
// super-segment as its pieces).
func (c *Captured) ReadOffload(p []byte) (int, Offload, error) {
	if c.off == nil {
		n, err := c.Read(p)
		return n, Offload{}, err
	}
	n, o, err := c.off.ReadOffload(p)
	if n > 0 && err == nil {
		if o == (Offload{}) {
			c.record(p[:n])
		} else {
			c.recordOffload(p[:n], nil, o)
		}
	}
	return n, o, err
}

// WriteOffload implements Offloader: it records the packet as its pieces,
// then writes it to the wrapped device (which cuts it itself if it is not
// an Offloader).
func (c *Captured) WriteOffload(head, payload []byte, o Offload) error {
	if c.off == nil {
		return writeCut(c, head, payload, o, c.mtu)
	}
	if o == (Offload{}) && len(payload) == 0 {
		c.record(head)
	} else {
		c.recordOffload(head, payload, o)
	}
	return c.off.WriteOffload(head, payload, o)
}

// MaxOffload implements Offloader: the wrapped device's.
func (c *Captured) MaxOffload() int {
	if c.off == nil {
		return 0
	}
	return c.off.MaxOffload()
}

// MTU implements Device: it is the wrapped device's.
func (c *Captured) MTU() int { return c.mtu }

// Flush writes the records buffered so far to the capture's writer, so a
// reader of a file sees every packet up to now. It returns Err.
func (c *Captured) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.err
	}
	return c.flushLocked()
}

// Close implements Device: it closes the wrapped device, then flushes and
// ends the capture; packets read or written after that are not recorded.
// It returns the device's error; the capture's is reported by Err. Close
// does not close the writer given to Capture: once Close returns, the
// capture in it is complete.
func (c *Captured) Close() error {
	c.closeOnce.Do(func() {
		c.cerr = c.dev.Close()
		c.mu.Lock()
		c.timer.Stop()
		c.armed = false
		c.flushLocked()
		c.closed = true
		c.mu.Unlock()
	})
	return c.cerr
}

// Err returns the first error writing the capture, after which nothing
// more was recorded, or nil.
func (c *Captured) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Stats returns the counts so far.
func (c *Captured) Stats() CaptureStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}
