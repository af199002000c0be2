package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tund-project/tund/drill"
)

// drillCommand is `tund drill FILE.pkt...`: run packetdrill scripts
// against a fresh stack each, in virtual time, one line per script. It
// fails (exit 1) unless every script passed.
func drillCommand(args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("tund drill", flag.ContinueOnError)
	fs.SetOutput(errOut)
	lenient := fs.Bool("lenient", false, "do not compare implementation policy: windows, window-scale shift, TS val, PSH, option order and padding, buffer sizes (each script says what it ignored)")
	verbose := fs.Bool("v", false, "tell every failure in full (expected and actual packets, state transitions), and what lenient mode ignored")
	tolerance := fs.Duration("tolerance", 0, "timing tolerance for every script (default: each script's --tolerance_usecs, or 4ms)")
	fs.Usage = func() {
		fmt.Fprintf(errOut, "usage: tund drill [-lenient] [-v] [-tolerance D] FILE.pkt...\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("drill: no script given (usage: tund drill [-lenient] FILE.pkt...)")
	}
	if *tolerance < 0 {
		return fmt.Errorf("drill: -tolerance %v: must not be negative", *tolerance)
	}
	counts := map[drill.Status]int{}
	start := time.Now()
	var virtual time.Duration
	for _, path := range fs.Args() {
		s, err := drill.ParseFile(path)
		if err != nil {
			counts[drill.Fail]++
			fmt.Fprintf(out, "FAIL %v\n", err)
			continue
		}
		res := drill.Run(s, drill.Options{Lenient: *lenient, Tolerance: *tolerance})
		counts[res.Status]++
		virtual += res.Virtual
		switch res.Status {
		case drill.Pass:
			fmt.Fprintf(out, "PASS %s (%.3f s virtual)\n", path, res.Virtual.Seconds())
		case drill.Fail:
			fmt.Fprintf(out, "FAIL %s:%d: %s\n", path, res.Line, firstLineOf(res.Reason))
			if *verbose {
				fmt.Fprint(out, indent(res.Detail))
			}
		case drill.Unsupported:
			where := path
			if res.Line > 0 {
				where = fmt.Sprintf("%s:%d", path, res.Line)
			}
			fmt.Fprintf(out, "UNSUPPORTED %s: %s\n", where, res.Reason)
		}
		if *verbose && len(res.Ignored) > 0 {
			fmt.Fprintf(out, "    ignored: %s\n", strings.Join(res.Ignored, "; "))
		}
	}
	fmt.Fprintf(out, "%d passed, %d failed, %d unsupported (%.1f s virtual in %.2f s)\n",
		counts[drill.Pass], counts[drill.Fail], counts[drill.Unsupported], virtual.Seconds(), time.Since(start).Seconds())
	if counts[drill.Fail]+counts[drill.Unsupported] > 0 {
		return errSilentFailure
	}
	return nil
}

// errSilentFailure makes a subcommand exit 1 without another message (it
// has said what failed already).
var errSilentFailure = fmt.Errorf("")

func firstLineOf(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}
