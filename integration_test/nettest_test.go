package integration

import (
	"net"
	"testing"

	"golang.org/x/net/nettest"
)

// TestNetTestConnStackToKernel runs x/net/nettest's net.Conn conformance
// suite on a stack connection whose peer is a kernel socket through the
// TUN device: the stack dials a kernel listener in the namespace.
func TestNetTestConnStackToKernel(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	st := startLibraryStack(t, ns)
	kl := nsListen(t, ns, hostAddr+":0")
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := kl.Accept()
			if err != nil {
				accepted <- nil
				return
			}
			accepted <- c
		}()
		c1, err = st.Dial("tcp", kl.Addr().String())
		if err != nil {
			return nil, nil, nil, err
		}
		c2 = <-accepted
		stop = func() {
			c1.Close()
			if c2 != nil {
				c2.Close()
			}
		}
		return c1, c2, stop, nil
	})
}
