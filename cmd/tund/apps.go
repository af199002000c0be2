package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tund-project/tund/stack"
)

// Misbehaving applications, on demand (-app PORT=KIND[,OPTION=VALUE]...):
// each is a listener on the stack whose application does one of the
// things that make the classic TCP state stories happen, so a learner can
// watch them with -trace and tund ss instead of writing a program.
//
//	never-close   accepts, never reads, never closes: when the client
//	              closes, the connection sits in CLOSE-WAIT for good (the
//	              leak of a server that forgets to close), and what the
//	              client sent sits unread in Recv-Q
//	never-accept  listens but never accepts: the accept queue fills up to
//	              the backlog, then the SYN queue; later clients' SYNs are
//	              dropped and they sit in SYN-SENT, retrying
//	slow-read     reads rate bytes a second (rate=2K): the receive window
//	              closes, the sender's persist timer probes it
//	reset         accepts and closes at once with SO_LINGER 0: an RST
//	              instead of a FIN (ECONNRESET at the client)
//	half-close    accepts, sends a line and shuts down its sending side
//	              (a FIN: the client sees EOF but may still send), then
//	              reads until the client's FIN and closes
//
// Every kind takes backlog=N, the listener's own backlog (the default is
// -backlog's).

// appKinds are the kinds -app knows, with what each does, for the help.
var appKinds = map[string]string{
	"never-close":  "accept, never read or close (CLOSE-WAIT leak)",
	"never-accept": "listen, never accept (accept queue, then SYN queue, fill)",
	"slow-read":    "read rate=BYTES a second (zero window, persist probes)",
	"reset":        "accept and close with SO_LINGER 0 (RST, not FIN)",
	"half-close":   "accept, send a line, shut down writing, read to EOF",
}

// app is one -app: a port and what its application does.
type app struct {
	port    int
	kind    string
	backlog int // 0: the stack's default
	rate    int // slow-read: bytes a second
}

// String is the -app value that makes a.
func (a app) String() string {
	s := fmt.Sprintf("%d=%s", a.port, a.kind)
	if a.backlog != 0 {
		s += fmt.Sprintf(",backlog=%d", a.backlog)
	}
	if a.kind == "slow-read" {
		s += fmt.Sprintf(",rate=%d", a.rate)
	}
	return s
}

// reservedPorts are the built-in services'.
var reservedPorts = map[int]string{7: "echo", 9: "discard", 19: "chargen", 80: "http"}

// parseApp parses one -app value: PORT=KIND[,backlog=N][,rate=SIZE].
func parseApp(v string) (app, error) {
	bad := func(why string) (app, error) { return app{}, fmt.Errorf("-app %q: %s", v, why) }
	portStr, rest, ok := strings.Cut(v, "=")
	if !ok {
		return bad("want PORT=KIND, e.g. 8001=never-close")
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return bad("the port must be a number between 1 and 65535")
	}
	if svc, taken := reservedPorts[port]; taken {
		return bad(fmt.Sprintf("port %d is the %s service's", port, svc))
	}
	parts := strings.Split(rest, ",")
	a := app{port: port, kind: parts[0]}
	if _, known := appKinds[a.kind]; !known {
		kinds := make([]string, 0, len(appKinds))
		for k := range appKinds {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		return bad("unknown kind; want one of " + strings.Join(kinds, ", "))
	}
	for _, opt := range parts[1:] {
		key, val, _ := strings.Cut(opt, "=")
		switch key {
		case "backlog":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 65535 {
				return bad("backlog must be between 1 and 65535")
			}
			a.backlog = n
		case "rate":
			if a.kind != "slow-read" {
				return bad("rate= is for slow-read")
			}
			n, err := parseBytes(val, 1, 1<<30, "100, 2K or 1M", "1 and 1G")
			if err != nil {
				return bad("rate: " + err.Error())
			}
			a.rate = int(n)
		default:
			return bad(fmt.Sprintf("unknown option %q; want backlog=N or, for slow-read, rate=SIZE", key))
		}
	}
	if a.kind == "slow-read" && a.rate == 0 {
		a.rate = 1 << 10
	}
	return a, nil
}

// appList is -app's flag.Value: every -app given, in order.
type appList []app

func (l *appList) String() string {
	s := make([]string, len(*l))
	for i, a := range *l {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

func (l *appList) Set(v string) error {
	a, err := parseApp(v)
	if err != nil {
		return err
	}
	for _, b := range *l {
		if b.port == a.port {
			return fmt.Errorf("-app %q: port %d is already -app %s", v, a.port, b)
		}
	}
	*l = append(*l, a)
	return nil
}

// startApp listens on a's port and runs its application; backlog is
// the listener's unless a has its own.
func startApp(st *stack.Stack, a app, backlog int, log *slog.Logger) error {
	if a.backlog != 0 {
		backlog = a.backlog
	}
	l, err := st.ListenBacklog("tcp", fmt.Sprintf(":%d", a.port), backlog)
	if err != nil {
		return fmt.Errorf("-app %s: %w", a, err)
	}
	if a.kind == "never-accept" {
		// The listener stays open (the stack closes it on shutdown) and
		// nobody calls Accept.
		return nil
	}
	var handle func(*stack.Conn)
	switch a.kind {
	case "never-close":
		// Nothing at all: the stack's table keeps the connection, the
		// application forgets it (and shutdown ends it).
		handle = func(*stack.Conn) {}
	case "slow-read":
		handle = onGoroutine(func(c net.Conn) { slowRead(c, a.rate) })
	case "reset":
		handle = func(c *stack.Conn) {
			_ = c.SetLinger(0)
			_ = c.Close()
		}
	case "half-close":
		handle = onGoroutine(halfClose)
	}
	go serve(l, "app "+a.kind, log, handle)
	return nil
}

// slowRead reads rate bytes a second, in ten portions, until EOF.
func slowRead(c net.Conn, rate int) {
	step := max(rate/10, 1)
	buf := make([]byte, step)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
	}
}

// halfClose sends a line, shuts down its sending side and reads until the
// client's FIN.
func halfClose(c net.Conn) {
	if _, err := io.WriteString(c, "bye for now: this side is done sending, but still reading\n"); err != nil {
		return
	}
	_ = c.(*stack.Conn).CloseWrite()
	_, _ = io.Copy(io.Discard, c)
}
