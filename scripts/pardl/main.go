// Command pardl runs parallel HTTP downloads against GET /bytes/N (tund's
// service, or scripts/gvisorhttp's copy of it) and measures how the flows
// share the link: every flow asks for far more than it can get, all of
// them read as fast as they can, and after a warm-up the bytes each flow
// received in one common window give its rate. It prints the aggregate
// rate and Jain's fairness index of the per-flow rates, then closes every
// connection. scripts/bench.sh runs it inside the benchmark's namespace.
//
//	pardl -addr 198.18.0.2:80 -flows 32 -warmup 1s -window 5s
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// result is what one run measured.
type result struct {
	Flows  int           `json:"flows"`
	Window time.Duration `json:"window_ns"`
	// Rates are the flows' rates in the window, bits per second, sorted.
	Rates []float64 `json:"rates_bps"`
	Gbps  float64   `json:"aggregate_gbit_per_second"`
	Jain  float64   `json:"jain"`
	// Failed counts flows that ended (error or EOF) before the window
	// closed; their bytes up to then still count.
	Failed int      `json:"failed"`
	Errors []string `json:"errors,omitempty"`
}

func main() {
	addr := flag.String("addr", "198.18.0.2:80", "HTTP service `address`")
	flows := flag.Int("flows", 32, "parallel downloads (1..1024)")
	size := flag.Int64("size", 1<<34, "bytes each flow asks for (more than it can get in the time)")
	warmup := flag.Duration("warmup", time.Second, "run this long before the window opens (slow start, connection setup)")
	window := flag.Duration("window", 5*time.Second, "measure the bytes each flow receives during this long")
	limit := flag.Duration("limit", 60*time.Second, "give up after this long in all")
	asJSON := flag.Bool("json", false, "print the result as one JSON object")
	flag.Parse()
	if *flows < 1 || *flows > 1024 || *window <= 0 || *warmup < 0 || *limit < *warmup+*window {
		fmt.Fprintln(os.Stderr, "pardl: need 1 <= -flows <= 1024, -window > 0, -warmup >= 0, -limit >= warmup+window")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *limit)
	defer cancel()
	r, err := run(ctx, *addr, *flows, *size, *warmup, *window)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pardl: %v\n", err)
		os.Exit(1)
	}
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Printf("pardl: %d flows, %v window: %.2f Gbit/s in all, Jain's fairness %.3f, per flow %.0f..%.0f Mbit/s, %d ended early\n",
		r.Flows, r.Window, r.Gbps, r.Jain, r.Rates[0]/1e6, r.Rates[len(r.Rates)-1]/1e6, r.Failed)
}

// run starts the flows, waits until every one has its response headers
// (or the warm-up is over, whichever is later), measures the window and
// closes them all.
func run(ctx context.Context, addr string, flows int, size int64, warmup, window time.Duration) (result, error) {
	r := result{Flows: flows, Window: window}
	counts := make([]atomic.Int64, flows)
	var started sync.WaitGroup
	started.Add(flows)
	var mu sync.Mutex
	var conns []net.Conn
	var ended atomic.Int64
	fail := func(err error) {
		mu.Lock()
		if len(r.Errors) < 8 {
			r.Errors = append(r.Errors, err.Error())
		}
		mu.Unlock()
	}
	var d net.Dialer
	var wg sync.WaitGroup
	for i := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			once := sync.OnceFunc(started.Done)
			defer once()
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				ended.Add(1)
				fail(err)
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if err := download(c, size, &counts[i], once); err != nil && ctx.Err() == nil {
				ended.Add(1)
				fail(err)
			}
		}()
	}
	// Every flow connected and answered (or failed), then the warm-up.
	done := make(chan struct{})
	go func() { started.Wait(); close(done) }()
	warm := time.NewTimer(warmup)
	select {
	case <-done:
	case <-ctx.Done():
	}
	select {
	case <-warm.C:
	case <-ctx.Done():
	}
	before := snapshot(counts)
	endedBefore := ended.Load()
	t0 := time.Now()
	select {
	case <-time.After(window):
	case <-ctx.Done():
	}
	elapsed := time.Since(t0)
	after := snapshot(counts)
	r.Failed = int(ended.Load())
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("did not finish in time: %w", err)
	}
	if endedBefore == int64(flows) {
		return r, fmt.Errorf("every flow failed before the window: %v", r.Errors)
	}
	r.Window = elapsed
	r.Rates = make([]float64, flows)
	var sum float64
	for i := range flows {
		r.Rates[i] = float64(after[i]-before[i]) * 8 / elapsed.Seconds()
		sum += r.Rates[i]
	}
	slices.Sort(r.Rates)
	r.Gbps = sum / 1e9
	r.Jain = jain(r.Rates)
	return r, nil
}

// download sends GET /bytes/size on c, calls started once the response
// headers are in, and then counts the body bytes into n until the
// connection ends.
func download(c net.Conn, size int64, n *atomic.Int64, started func()) error {
	if _, err := fmt.Fprintf(c, "GET /bytes/%d HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", size); err != nil {
		return err
	}
	br := bufio.NewReaderSize(c, 256<<10)
	status, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200 ") {
		return fmt.Errorf("status %q", strings.TrimSpace(status))
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("read header: %w", err)
		}
		if strings.TrimSpace(line) == "" {
			break
		}
	}
	started()
	buf := make([]byte, 256<<10)
	for {
		k, err := br.Read(buf)
		n.Add(int64(k))
		if errors.Is(err, io.EOF) {
			return errors.New("server ended the body early")
		}
		if err != nil {
			return err
		}
	}
}

func snapshot(counts []atomic.Int64) []int64 {
	s := make([]int64, len(counts))
	for i := range counts {
		s[i] = counts[i].Load()
	}
	return s
}

// jain is Jain's fairness index of x: (Σx)² / (n·Σx²). It is 1 when every
// x is the same and 1/n when one takes everything; 0 for no data.
func jain(x []float64) float64 {
	var sum, sq float64
	for _, v := range x {
		sum += v
		sq += v * v
	}
	if sq == 0 {
		return 0
	}
	return sum * sum / (float64(len(x)) * sq)
}
