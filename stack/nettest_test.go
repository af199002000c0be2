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
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		a, b := pipePair(t, 1500)
		l, err := b.Listen("tcp", ":0")
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
		c1, err = a.Dial("tcp", l.Addr().String())
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
