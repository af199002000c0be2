package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// churnResult is what `load churn` measured.
type churnResult struct {
	Mode     string        `json:"mode"`
	N        int           `json:"n"`
	Dialers  int           `json:"dialers"`
	Size     int           `json:"size"`
	Done     int           `json:"done"` // requests whose body came back complete and right
	Elapsed  time.Duration `json:"elapsed_ns"`
	Rate     float64       `json:"per_second"`
	Dial     latencies     `json:"dial"`
	Errors   errorTally    `json:"errors"`
	Retrans  uint64        `json:"kernel_syn_retrans"`
	Link     uint64        `json:"link_drops"` // packets the TUN device's queue dropped
	Before   tundSample    `json:"before"`
	Peak     tundSample    `json:"peak"` // the largest RSS seen while churning (and the rest of that sample)
	End      tundSample    `json:"end"`  // right after the last request
	Settle   tundSample    `json:"settled"`
	SettleIn time.Duration `json:"settle_ns"` // from End until TIME-WAIT was empty (0: not waited for)
	Settled  bool          `json:"settled_ok"`
}

// runChurn makes n short connections at full speed: each asks tund's
// HTTP service for /bytes/SIZE with Connection: close, checks the body,
// and is closed by tund first, so tund holds the TIME-WAIT. Then it waits
// (bounded) until tund's TIME-WAIT table is empty again and samples tund
// once more, to compare with the baseline.
func runChurn(args []string) error {
	var c common
	fs := c.newFlags("churn", 5*time.Minute)
	addr := fs.String("addr", "198.18.0.2:80", "tund's HTTP service `address`")
	n := fs.Int("n", 100000, "connections, one request each (1..1000000)")
	dialers := fs.Int("dialers", 32, "concurrent clients (1..1024)")
	size := fs.Int("size", 100, "body bytes per request (0..65536)")
	settle := fs.Duration("settle", 0, "afterwards wait up to this long for tund's TIME-WAIT table to empty (needs -control), then sample tund again")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := errors.Join(inRange("n", *n, 1, 1000000), inRange("dialers", *dialers, 1, 1024), inRange("size", *size, 0, 65536)); err != nil {
		return err
	}
	if *settle > 0 && c.control == "" {
		return fmt.Errorf("-settle needs -control")
	}
	want := bytes.Repeat([]byte("tund "), *size/5+1)[:*size] // what tund's /bytes/N sends
	request := fmt.Sprintf("GET /bytes/%d HTTP/1.1\r\nHost: tund\r\nConnection: close\r\n\r\n", *size)

	ctx, cancel := context.WithTimeout(context.Background(), c.limit)
	defer cancel()
	r := churnResult{Mode: "churn", N: *n, Dialers: *dialers, Size: *size}
	r.Before = c.mustSample(true)
	r.Peak = r.Before
	retrans0, link0 := kernelSynRetrans(), tunDrops(c.dev)

	// Watch tund's memory while the churn runs.
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopWatch:
				return
			case <-t.C:
				if s, err := c.sample(false); err == nil && s.RSS >= r.Peak.RSS {
					r.Peak = s
				}
			}
		}
	}()

	var mu sync.Mutex
	var done atomic.Int64
	lat := make([]time.Duration, *n)
	d := net.Dialer{Timeout: 20 * time.Second}
	start := time.Now()
	parallel(*dialers, *n, func(i int) {
		if ctx.Err() != nil {
			return
		}
		t0 := time.Now()
		conn, err := d.DialContext(ctx, "tcp", *addr)
		lat[i] = time.Since(t0)
		if err == nil {
			err = httpCheck(conn, request, want)
			conn.Close()
		}
		if err != nil {
			mu.Lock()
			r.Errors.add(err)
			mu.Unlock()
			return
		}
		done.Add(1)
	})
	r.Elapsed = time.Since(start)
	close(stopWatch)
	<-watched
	r.Done = int(done.Load())
	r.Rate = float64(r.Done) / r.Elapsed.Seconds()
	r.Retrans, r.Link = kernelSynRetrans()-retrans0, tunDrops(c.dev)-link0
	r.Dial = summarize(lat)
	r.End = c.mustSample(false)

	if *settle > 0 {
		t0 := time.Now()
		deadline := t0.Add(*settle)
		for {
			s := c.mustSample(false)
			if s.TimeWait == 0 || time.Now().After(deadline) {
				r.SettleIn, r.Settled = time.Since(t0), s.TimeWait == 0
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		// Connections that just left TIME-WAIT, and the goroutines that
		// served them, are garbage or gone a moment later.
		time.Sleep(time.Second)
		r.Settle = c.mustSample(true)
	}

	return emit(c.asJSON, r, func(w io.Writer) {
		fmt.Fprintf(w, "churn: %d of %d short connections (GET /bytes/%d, tund closes first) by %d clients in %v: %.0f connections/s\n",
			r.Done, r.N, r.Size, r.Dialers, r.Elapsed.Round(time.Millisecond), r.Rate)
		fmt.Fprintf(w, "  dial: %v; kernel SYN retransmissions %d; tund dropped %d SYNs (accept queue full) and %d (SYN queue full); TUN queue drops %d\n",
			r.Dial, r.Retrans, r.End.BacklogFull-r.Before.BacklogFull, r.End.SynQueueFull-r.Before.SynQueueFull, r.Link)
		fmt.Fprintf(w, "  tund TIME-WAIT %d at the end (%d tuples reopened by a new SYN)\n", r.End.TimeWait, r.End.TimeWaitReused-r.Before.TimeWaitReused)
		if r.Errors.Count > 0 {
			fmt.Fprintf(w, "  errors: %d %v\n", r.Errors.Count, r.Errors.Kinds)
		}
		row := func(name string, s tundSample) {
			fmt.Fprintf(w, "  %-22s RSS %-10s heap %-10s goroutines %d\n", name, mib(s.RSS), mib(s.Heap), s.Goroutines)
		}
		row("tund before:", r.Before)
		row("peak while churning:", r.Peak)
		row("at the end:", r.End)
		if *settle > 0 {
			if r.Settled {
				row(fmt.Sprintf("TIME-WAIT empty (+%v):", r.SettleIn.Round(time.Second)), r.Settle)
			} else {
				row(fmt.Sprintf("TIME-WAIT NOT empty after %v:", r.SettleIn.Round(time.Second)), r.Settle)
			}
		}
	})
}

// httpCheck sends request on conn, reads the response to the end (tund
// closes the connection after it) and checks it is a 200 whose body is
// want.
func httpCheck(conn net.Conn, request string, want []byte) error {
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200 ") {
		return fmt.Errorf("status %q", strings.TrimSpace(status))
	}
	length := -1
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("read header: %w", err)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(strings.ToLower(line), "content-length:"); ok {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if length != len(want) {
		return fmt.Errorf("Content-Length %d, want %d", length, len(want))
	}
	body, err := io.ReadAll(br)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if !bytes.Equal(body, want) {
		return fmt.Errorf("body of %d bytes differs from tund's pattern", len(body))
	}
	return nil
}
