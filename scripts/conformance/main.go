// Command conformance runs TCP test suites this project did not write
// against tund, through the drill package (packetdrill scripts in virtual
// time), and writes docs/conformance.md: for every script pass, fail or
// unsupported, and for every failure why — a deliberate difference (with
// the rule that allows it) or a gap in the runner. tund bugs the suites
// found are fixed and listed with their tests. scripts/conformance.sh
// runs it on checkouts of the suites, which are never copied here.
package main

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/tund-project/tund/drill"
)

// suite is a set of scripts from one test suite.
type suite struct {
	name  string
	root  string   // the checkout
	dirs  []string // directories under root, searched recursively
	match func(path string) bool
	// target, if set, is the pass rate the project aims for (lenient).
	target float64
}

// rule explains a failure or an unsupported script.
type rule struct {
	path, reason *regexp.Regexp // both must match (nil matches anything)
	class        string         // "deliberate", "runner gap", "not in tund"
	why          string
}

func r(path, reason, class, why string) rule {
	var p, q *regexp.Regexp
	if path != "" {
		p = regexp.MustCompile(path)
	}
	if reason != "" {
		q = regexp.MustCompile(reason)
	}
	return rule{p, q, class, why}
}

// rules, first match wins.
var rules = []rule{
	// FreeBSD state-event-engine.
	r(`rcv-(rst|syn)-closing/`, `expected F\.`, "deliberate",
		"On the peer's FIN in FIN-WAIT-1 (its FIN crossing ours) tund sends a bare ACK at SND.NXT, as RFC 9293 §3.10.7.4 (eighth step) says and Linux does; FreeBSD's ACK carries its unacknowledged FIN again."),
	r(`right-edge`, ``, "deliberate",
		"The script puts the segment at RCV.NXT+65,699: inside FreeBSD's 65,700-byte receive buffer, but past the 65,535 bytes any stack can advertise to a peer that did not offer window scaling. tund's RCV.WND is the window it advertised (RFC 9293 §3.8.6, RFC 5961 §3), so the segment is outside it."),
	r(`rcv-syn(-fin|-ack)?-time-wait/`, ``, "deliberate",
		"A SYN in TIME-WAIT whose sequence number lies beyond RCV.NXT reopens the connection (RFC 9293 §3.10.7.4, RFC 1122 §4.2.2.13), as Linux does; otherwise it draws a challenge ACK (RFC 5961 §4). FreeBSD answers differently (a challenge ACK, or with insecure_syn a reset, for every SYN in the window); tund's InWindowSYN knob applies RFC 793's rule to live connections, not to the TIME-WAIT table."),
	r(`rcv-syn-fin-listen/.*dropping-disabled`, ``, "deliberate",
		"tund drops a SYN+FIN at a listener, as Linux does (and FreeBSD with net.inet.tcp.drop_synfin=1); with drop_synfin=0 FreeBSD answers it as a SYN. RFC 9293 §3.10.7.2 leaves the FIN to be processed later; tund's choice treats the combination as the scan it almost always is."),
	r(`rcv-syn-fin-syn-sent/.*dropping-enabled`, ``, "deliberate",
		"In SYN-SENT tund processes a SYN+FIN as RFC 9293 §3.10.7.3 says (the SYN, the FIN later); FreeBSD with drop_synfin=1 drops it. tund has no knob for drop_synfin."),
	r(`rcv-syn-ack-listen/`, `^R `, "deliberate",
		"RFC 9293 §3.10.7.2: an ACK arriving at a listener is answered with <SEQ=SEG.ACK><CTL=RST>, which tund sends at once; the script expects FreeBSD's silence."),
	r(`rcv-data-segments/`, `expected \. .*ack \d+ win \d+ .*sent nothing`, "deliberate",
		"After the application reads, tund sends a window update of its own only when the peer had at most half the buffer left and the window at least doubles (Linux's rule, tcp_cleanup_rbuf; window.WindowUpdateDue); a smaller opening rides on the next ACK. FreeBSD sends one as soon as the window grows by two segments. The rule spares a bulk receiver an extra packet for nearly every read."),
	r(`rcv-data-segments/reordering-`, `sent at .* expects it at|expected \. 1:1\(0\) ack \d+ win \d+`, "deliberate",
		"After out-of-order data tund acknowledges the next 16 in-order segments at once (Linux's quick-ACK mode, TCP_MAX_QUICKACKS), where FreeBSD goes back to delaying them once the gap is filled. RFC 5681 §4.2 allows either (an ACK MAY wait, and SHOULD be immediate only for the segment that fills the gap); prompt ACKs let the sender's recovery see the repair at once, and on a lossy link they took tund's goodput at 10% loss from 10–15 to 85–108 Mbit/s (issue 15, docs/experiments.md)."),
	r(`snd-syn/`, `sent at`, "deliberate",
		"SYN retransmissions back off 1 s, 2 s, 4 s… (RFC 6298 §5.5 doubling from the initial RTO); FreeBSD's SYN backoff table waits 3.2 s for the second."),
	r(`snd-syn/`, `options`, "deliberate",
		"The SYN's options (which, and their values) are each stack's choice."),
	// Anything unsupported.
	r(``, `code blocks`, "runner gap", "Python blocks (%{ }%) are packetdrill's own extension language; the runner does not run Python."),
	r(``, `Fast Open|FOEXP|TCP_FASTOPEN`, "not in tund", "TCP Fast Open (RFC 7413) is not implemented."),
	r(``, `SO_ZEROCOPY|zerocopy|SO_TIMESTAMPING|TCP_INQ|TCP_NOTSENT_LOWAT|TCP_CORK|TCP_USER_TIMEOUT|TCP_MAXSEG|TCP_KEEPINIT|TCP_NOOPT|IP_FREEBIND|TCP_INFO|epoll|ioctl|the open call|md5|poll`, "not in tund",
		"A Linux- or BSD-specific socket interface (zerocopy, timestamping, TCP_INFO, epoll, TCP_MAXSEG, MD5 signatures …) that tund's net.Conn API does not have."),
	r(``, `ipv6`, "runner gap", "tund speaks IPv6, but the runner (tund drill) drives it over IPv4 only: IPv6 scripts are not run."),
	r(`/ecn/|ecn`, ``, "not in tund", "ECN (RFC 3168) is not implemented."),
	r(`fastopen/`, ``, "not in tund", "TCP Fast Open (RFC 7413) is not implemented."),
	r(`zerocopy/|timestamping/|tcp_info/|notsent_lowat/|inq/|ioctl/|epoll/|sendfile/|splice/|md5/`, ``, "not in tund", "A Linux-specific socket interface tund does not have."),
	// google/packetdrill gtests: Linux's policies.
	r(`fast_recovery/|fast_retransmit/|sack/|limited_transmit/|cubic/|cwnd_moderation/|slow_start/|mtu_probe/|eor/|gro/|nagle/`, ``, "deliberate",
		"These pin down Linux's sender policies (RACK-TLP timings, PRR, cwnd moderation, limited transmit, TSO autosizing, MTU probing, MSG_EOR, Linux's receive MSS estimate) to the millisecond; tund has RACK-TLP and PRR too (docs/ARCHITECTURE.md, Loss recovery), with its own timers and a 5 ms minimum RTO, so its segments leave at other instants and in other groupings."),
	r(`ts_recent/`, ``, "deliberate", "Linux's handling of TS.Recent on unacceptable segments; tund updates TS.Recent only from acceptable segments covering the last ACK (RFC 7323 §4.3)."),
	r(`shutdown/|blocking/|close/|syscall_bad_arg/|validate/`, ``, "deliberate",
		"Linux's socket semantics (what read returns after shutdown, EFAULT on a bad pointer, its delayed-ACK quickack mode after a blocking read) where tund's net.Conn API or policy differs."),
}

func classify(path string, res drill.Result) (string, string) {
	for _, rl := range rules {
		if (rl.path == nil || rl.path.MatchString(path)) && (rl.reason == nil || rl.reason.MatchString(res.Reason)) {
			return rl.class, rl.why
		}
	}
	if res.Status == drill.Unsupported {
		return "runner gap", "The runner does not do this: " + res.Reason
	}
	return "unclassified", ""
}

// fixed are the tund bugs (or rules) the suites found, each fixed with a
// test of its own.
var fixed = []struct{ what, test string }{
	{"SACK blocks after the first repeat the most recently reported ones, newest first (RFC 2018 §4), not the lowest first", "tcp.TestSACKBlocksMostRecentFirst"},
	{"D-SACK (RFC 2883): data below RCV.NXT, partly below it, or inside a block already held is reported once as the first SACK block, at once", "tcp.TestDSACK"},
	{"in-order data that arrives while out-of-order data waits is ACKed at once even when it overlaps the held block (RFC 5681 §4.2)", "tcp.TestFillingTheGapACKsAtOnce"},
	{"an RST at exactly RCV.NXT+RCV.WND is outside the window and dropped silently (RFC 5961 §3.2), where the right-edge allowance for bare ACKs had made it draw a challenge ACK", "tcp.TestRSTAtTheRightEdgeIsOutsideTheWindow"},
	{"TIME-WAIT drops segments without the ACK bit (RFC 9293 §3.10.7.4, fifth step) instead of answering them", "tcp.TestTimeWaitEntry"},
	{"an RST in CLOSING or LAST-ACK reports ECONNRESET, as Linux and BSD do (SO_ERROR)", "tcp.TestResetInEveryState"},
	{"a retransmission of data already received is always ACKed (with its D-SACK), whatever the rate limit on ACKs for unacceptable segments", "tcp.TestRetransmittedDataAlwaysAnswered"},
	{"an ACK goes for every second segment whatever its size (BSD; Linux by its measured MSS), not only every two full-sized segments' worth", "tcp.TestTwoSmallSegmentsACKedAtOnce"},
	{"RFC 793's RST and SYN rules are available for comparison (tcp.Config.InWindowRST / InWindowSYN, FreeBSD's insecure_rst / insecure_syn)", "tcp.TestRFC793Rules"},
}

func main() {
	freebsd := flag.String("freebsd", "", "checkout of github.com/freebsd-net/tcp-testsuite")
	gtests := flag.String("packetdrill", "", "checkout of github.com/google/packetdrill")
	out := flag.String("out", "docs/conformance.md", "the report to write")
	flag.Parse()
	if *freebsd == "" && *gtests == "" {
		fmt.Fprintln(os.Stderr, "conformance: give -freebsd DIR and/or -packetdrill DIR")
		os.Exit(2)
	}
	ipv4 := func(p string) bool { return !strings.Contains(p, "ipv6") }
	var suites []suite
	if *freebsd != "" {
		suites = append(suites,
			suite{"FreeBSD state-event-engine (IPv4)", *freebsd, []string{"state-event-engine"}, ipv4, 0.9},
			suite{"FreeBSD rcv-data-segments", *freebsd, []string{"rcv-data-segments"}, ipv4, 0.9},
			suite{"FreeBSD snd-syn (IPv4)", *freebsd, []string{"snd-syn"}, ipv4, 0})
	}
	if *gtests != "" {
		suites = append(suites, suite{"google/packetdrill gtests (tcp)", *gtests, []string{"gtests/net/tcp"}, func(string) bool { return true }, 0})
	}
	var doc strings.Builder
	var summary strings.Builder
	unclassified := 0
	// The suites with a target, together, and why their failures fail.
	targetTotal, targetPass := 0, 0
	targetWhy := map[string]int{}
	fmt.Fprintf(&summary, "| suite | scripts | pass | fail | unsupported | pass rate |\n|---|---|---|---|---|---|\n")
	for _, s := range suites {
		var paths []string
		for _, d := range s.dirs {
			filepath.WalkDir(filepath.Join(s.root, d), func(p string, e fs.DirEntry, err error) error {
				if err == nil && !e.IsDir() && strings.HasSuffix(p, ".pkt") && s.match(p) {
					paths = append(paths, p)
				}
				return nil
			})
		}
		sort.Strings(paths)
		counts := map[drill.Status]int{}
		fmt.Fprintf(&doc, "\n## %s\n\n| script | result | why |\n|---|---|---|\n", s.name)
		for _, p := range paths {
			rel, _ := filepath.Rel(s.root, p)
			sc, err := drill.ParseFile(p)
			var res drill.Result
			if err != nil {
				res = drill.Result{Status: drill.Unsupported, Reason: "the runner cannot parse it: " + err.Error()}
			} else {
				res = drill.Run(sc, drill.Options{Lenient: true})
			}
			counts[res.Status]++
			if s.target > 0 {
				targetTotal++
				if res.Status == drill.Pass {
					targetPass++
				}
			}
			why := ""
			if res.Status != drill.Pass {
				class, text := classify(rel, res)
				if s.target > 0 {
					targetWhy[text]++
				}
				if class == "unclassified" {
					unclassified++
				}
				reason := strings.ReplaceAll(firstLine(res.Reason), "|", `\|`)
				where := ""
				if res.Line > 0 {
					where = fmt.Sprintf("line %d: ", res.Line)
				}
				why = fmt.Sprintf("**%s**: %s<br>%s`%s`", class, text, where, reason)
			}
			fmt.Fprintf(&doc, "| %s | %s | %s |\n", rel, strings.ToLower(res.Status.String()), why)
		}
		total := len(paths)
		rate := 0.0
		if total > 0 {
			rate = float64(counts[drill.Pass]) / float64(total)
		}
		target := ""
		if s.target > 0 {
			target = fmt.Sprintf(" (target %.0f%%)", 100*s.target)
		}
		fmt.Fprintf(&summary, "| %s | %d | %d | %d | %d | %.1f%%%s |\n", s.name, total,
			counts[drill.Pass], counts[drill.Fail], counts[drill.Unsupported], 100*rate, target)
		fmt.Printf("%s: %d scripts, %d pass, %d fail, %d unsupported (%.1f%%)\n", s.name, total,
			counts[drill.Pass], counts[drill.Fail], counts[drill.Unsupported], 100*rate)
	}
	var b strings.Builder
	b.WriteString(`# Conformance: test suites tund did not write

Generated by ` + "`scripts/conformance.sh`" + ` (do not edit by hand): every TCP
script of the suites below run against tund with ` + "`tund drill -lenient`" + `
(packetdrill scripts in virtual time; lenient leaves out what is one
implementation's policy: advertised windows, the window-scale shift,
TS val, PSH, option order and padding, buffer sizes). The suites are
checked out from their own repositories when the script runs; nothing of
them is copied into this one.

`)
	b.WriteString(summary.String())
	if targetTotal > 0 {
		fmt.Fprintf(&b, "\nThe FreeBSD state-event-engine and rcv-data-segments scripts together: %d of %d pass (%.1f%%; the target was 90%%). The rest fail for these reasons, each a behaviour tund shares with Linux or a rule of the RFCs, kept on purpose:\n\n",
			targetPass, targetTotal, 100*float64(targetPass)/float64(targetTotal))
		keys := make([]string, 0, len(targetWhy))
		for k := range targetWhy {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return targetWhy[keys[i]] > targetWhy[keys[j]] })
		for _, k := range keys {
			fmt.Fprintf(&b, "- %d scripts: %s\n", targetWhy[k], k)
		}
	}
	fmt.Fprintf(&b, "\nEvery script that does not pass is explained: a **deliberate** difference (with the rule that allows it), a feature **not in tund**, or a **runner gap**. Unclassified: %d.\n", unclassified)
	b.WriteString("\n## tund bugs the suites found (all fixed, each with its own test)\n\n")
	for _, f := range fixed {
		fmt.Fprintf(&b, "- %s (`%s`)\n", f.what, f.test)
	}
	b.WriteString(doc.String())
	if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%d unclassified)\n", *out, unclassified)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
