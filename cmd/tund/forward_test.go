package main

import (
	"io"
	"strings"
	"testing"
)

func TestForwardFlags(t *testing.T) {
	o, err := parseFlags([]string{"-forward", "22=127.0.0.1:22", "-forward", "8080=web.local:80",
		"-forward-out", "127.0.0.1:0=198.18.0.1:22", "-forward-out", ":2222=198.18.0.1:2222"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.forwards) != 2 || o.forwards[0] != (forward{22, "127.0.0.1:22"}) || o.forwards[1] != (forward{8080, "web.local:80"}) {
		t.Errorf("forwards %v", o.forwards)
	}
	if len(o.forwardsOut) != 2 || o.forwardsOut[0] != (forwardOut{"127.0.0.1:0", "198.18.0.1:22"}) {
		t.Errorf("forwards out %v", o.forwardsOut)
	}
	for _, args := range [][]string{
		{"-forward", "22"},
		{"-forward", "x=127.0.0.1:22"},
		{"-forward", "7=127.0.0.1:22"},
		{"-forward", "22=127.0.0.1"},
		{"-forward", "22=127.0.0.1:0"},
		{"-forward", "22=:22"},
		{"-forward", "22=127.0.0.1:22", "-forward", "22=127.0.0.1:23"},
		{"-forward-out", "127.0.0.1:2222"},
		{"-forward-out", "127.0.0.1=198.18.0.1:22"},
		{"-forward-out", "127.0.0.1:99999=198.18.0.1:22"},
		{"-forward-out", "127.0.0.1:0=host:22"},
		{"-forward-out", "127.0.0.1:0=198.18.0.1:0"},
	} {
		_, err := parseFlags(args, io.Discard)
		if err == nil {
			t.Errorf("%v accepted", args)
			continue
		}
		flag, last := args[len(args)-2], args[len(args)-1]
		if msg := err.Error(); !strings.Contains(msg, flag+` "`+last+`"`) || strings.Contains(msg, "\n") {
			t.Errorf("%v: error %q, want one line naming the value", args, msg)
		}
	}
}
