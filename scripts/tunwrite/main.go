// Command tunwrite measures the raw TUN device's packet ceiling without
// offloads: it writes the same IPv4/UDP packet (1500 bytes by default)
// into a TUN device, one write(2) per packet, as fast as it can for a
// bounded time and count, and prints packets/s and Gbit/s. Nothing reads
// the packets back: the kernel receives each one as if it came from the
// wire, so this is the most a userspace stack can push into the kernel
// through one TUN queue at that packet size.
//
// It attaches to a persistent TUN device of the calling network namespace
// (scripts/bench.sh runs it under ip netns exec in a throwaway namespace
// where the packets' destination is the namespace's own address and an
// nftables rule drops them, so they go nowhere):
//
//	ip netns exec NS tunwrite -tun tw0 -src 198.18.0.2 -dst 198.18.0.1 -port 9 -duration 5s
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/scripts/internal/rawtun"
)

// udpHeaderLen is the length of a UDP header (RFC 768).
const udpHeaderLen = 8

// result is what one run measured.
type result struct {
	Packets  uint64        `json:"packets"`
	Size     int           `json:"size"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	PPS      float64       `json:"packets_per_second"`
	Gbps     float64       `json:"gbit_per_second"`
	Failures uint64        `json:"failed_writes"`
}

func main() {
	dev := flag.String("tun", "tw0", "persistent TUN `device` to write into (in the current network namespace)")
	srcS := flag.String("src", "198.18.0.2", "source `address` of the packets")
	dstS := flag.String("dst", "198.18.0.1", "destination `address` of the packets")
	port := flag.Uint("port", 9, "destination UDP `port`")
	size := flag.Int("size", 1500, "packet size in bytes, IPv4 header included (28..65535)")
	dur := flag.Duration("duration", 5*time.Second, "write for this long (at most 60s)")
	maxPkts := flag.Uint64("max", 1<<32, "stop after this many packets")
	asJSON := flag.Bool("json", false, "print the result as one JSON object")
	flag.Parse()
	src, err1 := netip.ParseAddr(*srcS)
	dst, err2 := netip.ParseAddr(*dstS)
	switch {
	case err1 != nil || err2 != nil || !src.Is4() || !dst.Is4():
		fail(errors.New("-src and -dst must be IPv4 addresses"))
	case *size < ip.IPv4HeaderLen+udpHeaderLen || *size > 65535:
		fail(fmt.Errorf("-size %d: must be %d..65535", *size, ip.IPv4HeaderLen+udpHeaderLen))
	case *port == 0 || *port > 65535:
		fail(fmt.Errorf("-port %d: must be 1..65535", *port))
	case *dur <= 0 || *dur > time.Minute:
		fail(fmt.Errorf("-duration %v: must be in (0, 60s]", *dur))
	}
	fd, err := rawtun.Open(*dev, false)
	if err != nil {
		fail(err)
	}
	defer unix.Close(fd)
	pkt := make([]byte, *size)
	buildUDP(pkt, src.As4(), dst.As4(), 40000, uint16(*port))
	r := write(fd, pkt, *dur, *maxPkts)
	if r.Packets == 0 {
		fail(fmt.Errorf("no packet written (%d writes failed)", r.Failures))
	}
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Printf("tunwrite: %d packets of %d bytes in %v: %.0f packets/s, %.2f Gbit/s (%d writes failed)\n",
		r.Packets, r.Size, r.Elapsed.Round(time.Millisecond), r.PPS, r.Gbps, r.Failures)
}

// write writes pkt to fd until d has passed or max packets were written.
// The clock is read every 256 packets, to keep it out of the loop's cost.
func write(fd int, pkt []byte, d time.Duration, max uint64) result {
	r := result{Size: len(pkt)}
	start := time.Now()
	deadline := start.Add(d)
	for r.Packets < max {
		if r.Packets&255 == 0 && time.Now().After(deadline) {
			break
		}
		if _, err := unix.Write(fd, pkt); err != nil {
			// ENOBUFS and the like: the kernel refused this one. Count
			// it and keep going; a device that went away ends the run.
			r.Failures++
			if errors.Is(err, unix.EBADFD) || errors.Is(err, unix.EIO) || r.Failures > 1000000 {
				break
			}
			continue
		}
		r.Packets++
	}
	r.Elapsed = time.Since(start)
	r.PPS = float64(r.Packets) / r.Elapsed.Seconds()
	r.Gbps = r.PPS * float64(len(pkt)) * 8 / 1e9
	return r
}

// buildUDP fills pkt (its whole length) with an IPv4 packet carrying a
// UDP datagram from src:sport to dst:dport, whose payload is zeros. The
// UDP checksum is left zero: "no checksum", which RFC 768 allows over
// IPv4, so the kernel does not sum the payload (as with a TUN offload, the
// per-byte cost is the copy alone).
func buildUDP(pkt []byte, src, dst [4]byte, sport, dport uint16) {
	clear(pkt)
	n := ip.BuildIPv4(pkt, netip.AddrFrom4(src), netip.AddrFrom4(dst), unix.IPPROTO_UDP, 0, len(pkt)-ip.IPv4HeaderLen)
	u := pkt[n:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	binary.BigEndian.PutUint16(u[6:], 0)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "tunwrite: %v\n", err)
	os.Exit(1)
}
