package stack

import (
	"net"
	"testing"

	"golang.org/x/net/nettest"
)

// TestNetTestConn runs golang.org/x/net/nettest's conformance suite for
// net.Conn (basic I/O, ping-pong, racing reads and writes, closes and
// deadlines, deadlines moved while calls block) on connections between
// two stacks over tun.Pipe.
func TestNetTestConn(t *testing.T) {
	netTest(t, "tcp", func() (a, b *Stack) { return pipePair(t, 1500) })
}

// TestNetTestConnIPv6 runs the suite over IPv6 connections.
func TestNetTestConnIPv6(t *testing.T) {
	netTest(t, "tcp6", func() (a, b *Stack) { return dualPair(t, 1500, nil) })
}

// netTest runs nettest.TestConn on connections of network from a to b,
// a new pair of stacks for each.
func netTest(t *testing.T, network string, pair func() (a, b *Stack)) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		a, b := pair()
		l, err := b.Listen(network, ":0")
		if err != nil {
			return nil, nil, nil, err
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				accepted <- nil
				return
			}
			accepted <- c
		}()
		c1, err = a.Dial(network, l.Addr().String())
		if err != nil {
			return nil, nil, nil, err
		}
		c2 = <-accepted
		stop = func() {
			c1.Close()
			if c2 != nil {
				c2.Close()
			}
			l.Close()
		}
		return c1, c2, stop, nil
	})
}
