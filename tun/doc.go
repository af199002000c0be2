// Package tun is tund's link layer: the Device interface that carries one
// IPv4 packet per call, the real Linux TUN device, an in-memory Pipe that
// joins two stacks in tests, Impair, which wraps any Device with seeded
// loss, duplication, reordering, delay, rate limits and corruption for
// experiments, Capture, which records every packet in pcap format, and
// named network namespaces to keep every device and peer
// process of a test inside a sandbox of its own.
//
// The real device is opened with github.com/songgao/water (IFF_TUN |
// IFF_NO_PI, non-blocking under Go's poller, so Close unblocks a Read) and
// configured with ioctls and rtnetlink through golang.org/x/sys/unix,
// never by running ip(8). This package knows nothing of IP or TCP beyond
// "one packet per call".
package tun

import "errors"

// Device is a link that carries one IPv4 packet per Read or Write call.
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
