package integration

import (
	"net"
	"testing"

	"golang.org/x/net/nettest"

	"github.com/tund-project/tund/stack"
)

// TestNetTestConnStackToKernel runs x/net/nettest's net.Conn conformance
// suite on a stack connection whose peer is a kernel socket through the
// TUN device: the stack dials a kernel listener in the namespace.
func TestNetTestConnStackToKernel(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	st := startLibraryStack(t, ns)
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) { netTestTo(t, ns, st, f) })
	}
}

// netTestTo runs the suite with the kernel listening on its address of
// family f.
func netTestTo(t *testing.T, ns string, st *stack.Stack, f ipFamily) {
	kl := nsListen(t, ns, f.hostAt(0))
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
