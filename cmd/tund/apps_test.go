package main

import (
	"io"
	"strings"
	"testing"
)

func TestAppFlag(t *testing.T) {
	o, err := parseFlags([]string{"-app", "8001=never-close", "-app", "8002=never-accept,backlog=4",
		"-app", "8003=slow-read,rate=2K", "-app", "8004=reset,backlog=1", "-app", "8005=half-close", "-app", "8006=slow-read"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []app{{8001, "never-close", 0, 0}, {8002, "never-accept", 4, 0}, {8003, "slow-read", 0, 2048},
		{8004, "reset", 1, 0}, {8005, "half-close", 0, 0}, {8006, "slow-read", 0, 1024}}
	if len(o.apps) != len(want) {
		t.Fatalf("apps %v, want %v", o.apps, want)
	}
	for i := range want {
		if o.apps[i] != want[i] {
			t.Errorf("app %d: %+v, want %+v", i, o.apps[i], want[i])
		}
		// String gives back a value that parses to the same app.
		if again, err := parseApp(o.apps[i].String()); err != nil || again != o.apps[i] {
			t.Errorf("%s parses to %+v, %v", o.apps[i], again, err)
		}
	}
	for _, tc := range []struct{ args []string }{
		{[]string{"-app", "8001"}},
		{[]string{"-app", "x=never-close"}},
		{[]string{"-app", "70000=never-close"}},
		{[]string{"-app", "80=never-close"}},
		{[]string{"-app", "8001=sleepy"}},
		{[]string{"-app", "8001=never-close,backlog=0"}},
		{[]string{"-app", "8001=never-close,rate=1K"}},
		{[]string{"-app", "8001=slow-read,rate=lots"}},
		{[]string{"-app", "8001=slow-read,colour=red"}},
		{[]string{"-app", "8001=reset", "-app", "8001=half-close"}},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil {
			t.Errorf("%v accepted", tc.args)
			continue
		}
		last := tc.args[len(tc.args)-1]
		if msg := err.Error(); !strings.Contains(msg, `-app "`+last+`"`) || strings.Contains(msg, "\n") {
			t.Errorf("%v: error %q, want one line naming the value", tc.args, msg)
		}
	}
}
