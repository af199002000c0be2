package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tcp"
)

// defaultControl is where tund serves its control socket for device tun.
func defaultControl(tun string) string { return "/run/tund/" + tun + ".sock" }

// ssCommand is `tund ss`: the running stack's connections, like `ss -tan`.
func ssCommand(args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("tund ss", flag.ContinueOnError)
	fs.SetOutput(errOut)
	tunName := fs.String("tun", "tund0", "the TUN device of the tund to ask (sets the default -control)")
	control := fs.String("control", "", "control socket `path` (default /run/tund/TUN.sock)")
	summary := fs.Bool("s", false, "only the count of connections per state")
	info := fs.Bool("i", false, "show TCP internals: mss, cwnd, ssthresh, srtt, rto, retransmits")
	state := fs.String("state", "", "only connections in this `state` (RFC name such as TIME-WAIT, or netstat name such as TIME_WAIT)")
	fs.Usage = func() {
		fmt.Fprintf(errOut, "usage: tund ss [flags]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("ss: unexpected argument %q", fs.Arg(0))
	}
	var want tcp.State
	if *state != "" {
		var ok bool
		if want, ok = parseState(*state); !ok {
			return fmt.Errorf("ss: -state %q: not a TCP state (e.g. ESTABLISHED, CLOSE-WAIT, TIME-WAIT)", *state)
		}
	}
	path := *control
	if path == "" {
		path = defaultControl(*tunName)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var counts map[string]int
	if err := stack.QueryControl(ctx, path, "states", &counts); err != nil {
		return err
	}
	if !*summary {
		var conns []stack.ControlConn
		if err := stack.QueryControl(ctx, path, "connections", &conns); err != nil {
			return err
		}
		if *state != "" {
			kept := conns[:0]
			for _, c := range conns {
				if c.State == want.String() {
					kept = append(kept, c)
				}
			}
			conns = kept
		}
		printConns(out, conns, *info)
	}
	printCounts(out, counts)
	return nil
}

func parseState(s string) (tcp.State, bool) {
	for st := tcp.Closed; st <= tcp.TimeWait; st++ {
		if strings.EqualFold(s, st.String()) || strings.EqualFold(s, st.NetstatName()) {
			return st, true
		}
	}
	return 0, false
}

func printConns(out io.Writer, conns []stack.ControlConn, info bool) {
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprint(tw, "State\tRecv-Q\tSend-Q\tLocal Address:Port\tPeer Address:Port\tTimer")
	if info {
		fmt.Fprint(tw, "\tInfo")
	}
	fmt.Fprintln(tw)
	for _, c := range conns {
		timer := ""
		if c.State == "LISTEN" {
			// Recv-Q and Send-Q are the accept queue and the backlog, as
			// in Linux ss; the SYN queue, which ss does not show, here.
			timer = fmt.Sprintf("syn-queue %d/%d", c.SynQueue, c.SendQ)
		}
		if c.Timer != "" {
			timer = fmt.Sprintf("%s (%v)", c.Timer, (time.Duration(c.TimerLeftMs) * time.Millisecond).String())
		}
		if c.Note != "" {
			timer = strings.TrimSpace(timer + " " + c.Note)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s", c.State, c.RecvQ, c.SendQ, c.Local, c.Remote, timer)
		if info && c.MSS != 0 {
			var opts string
			if c.SACK {
				opts += " sack"
			}
			if c.TS {
				opts += " ts"
			}
			fmt.Fprintf(tw, "\t%s%s mss:%d cwnd:%d ssthresh:%d snd_wnd:%d rcv_wnd:%d rcv_buf:%d snd_buf:%d in_flight:%d srtt:%v rto:%v retrans:%d timeouts:%d recoveries:%d probes:%d dsacks:%d",
				c.CC, opts, c.MSS, c.Cwnd, c.SSThresh, c.SndWnd, c.RcvWnd, c.RcvBuf, c.SndBuf, c.BytesInFlight,
				time.Duration(c.SRTTMicros)*time.Microsecond, time.Duration(c.RTOMicros)*time.Microsecond, c.Retransmits,
				c.Timeouts, c.Recoveries, c.Probes, c.DSACKs)
			if c.LossState != "" {
				// Loss recovery (RFC 8985 RACK, RFC 6937 PRR).
				fmt.Fprintf(tw, " loss:%s reo_wnd:%v rack_rtt:%v min_rtt:%v prr:%d/%d sacked:%d lost:%d undone:%d rto_min:%v",
					c.LossState, time.Duration(c.ReoWndMicros)*time.Microsecond,
					time.Duration(c.RACKRTTMicros)*time.Microsecond, time.Duration(c.MinRTTMicros)*time.Microsecond,
					c.PRRDelivered, c.PRROut, c.SACKed, c.Lost, c.SpuriousUndone,
					time.Duration(c.RTOMinMicros)*time.Microsecond)
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// printCounts prints the count per state, in the order of the RFC's
// diagram, e.g. "Total: 12 (LISTEN 4, ESTABLISHED 1, CLOSE-WAIT 2, TIME-WAIT 5)".
func printCounts(out io.Writer, counts map[string]int) {
	total := 0
	var parts []string
	names := make([]string, 0, len(counts))
	order := map[string]int{}
	for st := tcp.Closed; st <= tcp.TimeWait; st++ {
		order[st.String()] = int(st)
	}
	for name, n := range counts {
		total += n
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return order[names[i]] < order[names[j]] })
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s %d", name, counts[name]))
	}
	fmt.Fprintf(out, "Total: %d (%s)\n", total, strings.Join(parts, ", "))
}
