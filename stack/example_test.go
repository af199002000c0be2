package stack_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tun"
)

// Two stacks joined by an in-memory link: no root, no TUN device. With a
// real device, pass tun.Open's result instead of a Pipe end.
func twoStacks() (client, server *stack.Stack) {
	a, b := tun.Pipe(1500)
	client, _ = stack.New(a, stack.Config{Addr: netip.MustParseAddr("10.0.0.1")})
	server, _ = stack.New(b, stack.Config{Addr: netip.MustParseAddr("10.0.0.2")})
	return client, server
}

// Listen and Accept like net.Listen: an echo server.
func ExampleStack_Listen() {
	client, server := twoStacks()
	defer client.Close()
	defer server.Close()

	l, _ := server.Listen("tcp", ":7")
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c) // echo
			}()
		}
	}()

	c, _ := client.Dial("tcp", "10.0.0.2:7")
	defer c.Close()
	c.Write([]byte("hello, tund"))
	c.(*stack.Conn).CloseWrite() // half-close: the echo ends with EOF
	reply, _ := io.ReadAll(c)
	fmt.Printf("%s\n", reply)
	// Output: hello, tund
}

// DialContext honours the context: a dial to a port nobody listens on is
// refused at once (the peer answers the SYN with an RST).
func ExampleStack_DialContext() {
	client, server := twoStacks()
	defer client.Close()
	defer server.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := client.DialContext(ctx, "tcp", "10.0.0.2:9999")
	fmt.Println(errors.Is(err, syscall.ECONNREFUSED))
	// Output: true
}

// net/http works on both sides: an http.Server on a stack listener, and
// an http.Client whose transport dials through the other stack.
func Example_http() {
	client, server := twoStacks()
	defer client.Close()
	defer server.Close()

	l, _ := server.Listen("tcp", ":80")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from a userspace TCP stack")
	})}
	go srv.Serve(l)
	defer srv.Close()

	hc := &http.Client{Transport: &http.Transport{DialContext: client.DialContext}}
	resp, err := hc.Get("http://10.0.0.2/")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, string(body))
	// Output: 200 OK hello from a userspace TCP stack
}
