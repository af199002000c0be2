package tun

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"

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
	// Host is the kernel-side address and prefix given to a device Open
	// creates (e.g. 198.18.0.1/24). The zero value assigns none.
	Host netip.Prefix
}

// TUN is a real Linux TUN device carrying raw IPv4 packets (IFF_TUN |
// IFF_NO_PI).
type TUN struct {
	ifce    *water.Interface
	name    string
	mtu     int
	created bool
}

// Open attaches to the persistent TUN device cfg.Name if it exists in the
// calling thread's network namespace (made with `ip tuntap add dev NAME
// mode tun`; it is left as it was on Close), and otherwise creates it:
// MTU, cfg.Host and link up, removed again on Close. Run it inside
// InNetNS to put the device in a namespace.
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
	exists := false
	if cfg.Name != "" {
		_, err := linkIndex(cfg.Name)
		exists = err == nil
	}
	// water clears the persist flag unless asked to keep it: keep it for a
	// device we attach to, so it survives us as its owner expects.
	ifce, err := water.New(water.Config{
		DeviceType:             water.TUN,
		PlatformSpecificParams: water.PlatformSpecificParams{Name: cfg.Name, Persist: exists},
	})
	if err != nil {
		if exists {
			return nil, fmt.Errorf("tun: attach to %q (is it a free TUN device?): %w", cfg.Name, err)
		}
		return nil, fmt.Errorf("tun: create %q: %w", cfg.Name, err)
	}
	t := &TUN{ifce: ifce, name: ifce.Name(), created: !exists}
	if err := t.configure(cfg); err != nil {
		ifce.Close()
		return nil, err
	}
	return t, nil
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
	if t.created && cfg.Host.IsValid() {
		idx, err := linkIndex(t.name)
		if err != nil {
			return err
		}
		if err := addAddress(idx, cfg.Host); err != nil {
			return fmt.Errorf("tun: add address %s to %s: %w", cfg.Host, t.name, err)
		}
	}
	return LinkUp(t.name)
}

// Read implements Device. Once the device has been deleted (`ip link
// del`), the error wraps syscall.EBADFD, however Go's poller first
// noticed it ("not pollable" after an EPOLLERR).
func (t *TUN) Read(p []byte) (int, error) {
	n, err := t.ifce.Read(p)
	if err != nil && !errors.Is(err, os.ErrClosed) && t.detached() {
		err = &os.PathError{Op: "read", Path: t.name, Err: syscall.EBADFD}
	}
	return n, err
}

// detached asks the kernel whether the file still has its device:
// TUNGETIFF fails with EBADFD on a TUN file whose device is gone.
func (t *TUN) detached() bool {
	sc, ok := t.ifce.ReadWriteCloser.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
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
func (t *TUN) Write(p []byte) (int, error) { return t.ifce.Write(p) }

// MTU implements Device.
func (t *TUN) MTU() int { return t.mtu }

// Name is the interface name.
func (t *TUN) Name() string { return t.name }

// Created reports whether Open created the device (and Close removes it).
func (t *TUN) Created() bool { return t.created }

// Close implements Device. A pending Read returns an error wrapping
// os.ErrClosed. A device Open created disappears with it.
func (t *TUN) Close() error { return t.ifce.Close() }
