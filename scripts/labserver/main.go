// Command labserver is the kernel-side server of tund's labs
// (scripts/labs): a plain kernel TCP listener that closes each connection
// the way a lab needs, so tund's side of the diagram shows the path the
// lab is about. It serves one connection at a time, -n in all.
//
//	labserver -listen 198.18.0.1:8080 -close after-eof -linger 1s
//
// Close orders (-close):
//
//	after-eof  read until the client's FIN, wait -linger, then close: the
//	           client sees FIN-WAIT-2 for -linger, then TIME-WAIT
//	at-once    close the moment the connection is accepted (after sending
//	           -send bytes): the server closes first
//	never      read until the client's FIN and keep the connection open
//	           for -linger, then close (the client's FIN-WAIT-2 lasts)
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "198.18.0.1:8080", "`address` to listen on (inside the lab's namespace)")
	order := flag.String("close", "after-eof", "when to close: after-eof, at-once or never")
	linger := flag.Duration("linger", time.Second, "how long to wait before closing (after-eof, never)")
	send := flag.Int("send", 0, "`bytes` to send on each connection before anything else")
	n := flag.Int("n", 1, "connections to serve, one at a time (1..1000)")
	flag.Parse()
	if *order != "after-eof" && *order != "at-once" && *order != "never" {
		fmt.Fprintf(os.Stderr, "labserver: -close %q: want after-eof, at-once or never\n", *order)
		os.Exit(2)
	}
	if *n < 1 || *n > 1000 || *send < 0 || *send > 1<<30 || *linger < 0 || *linger > time.Minute {
		fmt.Fprintln(os.Stderr, "labserver: -n must be 1..1000, -send 0..1G, -linger 0..1m")
		os.Exit(2)
	}
	l, err := net.Listen("tcp4", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "labserver: %v\n", err)
		os.Exit(1)
	}
	defer l.Close()
	for range *n {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintf(os.Stderr, "labserver: %v\n", err)
			os.Exit(1)
		}
		serve(c, *order, *linger, *send)
	}
}

// serve handles one connection and closes it as order says.
func serve(c net.Conn, order string, linger time.Duration, send int) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute)) // bounded, whatever the client does
	if send > 0 {
		if _, err := c.Write(make([]byte, send)); err != nil {
			return
		}
	}
	if order == "at-once" {
		return
	}
	_, _ = io.Copy(io.Discard, c)
	time.Sleep(linger)
}
