package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// connsResult is what `load conns` measured.
type connsResult struct {
	Mode     string `json:"mode"`
	N        int    `json:"n"`
	Dialers  int    `json:"dialers"`
	Size     int    `json:"size"`
	Opened   int    `json:"opened"`
	Verified int    `json:"verified"` // connections whose echo came back byte for byte
	// OpenTime is from the first dial to the last completed one.
	OpenTime     time.Duration `json:"open_ns"`
	TransferTime time.Duration `json:"transfer_ns"`
	Dial         latencies     `json:"dial"`
	DialErrors   errorTally    `json:"dial_errors"`
	EchoErrors   errorTally    `json:"echo_errors"`
	// SynRetrans is the kernel's count of SYNs its clients sent again.
	SynRetrans uint64 `json:"kernel_syn_retrans"`
	// LinkDrops counts packets the TUN device's queue dropped.
	LinkDrops uint64 `json:"link_drops"`
	// tund before the first dial and with every connection open after
	// the transfer (both after a garbage collection: live memory), and
	// right after all were closed.
	Before tundSample `json:"before"`
	Open   tundSample `json:"open"`
	After  tundSample `json:"after"`
	// Per open connection, from Before to Open.
	RSSPerConn  float64 `json:"rss_per_conn"`
	HeapPerConn float64 `json:"heap_per_conn"`
}

// runConns opens n connections to the echo service with `dialers`
// concurrent dialers and keeps them all open; then moves size seeded
// random bytes through each and checks they come back; measures tund with
// every connection open; closes them all.
func runConns(args []string) error {
	var c common
	fs := c.newFlags("conns", 2*time.Minute)
	addr := fs.String("addr", "198.18.0.2:7", "echo service `address`")
	n := fs.Int("n", 10000, "connections to hold open at once (1..100000)")
	dialers := fs.Int("dialers", 32, "concurrent dialers (1..1024)")
	size := fs.Int("size", 1024, "bytes each connection sends and gets back (1..65536)")
	dialTimeout := fs.Duration("dial-timeout", 20*time.Second, "timeout of one dial")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := errors.Join(inRange("n", *n, 1, 100000), inRange("dialers", *dialers, 1, 1024), inRange("size", *size, 1, 65536)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.limit)
	defer cancel()
	r := connsResult{Mode: "conns", N: *n, Dialers: *dialers, Size: *size}
	r.Before = c.mustSample(true)
	retrans0, link0 := kernelSynRetrans(), tunDrops(c.dev)

	conns := make([]net.Conn, *n)
	dialLat := make([]time.Duration, *n)
	var mu sync.Mutex // guards r's error tallies
	d := net.Dialer{Timeout: *dialTimeout}
	start := time.Now()
	parallel(*dialers, *n, func(i int) {
		if ctx.Err() != nil {
			return
		}
		t0 := time.Now()
		conn, err := d.DialContext(ctx, "tcp", *addr)
		dialLat[i] = time.Since(t0)
		if err != nil {
			mu.Lock()
			r.DialErrors.add(err)
			mu.Unlock()
			return
		}
		conns[i] = conn
	})
	r.OpenTime = time.Since(start)
	r.SynRetrans, r.LinkDrops = kernelSynRetrans()-retrans0, tunDrops(c.dev)-link0
	var lat []time.Duration
	for i, conn := range conns {
		if conn != nil {
			r.Opened++
			lat = append(lat, dialLat[i])
		}
	}
	r.Dial = summarize(lat)

	// Every connection is open: move the bytes through each.
	var verified atomic.Int64
	start = time.Now()
	parallel(*dialers, *n, func(i int) {
		if conns[i] == nil || ctx.Err() != nil {
			return
		}
		if err := echoCheck(ctx, conns[i], *size, uint64(i)); err != nil {
			mu.Lock()
			r.EchoErrors.add(err)
			mu.Unlock()
			return
		}
		verified.Add(1)
	})
	r.TransferTime = time.Since(start)
	r.Verified = int(verified.Load())
	r.Open = c.mustSample(true)
	r.RSSPerConn = perConn(r.Before.RSS, r.Open.RSS, r.Opened)
	r.HeapPerConn = perConn(r.Before.Heap, r.Open.Heap, r.Opened)
	for _, conn := range conns {
		if conn != nil {
			conn.Close()
		}
	}
	r.After = c.mustSample(false)

	return emit(c.asJSON, r, func(w io.Writer) {
		fmt.Fprintf(w, "conns: %d of %d opened by %d dialers in %v (%.0f/s); kernel SYN retransmissions %d; tund dropped %d SYNs (accept queue full), %d (SYN queue full); TUN queue drops %d\n",
			r.Opened, r.N, r.Dialers, r.OpenTime.Round(time.Millisecond), float64(r.Opened)/r.OpenTime.Seconds(),
			r.SynRetrans, r.Open.BacklogFull-r.Before.BacklogFull, r.Open.SynQueueFull-r.Before.SynQueueFull, r.LinkDrops)
		fmt.Fprintf(w, "  dial: %v\n", r.Dial)
		fmt.Fprintf(w, "  %d of them echoed %d verified bytes each in %v\n", r.Verified, r.Size, r.TransferTime.Round(time.Millisecond))
		if r.Open.RSS != 0 {
			fmt.Fprintf(w, "  tund RSS %s → %s with all open: %.1f KiB per connection\n",
				mib(r.Before.RSS), mib(r.Open.RSS), r.RSSPerConn/1024)
		}
		if r.Open.Heap != 0 {
			fmt.Fprintf(w, "  tund heap %s → %s: %.1f KiB per connection; goroutines %d → %d\n",
				mib(r.Before.Heap), mib(r.Open.Heap), r.HeapPerConn/1024, r.Before.Goroutines, r.Open.Goroutines)
		}
		if r.DialErrors.Count+r.EchoErrors.Count > 0 {
			fmt.Fprintf(w, "  errors: dial %v, echo %v\n", r.DialErrors.Kinds, r.EchoErrors.Kinds)
		}
	})
}

// parallel runs f(0..n-1) on `workers` goroutines and waits for them.
func parallel(workers, n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// echoCheck sends size bytes seeded by seed on conn and checks the echo
// brings the same bytes back.
func echoCheck(ctx context.Context, conn net.Conn, size int, seed uint64) error {
	want := make([]byte, size)
	rng := rand.New(rand.NewPCG(seed, 0x10ad))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	dl := time.Now().Add(20 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = conn.SetDeadline(dl)
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write(want); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got := make([]byte, size)
	if _, err := io.ReadFull(conn, got); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("echo differs from what was sent")
	}
	return nil
}
