package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tcp"
)

// runSubcommand runs a subcommand such as `tund stats` on args and
// returns the process's exit code: 0 also for -h, 1 with a one-line
// error on stderr.
func runSubcommand(cmd func(args []string, out, errOut io.Writer) error, args []string) int {
	if err := cmd(args, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err != errSilentFailure {
			fmt.Fprintf(os.Stderr, "tund: %v\n", err)
		}
		return 1
	}
	return 0
}

// statsCommand is `tund stats`: the running stack's counters, one a
// line, then its connections per state, like `netstat -s` for tund.
func statsCommand(args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("tund stats", flag.ContinueOnError)
	fs.SetOutput(errOut)
	tunName := fs.String("tun", "tund0", "the TUN device of the tund to ask (sets the default -control)")
	control := fs.String("control", "", "control socket `path` (default /run/tund/TUN.sock)")
	asJSON := fs.Bool("json", false, `print the raw counters as JSON: {"stats": …, "states": …}`)
	gc := fs.Bool("gc", false, "have tund collect garbage and return free memory to the OS first, so heap bytes (and its RSS) show what is live")
	fs.Usage = func() {
		fmt.Fprintf(errOut, "usage: tund stats [flags]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("stats: unexpected argument %q", fs.Arg(0))
	}
	path := *control
	if path == "" {
		path = defaultControl(*tunName)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var raw struct {
		Stats  json.RawMessage `json:"stats"`
		States json.RawMessage `json:"states"`
	}
	cmd := "stats"
	if *gc {
		cmd = "gc"
	}
	if err := stack.QueryControl(ctx, path, cmd, &raw.Stats); err != nil {
		return err
	}
	if err := stack.QueryControl(ctx, path, "states", &raw.States); err != nil {
		return err
	}
	if *asJSON {
		b, err := json.MarshalIndent(raw, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	var st stack.Stats
	var counts map[string]int
	if err := json.Unmarshal(raw.Stats, &st); err != nil {
		return fmt.Errorf("stats: control socket %s: %v", path, err)
	}
	if err := json.Unmarshal(raw.States, &counts); err != nil {
		return fmt.Errorf("stats: control socket %s: %v", path, err)
	}
	printStats(out, st, counts)
	// The forwarder's counters, from a tund that forwards (an older one
	// does not know the command: nothing to print).
	var fw forwardCounts
	if err := stack.QueryControl(ctx, path, "forwards", &fw); err == nil && fw.Conns+fw.Refused+fw.Failed > 0 {
		fmt.Fprintln(out, "forwarding (-forward, -forward-out):")
		for _, c := range []struct {
			name string
			v    any
		}{
			{"connections joined", fw.Conns}, {"open now", fw.Active},
			{"bytes to targets", fw.ToTarget}, {"bytes to clients", fw.ToClient},
			{"targets refused", fw.Refused}, {"targets unreachable", fw.Failed}, {"resets carried", fw.Resets},
			{"peers gone silent", fw.Lost},
		} {
			fmt.Fprintf(out, "  %-24s %12v\n", c.name, c.v)
		}
	}
	return nil
}

// printStats prints the counters one per line, the drops by reason in
// alphabetical order and the connections per state in the order of the
// RFC 9293 diagram.
func printStats(out io.Writer, st stack.Stats, counts map[string]int) {
	line := func(name string, v any) { fmt.Fprintf(out, "%-26s %12v\n", name, v) }
	for _, c := range []struct {
		name string
		v    uint64
	}{
		{"packets in", st.PacketsIn},
		{"packets out", st.PacketsOut},
		{"segments in", st.SegmentsIn},
		{"segments out", st.SegmentsOut},
		{"super-segments in", st.SuperSegmentsIn},
		{"super-segments out", st.SuperSegmentsOut},
		{"retransmitted segments", st.Retransmits},
		{"retransmission timeouts", st.Timeouts},
		{"fast recoveries", st.Recoveries},
		{"tail loss probes", st.Probes},
		{"D-SACKs received", st.DSACKs},
		{"spurious recoveries undone", st.Spurious},
		{"resets sent", st.ResetsSent},
		{"echo replies", st.EchoReplies},
		{"ICMP errors sent", st.ICMPErrorsSent},
		{"ICMP errors rate-limited", st.ICMPErrorsLimited},
		{"active opens", st.ActiveOpens},
		{"passive opens", st.PassiveOpens},
		{"device write errors", st.WriteErrors},
		{"SYN cookies sent", st.SynCookiesSent},
		{"SYN cookies valid", st.SynCookiesValid},
		{"half-open evicted", st.HalfOpenEvicted},
		{"TIME-WAIT expired", st.TimeWaitExpired},
		{"TIME-WAIT reused", st.TimeWaitReused},
		{"ICMP errors", st.ICMPErrors},
	} {
		line(c.name, c.v)
	}
	if len(st.QueuePacketsIn) > 1 {
		q := make([]string, len(st.QueuePacketsIn))
		for i, n := range st.QueuePacketsIn {
			q[i] = strconv.FormatUint(n, 10)
		}
		fmt.Fprintf(out, "%-26s %12s\n", "packets in by queue", strings.Join(q, " "))
	}
	line("heap bytes", st.HeapBytes)
	line("goroutines", st.Goroutines)
	fmt.Fprintln(out, "limits (now / cap, and how often hit):")
	lim := st.Limits
	for _, l := range []struct {
		name      string
		now, cap  any
		hit       uint64
		hitReason string
	}{
		{"connections", st.Connections, lim.MaxConnections, st.ConnLimitHit, "refused"},
		{"orphans", st.Orphans, lim.MaxOrphans, st.OrphanOverflow, "reset at close"},
		{"TIME-WAIT entries", st.TimeWait, lim.MaxTimeWait, st.TimeWaitOverflow, "closed without"},
		{"ring memory (bytes)", st.MemoryUsed, lim.MemLimit, st.MemoryRefused, "growth refused"},
	} {
		fmt.Fprintf(out, "  %-24s %12v / %-12v %d %s\n", l.name, l.now, l.cap, l.hit, l.hitReason)
	}
	line("  memory pressure", fmt.Sprintf("%s (began %d times)", st.MemoryPressure, st.MemoryPressureEvents))
	line("  ACKs rate-limited", st.AcksRateLimited)
	line("  queued for a busy conn", st.BacklogQueued)
	fmt.Fprintln(out, "drops by reason:")
	reasons := make([]string, 0, len(st.Drops))
	var dropped uint64
	for r, n := range st.Drops {
		reasons = append(reasons, r)
		dropped += n
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		line("  "+r, st.Drops[r])
	}
	line("  total", dropped)
	fmt.Fprintln(out, "connections by state:")
	total := 0
	for s := tcp.Closed; s <= tcp.TimeWait; s++ {
		if n := counts[s.String()]; n > 0 {
			line("  "+s.String(), n)
			total += n
		}
	}
	line("  total", total)
}
