// Package tun is tund's link layer: the Device interface that carries one
// IP packet (IPv4 or IPv6) per call, the real Linux TUN device, an
// in-memory Pipe that joins two stacks in tests, Impair, which wraps any
// Device with seeded loss, duplication, reordering, delay, rate limits and
// corruption for experiments, Capture, which records every packet in pcap
// format, and named network namespaces to keep every device and peer
// process of a test inside a sandbox of its own.
//
// The real device is opened with github.com/songgao/water (IFF_TUN |
// IFF_NO_PI, non-blocking under Go's poller, so Close unblocks a Read) and
// configured with ioctls and rtnetlink through golang.org/x/sys/unix (and
// /proc/sys where IPv6 must be turned on), never by running ip(8). This
// package knows nothing of IP or TCP beyond "one packet per call", but
// for what offloads need: the IPv4 and IPv6 headers and the TCP header
// of a super-segment to cut, and where a checksum goes.
package tun

import "errors"

// Device is a link that carries one IP packet (IPv4 or IPv6) per Read or
// Write call.
type Device interface {
	// Read reads one packet into p and returns its length.
	Read(p []byte) (int, error)
	// Write sends the packet p.
	Write(p []byte) (int, error)
	// MTU is the largest packet the device carries.
	MTU() int
	// Close releases the device and unblocks a pending Read.
	Close() error
}

// ErrTooBig is returned by Write for a packet larger than the MTU.
var ErrTooBig = errors.New("tun: packet larger than the MTU")
