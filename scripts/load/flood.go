package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// floodResult is what `load flood` measured.
type floodResult struct {
	Mode string `json:"mode"`
	N    int    `json:"n"`
	Sent int    `json:"sent"` // spoofed SYNs the raw socket took
	// LinkDrops counts packets the TUN device's queue dropped: SYNs sent
	// faster than tund reads them never reach it.
	LinkDrops uint64        `json:"link_drops"`
	Rate      int           `json:"rate"` // asked for, SYNs/s (0: as fast as possible)
	Elapsed   time.Duration `json:"flood_ns"`
	// The real client: one connection attempt every Every, during the
	// flood and for After after it.
	Attempts  int        `json:"attempts"`
	Succeeded int        `json:"succeeded"` // connected and echoed verified bytes
	Connect   latencies  `json:"connect"`   // of the successful ones
	Errors    errorTally `json:"errors"`
	Before    tundSample `json:"before"` // after a garbage collection
	Peak      tundSample `json:"peak"`   // the largest RSS seen during the run
	After     tundSample `json:"after"`  // after a garbage collection
}

// runFlood sends n spoofed SYNs to dst through a raw socket (IP_HDRINCL),
// each from a random address of the namespace's subnet that is neither
// the host's nor the stack's, and a random port; tund's SYN+ACKs come
// back to this namespace's kernel, which owns none of those addresses and
// drops them. Meanwhile a real kernel client keeps connecting to the same
// port and checks each connection with an echo.
func runFlood(args []string) error {
	var c common
	fs := c.newFlags("flood", 3*time.Minute)
	dst := fs.String("dst", "198.18.0.2:7", "the listener to flood: tund's echo `address` (the real client uses it too)")
	subnet := fs.String("src", "198.18.0.0/24", "spoofed source addresses come from this `prefix` (the namespace's own subnet)")
	host := fs.String("host", "198.18.0.1", "the kernel side's own address, never spoofed")
	n := fs.Int("n", 100000, "spoofed SYNs to send (1..10000000)")
	rate := fs.Int("rate", 0, "SYNs per second (0: as fast as the socket takes them)")
	every := fs.Duration("every", 50*time.Millisecond, "the real client starts a connection this often")
	after := fs.Duration("after", 2*time.Second, "and keeps doing so this long after the flood")
	dialTimeout := fs.Duration("dial-timeout", 3*time.Second, "how long one real connection attempt may take, echo included")
	seed := fs.Uint64("seed", 1, "seed of the spoofed addresses, ports and sequence numbers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dstAP, err := netip.ParseAddrPort(*dst)
	if err != nil || !dstAP.Addr().Is4() {
		return fmt.Errorf("-dst %q: not an IPv4 address:port", *dst)
	}
	pfx, err := netip.ParsePrefix(*subnet)
	if err != nil || !pfx.Addr().Is4() || pfx.Bits() > 30 || pfx.Bits() < 8 {
		return fmt.Errorf("-src %q: want an IPv4 prefix between /8 and /30", *subnet)
	}
	pfx = pfx.Masked()
	hostAddr, err := netip.ParseAddr(*host)
	if err != nil {
		return fmt.Errorf("-host %q: %v", *host, err)
	}
	if err := errors.Join(inRange("n", *n, 1, 10000000), inRange("rate", *rate, 0, 10000000)); err != nil {
		return err
	}
	if *every < time.Millisecond {
		return fmt.Errorf("-every %v: at least 1ms", *every)
	}
	if !pfx.Contains(dstAP.Addr()) {
		// Spoofed SYN+ACKs must come back into this namespace and die
		// here: never flood anything but the stack on its own subnet.
		return fmt.Errorf("-dst %v is outside -src %v", dstAP.Addr(), pfx)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.limit)
	defer cancel()

	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW) // implies IP_HDRINCL
	if err != nil {
		return fmt.Errorf("raw socket (needs CAP_NET_RAW): %w", err)
	}
	defer syscall.Close(fd)
	to := &syscall.SockaddrInet4{Addr: dstAP.Addr().As4()}

	r := floodResult{Mode: "flood", N: *n, Rate: *rate}
	r.Before = c.mustSample(true)
	r.Peak = r.Before

	// The real client and the watcher of tund's memory run until the
	// flood is over plus -after.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex // guards r's client fields and Peak
	wg.Add(2)
	go func() {
		defer wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if s, err := c.sample(false); err == nil {
					mu.Lock()
					if s.RSS >= r.Peak.RSS {
						r.Peak = s
					}
					mu.Unlock()
				}
			}
		}
	}()
	var lat []time.Duration
	go func() {
		defer wg.Done()
		var attempts sync.WaitGroup
		defer attempts.Wait()
		t := time.NewTicker(*every)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			attempts.Add(1)
			go func() {
				defer attempts.Done()
				t0 := time.Now()
				err := realClient(ctx, dstAP.String(), *dialTimeout, uint64(i))
				mu.Lock()
				defer mu.Unlock()
				r.Attempts++
				if err != nil {
					r.Errors.add(err)
					return
				}
				r.Succeeded++
				lat = append(lat, time.Since(t0))
			}()
		}
	}()

	link0 := tunDrops(c.dev)
	rng := rand.New(rand.NewPCG(*seed, 0xf100d))
	pkt := make([]byte, 44)
	start := time.Now()
	for i := 0; i < *n && ctx.Err() == nil; i++ {
		if *rate > 0 {
			if ahead := time.Duration(i)*time.Second/time.Duration(*rate) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		src := spoofedAddr(rng, pfx, hostAddr, dstAP.Addr())
		buildSYN(pkt, src, dstAP.Addr().As4(), uint16(1024+rng.IntN(64512)), dstAP.Port(), rng.Uint32(), uint16(i))
		if err := syscall.Sendto(fd, pkt, 0, to); err != nil {
			if err == syscall.ENOBUFS || err == syscall.EAGAIN {
				time.Sleep(100 * time.Microsecond) // the TUN's queue is full: let tund catch up
				i--
				continue
			}
			return fmt.Errorf("sendto: %w", err)
		}
		r.Sent++
	}
	r.Elapsed = time.Since(start)
	select {
	case <-time.After(*after):
	case <-ctx.Done():
	}
	close(stop)
	wg.Wait()
	r.LinkDrops = tunDrops(c.dev) - link0
	r.Connect = summarize(lat)
	r.After = c.mustSample(true)

	return emit(c.asJSON, r, func(w io.Writer) {
		fmt.Fprintf(w, "flood: %d spoofed SYNs to %v in %v (%.0f/s), %d packets lost in the TUN queue; tund sent %d SYN cookies, evicted %d half-open, dropped %d SYNs (SYN queue full) and %d (accept queue full)\n",
			r.Sent, dstAP, r.Elapsed.Round(time.Millisecond), float64(r.Sent)/r.Elapsed.Seconds(), r.LinkDrops,
			r.After.SynCookiesSent-r.Before.SynCookiesSent, r.After.HalfOpenEvict-r.Before.HalfOpenEvict,
			r.After.SynQueueFull-r.Before.SynQueueFull, r.After.BacklogFull-r.Before.BacklogFull)
		pct := 0.0
		if r.Attempts > 0 {
			pct = 100 * float64(r.Succeeded) / float64(r.Attempts)
		}
		fmt.Fprintf(w, "  real client: %d of %d connections succeeded (%.1f%%); connect+echo %v\n", r.Succeeded, r.Attempts, pct, r.Connect)
		if r.Errors.Count > 0 {
			fmt.Fprintf(w, "  errors: %v\n", r.Errors.Kinds)
		}
		fmt.Fprintf(w, "  tund RSS %s before, %s at most, %s after; heap %s → %s; states after %v\n",
			mib(r.Before.RSS), mib(r.Peak.RSS), mib(r.After.RSS), mib(r.Before.Heap), mib(r.Peak.Heap), r.After.States)
	})
}

// realClient connects to addr, echoes a few verified bytes and closes,
// all within timeout.
func realClient(ctx context.Context, addr string, timeout time.Duration, seed uint64) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	return echoCheck(ctx, conn, 64, seed)
}

// spoofedAddr picks a random address in pfx that is not its network or
// broadcast address, nor host, nor dst.
func spoofedAddr(rng *rand.Rand, pfx netip.Prefix, host, dst netip.Addr) [4]byte {
	base := binary.BigEndian.Uint32(pfx.Addr().AsSlice())
	size := uint32(1) << (32 - pfx.Bits())
	for {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+1+rng.Uint32N(size-2))
		if ip := netip.AddrFrom4(a); ip != host && ip != dst {
			return a
		}
	}
}

// buildSYN writes a 44-byte IPv4 packet into p: a SYN with an MSS option,
// as a client would send. The kernel fills in nothing but (for IP_HDRINCL
// with a zero ID) the ID and the header checksum, which is computed here
// anyway.
func buildSYN(p []byte, src, dst [4]byte, sport, dport uint16, seq uint32, id uint16) {
	// IPv4 header (RFC 791).
	p[0] = 0x45
	p[1] = 0
	binary.BigEndian.PutUint16(p[2:], 44)
	binary.BigEndian.PutUint16(p[4:], id|1)
	binary.BigEndian.PutUint16(p[6:], 0x4000) // DF
	p[8] = 64
	p[9] = syscall.IPPROTO_TCP
	p[10], p[11] = 0, 0
	copy(p[12:16], src[:])
	copy(p[16:20], dst[:])
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20], 0))
	// TCP header (RFC 9293 §3.1) with one option: MSS 1460.
	t := p[20:]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], 0)
	t[12] = 6 << 4 // 24 bytes
	t[13] = 0x02   // SYN
	binary.BigEndian.PutUint16(t[14:], 64240)
	t[16], t[17] = 0, 0
	t[18], t[19] = 0, 0
	t[20], t[21] = 2, 4
	binary.BigEndian.PutUint16(t[22:], 1460)
	// The pseudo-header: source, destination, zero, protocol, TCP length.
	var sum uint32
	sum += uint32(binary.BigEndian.Uint16(src[0:])) + uint32(binary.BigEndian.Uint16(src[2:]))
	sum += uint32(binary.BigEndian.Uint16(dst[0:])) + uint32(binary.BigEndian.Uint16(dst[2:]))
	sum += syscall.IPPROTO_TCP + 24
	binary.BigEndian.PutUint16(t[16:], checksum(t[:24], sum))
}

// checksum is the Internet checksum (RFC 1071) of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
