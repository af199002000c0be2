package tun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ifreq helpers: an ifreq is 40 bytes, the name then a union.
func ioctlIfreq(req uint, ifr *unix.Ifreq) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.IoctlIfreq(fd, req, ifr)
}

// LinkUp sets IFF_UP on the named interface of the calling thread's
// network namespace.
func LinkUp(name string) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := ioctlIfreq(unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("tun: get flags of %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := ioctlIfreq(unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("tun: bring %s up: %w", name, err)
	}
	return nil
}

func linkIndex(name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := ioctlIfreq(unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

func setMTU(name string, mtu int) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint32(uint32(mtu))
	if err := ioctlIfreq(unix.SIOCSIFMTU, ifr); err != nil {
		return fmt.Errorf("tun: set MTU %d on %s: %w", mtu, name, err)
	}
	return nil
}

func getMTU(name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := ioctlIfreq(unix.SIOCGIFMTU, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

// addAddress assigns prefix, IPv4 or IPv6, to the interface with
// rtnetlink RTM_NEWADDR, as `ip addr add PREFIX dev NAME` does (IFA_LOCAL
// and IFA_ADDRESS both the address, so the kernel installs the prefix
// route). An IPv6 address is added with IFA_F_NODAD, as `ip addr add ...
// nodad` does: it skips duplicate address detection (RFC 4862 §5.4), so
// the address is never tentative (unusable), not even while the link is
// still down, whatever the namespace's accept_dad says. A point-to-point
// TUN, whose other end is tund, has no one to detect. (The kernel still
// installs the route that delivers packets to an IPv6 address locally a
// moment later, from a work queue: see waitLocalRoute.)
func addAddress(index int, prefix netip.Prefix) error {
	fd, err := openRtnetlink()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	addr := prefix.Addr().AsSlice()
	family, flags := uint8(unix.AF_INET), uint8(0)
	if prefix.Addr().Is6() {
		family, flags = unix.AF_INET6, unix.IFA_F_NODAD
	}
	attrLen := unix.SizeofRtAttr + len(addr) // 4-byte aligned: 8 or 20
	msgLen := unix.SizeofNlMsghdr + unix.SizeofIfAddrmsg + 2*attrLen
	b := make([]byte, msgLen)
	*(*unix.NlMsghdr)(unsafe.Pointer(&b[0])) = unix.NlMsghdr{
		Len:   uint32(msgLen),
		Type:  unix.RTM_NEWADDR,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_EXCL,
		Seq:   1,
	}
	*(*unix.IfAddrmsg)(unsafe.Pointer(&b[unix.SizeofNlMsghdr])) = unix.IfAddrmsg{
		Family:    family,
		Prefixlen: uint8(prefix.Bits()),
		Flags:     flags,
		Scope:     unix.RT_SCOPE_UNIVERSE,
		Index:     uint32(index),
	}
	off := unix.SizeofNlMsghdr + unix.SizeofIfAddrmsg
	for _, typ := range []uint16{unix.IFA_LOCAL, unix.IFA_ADDRESS} {
		*(*unix.RtAttr)(unsafe.Pointer(&b[off])) = unix.RtAttr{Len: uint16(attrLen), Type: typ}
		copy(b[off+unix.SizeofRtAttr:], addr)
		off += attrLen
	}
	resp := make([]byte, 4096)
	if _, err := rtnetlinkRequest(fd, b, resp); err != nil {
		return err
	}
	if h := (*unix.NlMsghdr)(unsafe.Pointer(&resp[0])); h.Type != unix.NLMSG_ERROR {
		return fmt.Errorf("tun: unexpected netlink reply type %d", h.Type)
	}
	return nil // the ACK: an error code of 0
}

// openRtnetlink opens a NETLINK_ROUTE socket in the calling thread's
// network namespace.
func openRtnetlink() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// rtnetlinkRequest sends the request b on the rtnetlink socket fd and
// reads the reply into resp, returning its length. A reply that is an
// NLMSG_ERROR with a nonzero code is that error.
func rtnetlinkRequest(fd int, b, resp []byte) (int, error) {
	if err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, err
	}
	n, _, err := unix.Recvfrom(fd, resp, 0)
	if err != nil {
		return 0, err
	}
	if n < unix.SizeofNlMsghdr {
		return 0, fmt.Errorf("tun: short netlink reply (%d bytes)", n)
	}
	h := (*unix.NlMsghdr)(unsafe.Pointer(&resp[0]))
	if h.Type == unix.NLMSG_ERROR {
		if n < unix.SizeofNlMsghdr+4 {
			return 0, fmt.Errorf("tun: short netlink reply (%d bytes)", n)
		}
		if code := int32(binary.NativeEndian.Uint32(resp[unix.SizeofNlMsghdr:])); code != 0 {
			return 0, unix.Errno(-code)
		}
	}
	return n, nil
}

// waitLocalRoute waits, up to timeout, until the kernel of the calling
// thread's network namespace routes addr as a local address (what `ip
// route get ADDR` shows as "local"), polling with rtnetlink RTM_GETROUTE.
// An IPv6 address added with IFA_F_NODAD is in the interface's list at
// once, so the kernel sends from it, but the route that delivers packets
// to it is inserted a moment later by addrconf's work queue; until then
// a packet for it is taken for one to forward, and dropped.
func waitLocalRoute(addr netip.Addr, timeout time.Duration) error {
	fd, err := openRtnetlink()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	a := addr.AsSlice()
	family := uint8(unix.AF_INET)
	if addr.Is6() {
		family = unix.AF_INET6
	}
	attrLen := unix.SizeofRtAttr + len(a)
	msgLen := unix.SizeofNlMsghdr + unix.SizeofRtMsg + attrLen
	b := make([]byte, msgLen)
	*(*unix.NlMsghdr)(unsafe.Pointer(&b[0])) = unix.NlMsghdr{Len: uint32(msgLen), Type: unix.RTM_GETROUTE, Flags: unix.NLM_F_REQUEST}
	*(*unix.RtMsg)(unsafe.Pointer(&b[unix.SizeofNlMsghdr])) = unix.RtMsg{Family: family, Dst_len: uint8(len(a) * 8)}
	off := unix.SizeofNlMsghdr + unix.SizeofRtMsg
	*(*unix.RtAttr)(unsafe.Pointer(&b[off])) = unix.RtAttr{Len: uint16(attrLen), Type: unix.RTA_DST}
	copy(b[off+unix.SizeofRtAttr:], a)

	resp := make([]byte, 4096)
	deadline := time.Now().Add(timeout)
	var last error
	for wait, seq := 50*time.Microsecond, uint32(1); ; wait, seq = min(2*wait, 10*time.Millisecond), seq+1 {
		(*unix.NlMsghdr)(unsafe.Pointer(&b[0])).Seq = seq
		n, err := rtnetlinkRequest(fd, b, resp)
		switch {
		case err != nil:
			last = err
		case n < unix.SizeofNlMsghdr+unix.SizeofRtMsg || (*unix.NlMsghdr)(unsafe.Pointer(&resp[0])).Type != unix.RTM_NEWROUTE:
			last = fmt.Errorf("unexpected netlink reply type %d", (*unix.NlMsghdr)(unsafe.Pointer(&resp[0])).Type)
		default:
			rt := (*unix.RtMsg)(unsafe.Pointer(&resp[unix.SizeofNlMsghdr]))
			if rt.Type == unix.RTN_LOCAL {
				return nil
			}
			last = fmt.Errorf("routed as type %d, not local (%d)", rt.Type, unix.RTN_LOCAL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not routed as local after %v: %w", timeout, last)
		}
		time.Sleep(wait)
	}
}

// enableIPv6 makes sure IPv6 is on for the named interface of the calling
// thread's network namespace: where the kernel has IPv6 and the
// interface's disable_ipv6 says 1 (inherited from the namespace's
// default, say), it writes 0, since the kernel refuses IPv6 addresses on
// such an interface. A kernel without IPv6 (no such file) is left to fail
// at the address itself.
func enableIPv6(name string) error {
	p := "/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6"
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tun: enable IPv6 on %s: %w", name, err)
	}
	if strings.TrimSpace(string(b)) != "1" {
		return nil
	}
	if err := os.WriteFile(p, []byte("0\n"), 0o644); err != nil {
		return fmt.Errorf("tun: enable IPv6 on %s: %w", name, err)
	}
	return nil
}
