package tun

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"
)

// Config describes the TUN device to open.
type Config struct {
	// Name is the interface name, e.g. "tund0"; empty lets the kernel
	// choose (tunN).
	Name string
	// MTU in bytes; 0 means 1500 for a created device and "leave it" for
	// an attached one.
	MTU int
	// Host is the kernel-side IPv4 address and prefix given to a device
	// Open creates (e.g. 198.18.0.1/24). The zero value assigns none.
	Host netip.Prefix
	// Host6 is the kernel-side IPv6 address and prefix given to a device
	// Open creates (e.g. fd00:7:5eed::1/64), usable once Open returns:
	// IPv6 is enabled on the device first if it was disabled, the
	// address is assigned without duplicate address detection
	// (IFA_F_NODAD), so it is never tentative, and Open waits for the
	// kernel to route the address to itself. The zero value assigns
	// none.
	Host6 netip.Prefix
	// Offload asks for segmentation and checksum offload: the device is
	// opened with IFF_VNET_HDR and TUNSETOFFLOAD (TUN_F_CSUM, TUN_F_TSO4,
	// TUN_F_TSO6), and the TUN is an Offloader that carries TCP
	// super-segments of up to 64 KiB both ways. Where the kernel or the
	// device refuses, Open falls back to a plain device and OffloadErr
	// says why.
	Offload bool
	// Queues is how many queues to open (IFF_MULTI_QUEUE): the kernel
	// spreads the flows it sends over them, so that each can have a
	// reader of its own (Multiqueue). 0 or 1 opens a single-queue device,
	// and so does Open where the kernel refuses more (a device created
	// without multi_queue, say), with QueuesErr saying why.
	Queues int
}

// host6Wait is how long Open waits for the kernel to route Host6 to
// itself; it takes well under a millisecond.
const host6Wait = 2 * time.Second

// MaxQueues is the most queues Open opens (the kernel's limit is 256).
const MaxQueues = 64

// Multiqueue is a device with several queues (IFF_MULTI_QUEUE). The
// kernel puts each flow's packets on one queue: the queue the flow's last
// packet from us was written to (the TUN driver's automatic flow
// steering), else one by the flow's hash. So a user reads every queue
// with a reader of its own and writes each flow to one queue of its
// choosing, always the same; the device then delivers that flow to the
// reader of that queue.
type Multiqueue interface {
	Offloader
	// Queues is how many queues the device has.
	Queues() int
	// Queue is queue i, 0 ≤ i < Queues(): its reads return the packets
	// the kernel put on it, its writes go out through it. Queue 0 is the
	// device itself. Closing the device closes every queue.
	Queue(i int) Offloader
}

// TUN is a real Linux TUN device carrying raw IP packets, IPv4 and IPv6
// (IFF_TUN | IFF_NO_PI), with offloads (IFF_VNET_HDR) if Config.Offload
// asked for them and the kernel agreed. It is an Offloader either way;
// MaxOffload tells whether offloads are on.
type TUN struct {
	ifce    *water.Interface // the plain device, without offloads
	vq      *vnetQueue       // the device with offloads
	name    string
	mtu     int
	created bool
	// offErr is why offloads are off though Config.Offload asked for
	// them (nil when they are on or were not asked for).
	offErr error
	// more are queues 1… of a multi-queue device (queue 0 is this one);
	// queuesErr is why there are fewer than Config.Queues asked for.
	more      []*TUN
	queuesErr error
}

// Open attaches to the persistent TUN device cfg.Name if it exists in the
// calling thread's network namespace (made with `ip tuntap add dev NAME
// mode tun`; it is left as it was on Close), and otherwise creates it:
// MTU, cfg.Host, cfg.Host6 and link up, removed again on Close. Run it
// inside InNetNS to put the device in a namespace.
func Open(cfg Config) (*TUN, error) {
	if len(cfg.Name) > 15 {
		return nil, fmt.Errorf("tun: device name %q is longer than 15 bytes", cfg.Name)
	}
	if cfg.MTU != 0 && (cfg.MTU < 68 || cfg.MTU > 65535) {
		return nil, fmt.Errorf("tun: MTU %d is outside 68..65535", cfg.MTU)
	}
	if cfg.Host.IsValid() && !cfg.Host.Addr().Is4() {
		return nil, fmt.Errorf("tun: host address %s is not IPv4", cfg.Host)
	}
	if cfg.Host6.IsValid() && !cfg.Host6.Addr().Is6() {
		return nil, fmt.Errorf("tun: IPv6 host address %s is not IPv6", cfg.Host6)
	}
	if cfg.Host6.IsValid() && cfg.Host6.Addr().Is4In6() {
		return nil, fmt.Errorf("tun: IPv6 host address %s is IPv4-mapped, not IPv6", cfg.Host6)
	}
	if cfg.Queues < 0 || cfg.Queues > MaxQueues {
		return nil, fmt.Errorf("tun: %d queues is outside 1..%d", cfg.Queues, MaxQueues)
	}
	exists := false
	if cfg.Name != "" {
		_, err := linkIndex(cfg.Name)
		exists = err == nil
	}
	multi := cfg.Queues > 1
	t, err := openQueue(cfg.Name, cfg.Offload, multi, exists, nil)
	if err != nil && multi {
		// An existing device made without multi_queue refuses
		// IFF_MULTI_QUEUE: one queue it is, and QueuesErr says why.
		multi = false
		var err1 error
		if t, err1 = openQueue(cfg.Name, cfg.Offload, false, exists, nil); err1 == nil {
			t.queuesErr = fmt.Errorf("tun: %d queues: %w", cfg.Queues, err)
			err = nil
		}
	}
	if err != nil {
		return nil, err
	}
	t.created = !exists
	for i := 1; multi && i < cfg.Queues; i++ {
		q, err := openQueue(t.name, t.vq != nil, true, exists, t)
		if err != nil {
			t.queuesErr = fmt.Errorf("tun: queue %d of %d: %w", i+1, cfg.Queues, err)
			break
		}
		t.more = append(t.more, q)
	}
	if err := t.configure(cfg); err != nil {
		t.Close()
		return nil, err
	}
	for _, q := range t.more {
		q.mtu = t.mtu
	}
	return t, nil
}

// openQueue opens one queue of the device name: with offloads if offload
// (falling back to none, with offErr set, where the kernel refuses them),
// as one of several if multi. A further queue of a device already open
// (first) takes the first queue's choice of offloads: all queues of a
// device carry the same header.
func openQueue(name string, offload, multi, exists bool, first *TUN) (*TUN, error) {
	t := &TUN{}
	if offload {
		vq, n, err := openVnet(name, multi)
		if err == nil {
			t.vq, t.name = vq, n
		} else if first != nil {
			return nil, err
		} else {
			t.offErr = err
		}
	}
	if t.vq == nil {
		// water clears the persist flag unless asked to keep it: keep it
		// for a device we attach to, so it survives us as its owner
		// expects.
		ifce, err := water.New(water.Config{
			DeviceType: water.TUN,
			PlatformSpecificParams: water.PlatformSpecificParams{
				Name: name, Persist: exists, MultiQueue: multi,
			},
		})
		if err != nil {
			if exists {
				return nil, fmt.Errorf("tun: attach to %q (is it a free TUN device?): %w", name, err)
			}
			return nil, fmt.Errorf("tun: create %q: %w", name, err)
		}
		t.ifce, t.name = ifce, ifce.Name()
	}
	return t, nil
}

// Queues implements Multiqueue: how many queues Open opened.
func (t *TUN) Queues() int { return 1 + len(t.more) }

// Queue implements Multiqueue.
func (t *TUN) Queue(i int) Offloader {
	if i == 0 {
		return t
	}
	return t.more[i-1]
}

// QueuesErr is why the device has fewer queues than Config.Queues asked
// for (nil if it has them all, or one was asked for).
func (t *TUN) QueuesErr() error { return t.queuesErr }

// OffloadErr is why the device has no offloads although Config.Offload
// asked for them: the kernel or the device refused (at Open, or later a
// super-segment; see Offloader.WriteOffload). It is nil while offloads
// are on, and when they were not asked for.
func (t *TUN) OffloadErr() error {
	if t.vq != nil {
		return t.vq.refused()
	}
	return t.offErr
}

// MaxOffload implements Offloader: MaxOffloadSize while the device carries
// super-segments, else 0.
func (t *TUN) MaxOffload() int {
	if t.vq == nil || t.vq.refused() != nil {
		return 0
	}
	return MaxOffloadSize
}

// ReadOffload implements Offloader. Without offloads it reads an ordinary
// packet.
func (t *TUN) ReadOffload(p []byte) (int, Offload, error) {
	if t.vq == nil {
		n, err := t.Read(p)
		return n, Offload{}, err
	}
	n, o, err := t.vq.readOffload(p)
	return n, o, t.readErr(err)
}

// WriteOffload implements Offloader. Without offloads it cuts a
// super-segment into ordinary packets itself.
func (t *TUN) WriteOffload(head, payload []byte, o Offload) error {
	if t.vq == nil {
		return writeCut(t, head, payload, o, t.mtu)
	}
	return t.vq.writeOffload(head, payload, o, t.mtu)
}

func (t *TUN) configure(cfg Config) error {
	mtu := cfg.MTU
	if mtu == 0 && t.created {
		mtu = 1500
	}
	if mtu != 0 {
		if err := setMTU(t.name, mtu); err != nil {
			return err
		}
	}
	m, err := getMTU(t.name)
	if err != nil {
		return fmt.Errorf("tun: read MTU of %s: %w", t.name, err)
	}
	t.mtu = m
	if t.created && (cfg.Host.IsValid() || cfg.Host6.IsValid()) {
		idx, err := linkIndex(t.name)
		if err != nil {
			return err
		}
		if cfg.Host.IsValid() {
			if err := addAddress(idx, cfg.Host); err != nil {
				return fmt.Errorf("tun: add address %s to %s: %w", cfg.Host, t.name, err)
			}
		}
		if cfg.Host6.IsValid() {
			if err := enableIPv6(t.name); err != nil {
				return err
			}
			if err := addAddress(idx, cfg.Host6); err != nil {
				return fmt.Errorf("tun: add address %s to %s: %w", cfg.Host6, t.name, err)
			}
		}
	}
	if err := LinkUp(t.name); err != nil {
		return err
	}
	if t.created && cfg.Host6.IsValid() {
		// Usable at once means both ways: packets from the address
		// (it is not tentative) and to it (its local route is in).
		if err := waitLocalRoute(cfg.Host6.Addr(), host6Wait); err != nil {
			return fmt.Errorf("tun: address %s on %s: %w", cfg.Host6, t.name, err)
		}
	}
	return nil
}

// Read implements Device. Once the device has been deleted (`ip link
// del`), the error wraps syscall.EBADFD, however Go's poller first
// noticed it ("not pollable" after an EPOLLERR).
func (t *TUN) Read(p []byte) (int, error) {
	var n int
	var err error
	if t.vq != nil {
		n, err = t.vq.read(p)
	} else {
		n, err = t.ifce.Read(p)
	}
	return n, t.readErr(err)
}

func (t *TUN) readErr(err error) error {
	if err != nil && !errors.Is(err, os.ErrClosed) && t.detached() {
		err = &os.PathError{Op: "read", Path: t.name, Err: syscall.EBADFD}
	}
	return err
}

// detached asks the kernel whether the file still has its device:
// TUNGETIFF fails with EBADFD on a TUN file whose device is gone.
func (t *TUN) detached() bool {
	var rc syscall.RawConn
	if t.vq != nil {
		rc = t.vq.rc
	} else {
		sc, ok := t.ifce.ReadWriteCloser.(syscall.Conn)
		if !ok {
			return false
		}
		var err error
		if rc, err = sc.SyscallConn(); err != nil {
			return false
		}
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		var ifr *unix.Ifreq
		if ifr, ierr = unix.NewIfreq(""); ierr == nil {
			ierr = unix.IoctlIfreq(int(fd), unix.TUNGETIFF, ifr)
		}
	}); err != nil {
		return false
	}
	return errors.Is(ierr, unix.EBADFD)
}

// Write implements Device.
func (t *TUN) Write(p []byte) (int, error) {
	if t.vq != nil {
		if err := t.vq.write(p, nil, Offload{}); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return t.ifce.Write(p)
}

// MTU implements Device.
func (t *TUN) MTU() int { return t.mtu }

// Name is the interface name.
func (t *TUN) Name() string { return t.name }

// Created reports whether Open created the device (and Close removes it).
func (t *TUN) Created() bool { return t.created }

// Close implements Device. A pending Read returns an error wrapping
// os.ErrClosed. A device Open created disappears with it.
func (t *TUN) Close() error {
	for _, q := range t.more {
		q.Close()
	}
	if t.vq != nil {
		return t.vq.f.Close()
	}
	return t.ifce.Close()
}
