package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/tund-project/tund/stack"
)

// tund as a client: `tund dial ADDR:PORT` asks a running tund (through
// its control socket) to open a connection through its stack to a server
// on the kernel side, send some bytes, read what comes, and close in the
// order asked, so the active-open and active-close paths (SYN-SENT,
// FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT on tund's side, or CLOSE-WAIT and
// LAST-ACK when the server closes first) show in tund's own -trace and
// tund ss. The running tund does the work; the command prints what it
// reports, line by line.

// dialRequest is what `tund dial` asks the running tund to do.
type dialRequest struct {
	Addr  string        `json:"addr"`  // the server, ADDR:PORT
	Send  int           `json:"send"`  // bytes to send once connected
	Close string        `json:"close"` // first, second, both or never
	Hold  time.Duration `json:"hold"`  // how long to keep the connection before closing (first, never)
	Wait  time.Duration `json:"wait"`  // how long to wait for the server (connect, its data and FIN)
}

// closeOrders are -close's values and what each does.
var closeOrders = map[string]string{
	"first":  "send, then close: tund's side goes FIN-WAIT-1, FIN-WAIT-2 and, once the server closes, TIME-WAIT",
	"second": "send, then wait for the server to close: tund's side goes CLOSE-WAIT, then LAST-ACK",
	"both":   "close after -hold whatever the server does; against a server that closes at once, over a link with delay (-impair-in delay=50ms), the FINs cross: CLOSING",
	"never":  "send and keep the connection open for -hold, then reset it",
}

// closeOrderHelp lists closeOrders for -close's help.
func closeOrderHelp() string {
	var b strings.Builder
	for _, k := range []string{"first", "second", "both", "never"} {
		fmt.Fprintf(&b, "\n    %s: %s", k, closeOrders[k])
	}
	return b.String()
}

// dialCommand is `tund dial`.
func dialCommand(args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("tund dial", flag.ContinueOnError)
	fs.SetOutput(errOut)
	tunName := fs.String("tun", "tund0", "the TUN device of the tund to ask (sets the default -control)")
	control := fs.String("control", "", "control socket `path` of the running tund (default /run/tund/TUN.sock)")
	send := fs.Int("send", 0, "`bytes` to send once connected")
	order := fs.String("close", "first", "who closes first: "+closeOrderHelp())
	hold := fs.Duration("hold", 0, "keep the connection this long before closing (-close first, both or never)")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for the server: to connect, and for its FIN with -close second")
	fs.Usage = func() {
		fmt.Fprintf(errOut, "usage: tund dial [flags] ADDR:PORT\n\nThe running tund opens a connection through its stack to ADDR:PORT, a server\non the kernel side (e.g. nc -l 198.18.0.1 8080 in tund's namespace).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("dial: want one ADDR:PORT")
	}
	req := dialRequest{Addr: fs.Arg(0), Send: *send, Close: *order, Hold: *hold, Wait: *wait}
	if err := req.check(); err != nil {
		return err
	}
	path := *control
	if path == "" {
		path = defaultControl(*tunName)
	}
	var d net.Dialer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	c, err := d.DialContext(ctx, "unix", path)
	cancel()
	if err != nil {
		return fmt.Errorf("dial: control socket %s: %w (is tund running with it?)", path, err)
	}
	defer c.Close()
	b, _ := json.Marshal(req)
	if _, err := fmt.Fprintf(c, "dial %s\n", b); err != nil {
		return err
	}
	failed := false
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		line := sc.Text()
		failed = strings.HasPrefix(line, "error: ")
		fmt.Fprintln(out, line)
	}
	if failed {
		return errSilentFailure
	}
	return sc.Err()
}

// check validates a request; its errors name the flag and the value.
func (r dialRequest) check() error {
	ap, err := netip.ParseAddrPort(r.Addr)
	if err != nil || ap.Addr().Zone() != "" || ap.Port() == 0 {
		return fmt.Errorf("dial: %q is not an ADDR:PORT such as 198.18.0.1:8080 or [fd00:7:5eed::1]:8080", r.Addr)
	}
	if _, ok := closeOrders[r.Close]; !ok {
		return fmt.Errorf("dial: -close %q: want first, second, both or never", r.Close)
	}
	if r.Send < 0 || r.Send > 1<<30 {
		return fmt.Errorf("dial: -send %d: must be between 0 and 1073741824", r.Send)
	}
	if r.Hold < 0 || r.Wait <= 0 {
		return fmt.Errorf("dial: -hold %v -wait %v: hold must not be negative, wait must be positive", r.Hold, r.Wait)
	}
	return nil
}

// serveDial is the running tund's side of `tund dial`: the control
// command "dial".
func serveDial(st *stack.Stack) stack.ControlCommand {
	return func(ctx context.Context, args string, w io.Writer) error {
		var req dialRequest
		if err := json.Unmarshal([]byte(args), &req); err != nil {
			return fmt.Errorf("bad request: %v", err)
		}
		if err := req.check(); err != nil {
			return err
		}
		say := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
		dctx, cancel := context.WithTimeout(ctx, req.Wait)
		defer cancel()
		nc, err := st.DialContext(dctx, "tcp", req.Addr)
		if err != nil {
			return err
		}
		c := nc.(*stack.Conn)
		say("connected %s → %s (ESTABLISHED)", c.LocalAddr(), c.RemoteAddr())
		// What the server sends is read and counted all along.
		got := make(chan int64, 1)
		readErr := make(chan error, 1)
		go func() {
			n, err := io.Copy(io.Discard, c)
			got <- n
			readErr <- err
		}()
		if req.Close == "both" {
			// After -hold, without a look at what the server did: if
			// its FIN is on its way, the two cross.
			if !sleepCtx(ctx, req.Hold) {
				c.Close()
				return ctx.Err()
			}
			c.Close()
			say("closed without waiting for the server (FIN sent, FIN-WAIT-1): if the server's FIN is on its way, the two cross (CLOSING)")
			return nil
		}
		if req.Send > 0 {
			n, err := c.Write(make([]byte, req.Send))
			if err != nil {
				c.Close()
				return fmt.Errorf("sent %d of %d bytes: %w", n, req.Send, err)
			}
			say("sent %d bytes", n)
		}
		switch req.Close {
		case "first":
			if !sleepCtx(ctx, req.Hold) {
				c.Close()
				return ctx.Err()
			}
			c.Close()
			say("closed first (FIN sent): FIN-WAIT-1, then FIN-WAIT-2 until the server closes, then TIME-WAIT")
		case "second":
			select {
			case n := <-got:
				say("the server closed after %d bytes (its FIN: CLOSE-WAIT); closing (LAST-ACK)", n)
				if err := <-readErr; err != nil {
					say("read: %v", err)
				}
			case <-dctx.Done():
				c.Close()
				return fmt.Errorf("the server did not close within -wait %v", req.Wait)
			}
			c.Close()
		case "never":
			say("holding the connection for %v", req.Hold)
			if !sleepCtx(ctx, req.Hold) {
				c.SetLinger(0)
				c.Close()
				return ctx.Err()
			}
			c.SetLinger(0)
			c.Close()
			say("reset (SO_LINGER 0)")
		}
		return nil
	}
}

// sleepCtx waits d, or until ctx ends (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
