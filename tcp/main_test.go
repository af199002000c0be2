package tcp

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"
)

// seen records every transition the tests drive, for TestMain's check.
var seen = map[Transition]int{}

// TestMain runs the package's tests and then fails the run if any edge of
// the transition table was never taken by any test: an edge nobody drives
// is an edge nobody knows works. The check is skipped when -run or -skip
// selects a subset of the tests.
func TestMain(m *testing.M) {
	transitionSeen = func(t Transition) { seen[t]++ }
	code := m.Run()
	if code == 0 && flagUnset("test.run") && flagUnset("test.skip") {
		var missing []string
		for _, t := range Transitions {
			if seen[t] == 0 {
				missing = append(missing, fmt.Sprintf("  %s --%s--> %s", t.From, t.On, t.To))
			}
		}
		if len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: %d transitions of tcp.Transitions were never exercised by a test:\n", len(missing))
			for _, m := range missing {
				fmt.Fprintln(os.Stderr, m)
			}
			code = 1
		}
	}
	os.Exit(code)
}

func flagUnset(name string) bool {
	f := flag.Lookup(name)
	return f == nil || f.Value.String() == ""
}

// classicMinRTO is the 200 ms floor Linux uses and tund used by default
// before the adaptive floor: tests written around its timing ask for it.
const classicMinRTO = 200 * time.Millisecond
