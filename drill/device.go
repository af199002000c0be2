package drill

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/tund-project/tund/stack"
)

// device is the link between the runner and the stack: a tun.Device whose
// Read hands the stack the packets the script injects, one at a time, and
// whose Write stamps each packet the stack sends with the virtual time it
// left. inject returns only once the stack has finished with the packet
// (its reader has come back for the next), so the runner always knows
// everything the packet caused has happened.
type device struct {
	clock  *stack.ManualClock
	mtu    int
	in     chan []byte
	idle   chan struct{} // the reader is waiting for a packet
	closed chan struct{}
	once   sync.Once

	mu  sync.Mutex
	out []sent
}

// sent is a packet the stack wrote, and when.
type sent struct {
	at  time.Duration
	pkt []byte
}

func newDevice(clock *stack.ManualClock, mtu int) *device {
	return &device{clock: clock, mtu: mtu, in: make(chan []byte), idle: make(chan struct{}, 1),
		closed: make(chan struct{})}
}

// Read implements tun.Device.
func (d *device) Read(b []byte) (int, error) {
	select {
	case d.idle <- struct{}{}:
	case <-d.closed:
		return 0, net.ErrClosed
	}
	select {
	case p := <-d.in:
		return copy(b, p), nil
	case <-d.closed:
		return 0, net.ErrClosed
	}
}

// Write implements tun.Device.
func (d *device) Write(b []byte) (int, error) {
	d.mu.Lock()
	d.out = append(d.out, sent{d.clock.Now(), append([]byte(nil), b...)})
	d.mu.Unlock()
	return len(b), nil
}

// MTU implements tun.Device.
func (d *device) MTU() int { return d.mtu }

// Close implements tun.Device.
func (d *device) Close() error {
	d.once.Do(func() { close(d.closed) })
	return nil
}

// started waits until the stack's reader first asks for a packet.
func (d *device) started() error {
	select {
	case <-d.idle:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the stack's reader never started")
	}
}

// inject gives the stack one packet and waits until it has been handled.
func (d *device) inject(p []byte) error {
	select {
	case d.in <- p:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the stack's reader did not take a packet in 10 s of real time")
	}
	select {
	case <-d.idle:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the stack did not finish with a packet in 10 s of real time")
	}
}

// take removes and returns the packets sent so far.
func (d *device) take() []sent {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.out
	d.out = nil
	return out
}

// pending reports whether any packet waits to be taken.
func (d *device) pending() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.out) > 0
}
