package tun

import (
	"encoding/binary"
	"fmt"
	"net/netip"
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

// addAddress assigns prefix to the interface with rtnetlink RTM_NEWADDR,
// as `ip addr add PREFIX dev NAME` does (IFA_LOCAL and IFA_ADDRESS both
// the address, so the kernel installs the prefix route).
func addAddress(index int, prefix netip.Prefix) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	addr := prefix.Addr().As4()
	const attrLen = unix.SizeofRtAttr + 4
	msgLen := unix.SizeofNlMsghdr + unix.SizeofIfAddrmsg + 2*attrLen
	b := make([]byte, msgLen)
	*(*unix.NlMsghdr)(unsafe.Pointer(&b[0])) = unix.NlMsghdr{
		Len:   uint32(msgLen),
		Type:  unix.RTM_NEWADDR,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_EXCL,
		Seq:   1,
	}
	*(*unix.IfAddrmsg)(unsafe.Pointer(&b[unix.SizeofNlMsghdr])) = unix.IfAddrmsg{
		Family:    unix.AF_INET,
		Prefixlen: uint8(prefix.Bits()),
		Scope:     unix.RT_SCOPE_UNIVERSE,
		Index:     uint32(index),
	}
	off := unix.SizeofNlMsghdr + unix.SizeofIfAddrmsg
	for _, typ := range []uint16{unix.IFA_LOCAL, unix.IFA_ADDRESS} {
		*(*unix.RtAttr)(unsafe.Pointer(&b[off])) = unix.RtAttr{Len: attrLen, Type: typ}
		copy(b[off+unix.SizeofRtAttr:], addr[:])
		off += attrLen
	}
	if err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	resp := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, resp, 0)
	if err != nil {
		return err
	}
	if n < unix.SizeofNlMsghdr+4 {
		return fmt.Errorf("tun: short netlink reply (%d bytes)", n)
	}
	h := (*unix.NlMsghdr)(unsafe.Pointer(&resp[0]))
	if h.Type != unix.NLMSG_ERROR {
		return fmt.Errorf("tun: unexpected netlink reply type %d", h.Type)
	}
	if code := int32(binary.NativeEndian.Uint32(resp[unix.SizeofNlMsghdr:])); code != 0 {
		return unix.Errno(-code)
	}
	return nil
}
