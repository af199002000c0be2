// Package rawtun opens a Linux TUN device (IFF_TUN | IFF_NO_PI) and hands
// back its raw file descriptor, for the benchmark peers under scripts/
// that need the descriptor itself: gVisor's fdbased link endpoint
// (scripts/gvisorhttp) and the raw packet writer (scripts/tunwrite).
// tund's own device is package tun.
package rawtun

import (
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Open creates the TUN device name in the calling thread's network
// namespace, or attaches to it if a persistent device of that name exists
// there, and returns its file descriptor (close-on-exec, blocking unless
// nonblock). The benchmarks keep every device in a throwaway network
// namespace (bench.sh runs its peers under `ip netns exec`, gvisorhttp
// enters -netns first), so Open refuses to make one in the namespace the
// machine's first process runs in: the host's.
func Open(name string, nonblock bool) (int, error) {
	if host, err := inHostNetns(); err != nil || host {
		if err == nil {
			err = fmt.Errorf("this thread is in no named network namespace (the host's?); run inside a throwaway one (ip netns exec)")
		}
		return -1, fmt.Errorf("rawtun: %s: %w", name, err)
	}
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

// inHostNetns reports whether the calling thread is outside every named
// network namespace (those `ip netns add` and tund's scripts make, bind-
// mounted under /run/netns): then it is in the host's, or one nobody can
// delete by name.
func inHostNetns() (bool, error) {
	var self unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &self); err != nil {
		return false, fmt.Errorf("which network namespace: %w", err)
	}
	names, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		return false, fmt.Errorf("which network namespace: %w", err)
	}
	for _, n := range names {
		var ns unix.Stat_t
		if unix.Stat(filepath.Join("/run/netns", n.Name()), &ns) == nil && ns.Dev == self.Dev && ns.Ino == self.Ino {
			return false, nil
		}
	}
	return true, nil
}
