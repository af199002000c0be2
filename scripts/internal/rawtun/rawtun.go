// Package rawtun opens a Linux TUN device (IFF_TUN | IFF_NO_PI) and hands
// back its raw file descriptor, for the benchmark peers under scripts/
// that need the descriptor itself: gVisor's fdbased link endpoint
// (scripts/gvisorhttp) and the raw packet writer (scripts/tunwrite).
// tund's own device is package tun.
package rawtun

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Open creates the TUN device name in the calling thread's network
// namespace, or attaches to it if a persistent device of that name exists
// there, and returns its file descriptor (close-on-exec, blocking unless
// nonblock).
func Open(name string, nonblock bool) (int, error) {
	if len(name) >= unix.IFNAMSIZ {
		return -1, fmt.Errorf("rawtun: device name %q is longer than %d bytes", name, unix.IFNAMSIZ-1)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("rawtun: open /dev/net/tun: %w", err)
	}
	var req [unix.IFNAMSIZ + 64]byte
	copy(req[:], name)
	*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("rawtun: TUNSETIFF %s: %w", name, errno)
	}
	if nonblock {
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("rawtun: set %s non-blocking: %w", name, err)
		}
	}
	return fd, nil
}
