// Command echolat measures request/response latency against an echo
// server: it sends a small message, waits for it to come back, and repeats
// a bounded number of times, then prints percentiles. scripts/bench.sh
// runs it inside the benchmark's network namespace.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"
)

func main() {
	addr := flag.String("addr", "198.18.0.2:7", "echo server `address`")
	n := flag.Int("n", 10000, "round trips (1..1000000)")
	size := flag.Int("size", 64, "message size in bytes (1..65536)")
	limit := flag.Duration("limit", 30*time.Second, "stop after this long even if fewer round trips were done")
	asJSON := flag.Bool("json", false, "print the result as one JSON object (microseconds)")
	flag.Parse()
	if *n < 1 || *n > 1000000 {
		fail(fmt.Errorf("-n %d: must be 1..1000000", *n))
	}
	if *size < 1 || *size > 65536 {
		fail(fmt.Errorf("-size %d: must be 1..65536", *size))
	}
	c, err := net.DialTimeout("tcp", *addr, 5*time.Second)
	if err != nil {
		fail(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)
	msg := bytes.Repeat([]byte{'x'}, *size)
	buf := make([]byte, *size)
	rtts := make([]time.Duration, 0, *n)
	deadline := time.Now().Add(*limit)
	for i := 0; i < *n && time.Now().Before(deadline); i++ {
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			fail(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			fail(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	p := func(q float64) time.Duration { return rtts[int(q*float64(len(rtts)-1))] }
	if *asJSON {
		us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
		_ = json.NewEncoder(os.Stdout).Encode(map[string]any{
			"n": len(rtts), "size": *size,
			"p50_us": us(p(0.5)), "p90_us": us(p(0.9)), "p99_us": us(p(0.99)), "max_us": us(rtts[len(rtts)-1]),
		})
		return
	}
	fmt.Printf("echo round trips: %d x %d bytes  p50 %v  p90 %v  p99 %v  max %v\n",
		len(rtts), *size, p(0.5), p(0.9), p(0.99), rtts[len(rtts)-1])
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "echolat: %v\n", err)
	os.Exit(1)
}
