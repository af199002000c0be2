// Command upload measures upload throughput into a stack: it connects to a
// discard service (RFC 863: tund's port 9, or scripts/gvisorhttp's), writes
// N bytes as fast as it can, half-closes, and waits for the server to close
// in turn (it does once it has read everything), so the time covers every
// byte delivered to the server's application. scripts/bench.sh runs it
// inside the benchmark's namespace, next to nc doing the same.
//
//	upload -addr 198.18.0.2:9 -bytes 1073741824
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// result is what one upload measured.
type result struct {
	Bytes   int64         `json:"bytes"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Gbps    float64       `json:"gbit_per_second"`
}

func main() {
	addr := flag.String("addr", "198.18.0.2:9", "discard service `address`")
	n := flag.Int64("bytes", 1<<30, "bytes to send (1..2^40)")
	chunk := flag.Int("chunk", 256<<10, "bytes per write (1..16 MiB)")
	limit := flag.Duration("limit", 60*time.Second, "give up after this long")
	asJSON := flag.Bool("json", false, "print the result as one JSON object")
	flag.Parse()
	if *n < 1 || *n > 1<<40 || *chunk < 1 || *chunk > 16<<20 {
		fail(fmt.Errorf("need 1 <= -bytes <= 2^40 and 1 <= -chunk <= 16 MiB"))
	}
	r, err := upload(*addr, *n, *chunk, *limit)
	if err != nil {
		fail(err)
	}
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Printf("upload: %d bytes in %v: %.2f Gbit/s\n", r.Bytes, r.Elapsed.Round(time.Millisecond), r.Gbps)
}

// upload sends n bytes to addr in writes of chunk bytes, half-closes and
// waits for the server's FIN, within limit.
func upload(addr string, n int64, chunk int, limit time.Duration) (result, error) {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	if err := c.SetDeadline(start.Add(limit)); err != nil {
		return result{}, err
	}
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	for left := n; left > 0; {
		k, err := c.Write(buf[:min(left, int64(len(buf)))])
		left -= int64(k)
		if err != nil {
			return result{}, fmt.Errorf("write, %d of %d bytes sent: %w", n-left, n, err)
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return result{}, err
	}
	// The discard server closes once it has read our FIN: its FIN means
	// every byte reached it.
	if extra, err := io.Copy(io.Discard, c); err != nil || extra != 0 {
		return result{}, fmt.Errorf("waiting for the server to close: %d bytes back, %v", extra, err)
	}
	r := result{Bytes: n, Elapsed: time.Since(start)}
	r.Gbps = float64(n) * 8 / r.Elapsed.Seconds() / 1e9
	return r, nil
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "upload: %v\n", err)
	os.Exit(1)
}
