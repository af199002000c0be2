package tun

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsDir is where named namespaces live, as with `ip netns`.
const netnsDir = "/run/netns"

func netnsPath(name string) (string, error) {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return "", fmt.Errorf("tun: bad network namespace name %q", name)
	}
	return filepath.Join(netnsDir, name), nil
}

// NetNSExists reports whether the named network namespace exists.
func NetNSExists(name string) bool {
	p, err := netnsPath(name)
	if err != nil {
		return false
	}
	var st, root unix.Statfs_t
	if unix.Statfs(p, &st) != nil || unix.Statfs(netnsDir, &root) != nil {
		return false
	}
	// A bound namespace file lives on nsfs, not on /run's filesystem.
	return st.Type == unix.NSFS_MAGIC
}

// CreateNetNS creates a named network namespace the way `ip netns add`
// does, so `ip netns exec NAME` works with it: a new namespace is bound to
// /run/netns/NAME, and its loopback interface is brought up. It fails
// with an error wrapping fs.ErrExist if the name is taken.
func CreateNetNS(name string) (err error) {
	p, err := netnsPath(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("tun: create network namespace %q: %w", name, err)
	}
	f.Close()
	defer func() {
		if err != nil {
			_ = unix.Unmount(p, unix.MNT_DETACH)
			_ = os.Remove(p)
		}
	}()

	return onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("tun: unshare network namespace: %w", err)
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, p, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("tun: bind network namespace to %s: %w", p, err)
		}
		return LinkUp("lo")
	})
}

// DeleteNetNS removes a named network namespace like `ip netns del`. The
// namespace itself disappears once no process or device uses it.
func DeleteNetNS(name string) error {
	p, err := netnsPath(name)
	if err != nil {
		return err
	}
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("tun: unmount %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("tun: delete network namespace %q: %w", name, err)
	}
	return nil
}

// InNetNS runs fn on an OS thread switched into the named network
// namespace, then switches the thread back. Sockets and devices fn opens
// belong to that namespace and keep working from any goroutine afterwards.
// An empty name runs fn where the caller is.
func InNetNS(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	p, err := netnsPath(name)
	if err != nil {
		return err
	}
	target, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("tun: open network namespace %q: %w", name, err)
	}
	defer unix.Close(target)
	return onThread(func() error {
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("tun: enter network namespace %q: %w", name, err)
		}
		return fn()
	})
}

// onThread runs fn on a locked OS thread and restores the thread's network
// namespace afterwards. If that fails the thread stays locked, so the
// runtime retires it with the goroutine instead of reusing it elsewhere.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("tun: open current network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		err = fn()
		if unix.Setns(orig, unix.CLONE_NEWNET) != nil {
			errc <- err // leave the thread locked: it dies with this goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}
