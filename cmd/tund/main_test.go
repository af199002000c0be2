package main

import (
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tund-project/tund/stack"
)

func TestSSFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-state", "DANCING"}, `-state "DANCING"`},
		{[]string{"extra"}, `"extra"`},
		{[]string{"-control", "/nonexistent/tund.sock"}, "/nonexistent/tund.sock"},
	} {
		err := ssCommand(tc.args, io.Discard, io.Discard)
		if err == nil {
			t.Fatalf("%v: accepted", tc.args)
		}
		if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Fatalf("%v: error %q, want one line naming %s", tc.args, msg, tc.want)
		}
	}
	for _, name := range []string{"time-wait", "TIME_WAIT", "close-wait", "ESTABLISHED", "syn_recv"} {
		if _, ok := parseState(name); !ok {
			t.Errorf("state %q not understood", name)
		}
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.tunName != "tund0" || o.addr.String() != "198.18.0.2" || o.host.String() != "198.18.0.1/24" ||
		o.mtu != 1500 || o.netns != "" || o.backlog != stack.DefaultBacklog {
		t.Fatalf("defaults: %+v", o)
	}
	if o.control != "/run/tund/tund0.sock" || !o.synCookies || o.finTimeout != time.Minute || o.synAckRetries != 5 {
		t.Fatalf("defaults: %+v", o)
	}
	if o, err := parseFlags([]string{"-syncookies=false"}, io.Discard); err != nil || o.synCookies {
		t.Errorf("-syncookies=false: synCookies %v, err %v", o.synCookies, err)
	}
	if o, err := parseFlags([]string{"-impair-out", "loss=1%,reorder=2%", "-impair-seed", "7"}, io.Discard); err != nil ||
		o.impair.Out.Loss != 0.01 || o.impair.Out.Reorder != 0.02 || o.impair.Seed != 7 {
		t.Errorf("-impair-out: %+v %v", o.impair, err)
	}
	if o.rcvBuf != 0 || o.rcvBufMax != 6<<20 || o.sndBuf != 1<<20 || o.noDelay {
		t.Fatalf("buffer defaults: %+v", o)
	}
	if o, err := parseFlags([]string{"-rcvbuf", "64K", "-sndbuf", "2m"}, io.Discard); err != nil || o.rcvBuf != 64<<10 || o.sndBuf != 2<<20 {
		t.Errorf("-rcvbuf 64K -sndbuf 2m: %+v %v", o, err)
	}
	if o, _ := parseFlags([]string{"-tun", "tx1", "-control", "none"}, io.Discard); o.control != "" {
		t.Errorf("-control none gave %q", o.control)
	}
	if o, _ := parseFlags([]string{"-tun", "tx1"}, io.Discard); o.control != "/run/tund/tx1.sock" {
		t.Errorf("control socket for -tun tx1: %q", o.control)
	}
	if want := min(runtime.NumCPU(), 8); o.queues != want || o.linkQueues() != want {
		t.Errorf("-queues default %d (%d opened), want %d", o.queues, o.linkQueues(), want)
	}
	for _, args := range [][]string{{"-pcap", "x.pcap"}, {"-impair-in", "loss=1%"}, {"-impair-out", "delay=1ms"}} {
		o, err := parseFlags(append(args, "-queues", "4"), io.Discard)
		if err != nil || o.queues != 4 || o.linkQueues() != 1 {
			t.Errorf("%v -queues 4: %d queues, %d opened, %v; want 1 opened", args, o.queues, o.linkQueues(), err)
		}
	}
	if o, err := parseFlags([]string{"-queues", "3"}, io.Discard); err != nil || o.linkQueues() != 3 {
		t.Errorf("-queues 3: %d opened, %v", o.linkQueues(), err)
	}
	if o.shutdownGrace != 3*time.Second {
		t.Errorf("-shutdown-grace default %v, want 3s", o.shutdownGrace)
	}
	if o, err := parseFlags([]string{"-shutdown-grace", "0s"}, io.Discard); err != nil || o.shutdownGrace != 0 {
		t.Errorf("-shutdown-grace 0s: %v %v", o.shutdownGrace, err)
	}
	if !o.host.Contains(o.addr) {
		t.Fatal("default stack address outside the default host prefix")
	}
	if o.addr6.String() != "fd00:7:5eed::2" || o.host6.String() != "fd00:7:5eed::1/64" || !o.host6.Contains(o.addr6) {
		t.Fatalf("IPv6 defaults: addr6 %v host6 %v", o.addr6, o.host6)
	}
	if o, err := parseFlags([]string{"-addr6", ""}, io.Discard); err != nil || o.addr6.IsValid() || !o.addr.IsValid() || o.mtu != 1500 {
		t.Errorf(`-addr6 "": %v %v, want IPv4 alone`, o.addr6, err)
	}
	if o, err := parseFlags([]string{"-addr6", "", "-mtu", "576"}, io.Discard); err != nil || o.mtu != 576 {
		t.Errorf(`-addr6 "" -mtu 576 (below IPv6's minimum, fine for IPv4 alone): %v`, err)
	}
	if o, err := parseFlags([]string{"-addr", ""}, io.Discard); err != nil || o.addr.IsValid() || !o.addr6.IsValid() {
		t.Errorf(`-addr "": %v %v, want IPv6 alone`, o.addr, err)
	}
	if got, want := o.where(7), "198.18.0.2:7 [fd00:7:5eed::2]:7"; got != want {
		t.Errorf("where(7) = %q, want %q", got, want)
	}
	if o.maxConns != 65536 || o.maxOrphans != 16384 || o.orphanRetries != 8 || o.maxTimeWait != 262144 ||
		o.memLimit != 1<<30 || o.minPMTU != 552 {
		t.Errorf("limit defaults: %+v", o)
	}
	if o, err := parseFlags([]string{"-mem-limit", "64M", "-max-orphans", "10"}, io.Discard); err != nil || o.memLimit != 64<<20 || o.maxOrphans != 10 {
		t.Errorf("-mem-limit 64M -max-orphans 10: %v %v %v", o.memLimit, o.maxOrphans, err)
	}
}

func TestParseFlagsErrorsNameTheValue(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-mtu", "67"}, "-mtu 67"},
		{[]string{"-queues", "0"}, "-queues 0"},
		{[]string{"-queues", "65"}, "-queues 65"},
		{[]string{"-max-connections", "0"}, "-max-connections 0"},
		{[]string{"-orphan-retries", "99"}, "-orphan-retries 99"},
		{[]string{"-min-pmtu", "60"}, "-min-pmtu 60"},
		{[]string{"-mem-limit", "lots"}, `-mem-limit "lots"`},
		{[]string{"-mem-limit", "2K"}, `-mem-limit "2K"`},
		{[]string{"-mtu", "70000"}, "-mtu 70000"},
		{[]string{"-mtu", "big"}, `"big"`},
		{[]string{"-addr", "::1"}, `-addr "::1"`},
		{[]string{"-addr", "198.18.0.1"}, "198.18.0.1"}, // collides with -host
		{[]string{"-host", "198.18.0.1"}, `-host "198.18.0.1"`},
		{[]string{"-addr6", "198.18.0.9"}, `-addr6 "198.18.0.9"`},
		{[]string{"-addr6", "::ffff:1.2.3.4"}, `-addr6 "::ffff:1.2.3.4"`},
		{[]string{"-addr6", "ff02::1"}, `-addr6 "ff02::1"`},
		{[]string{"-addr6", "fd00:7:5eed::1"}, "fd00:7:5eed::1"}, // collides with -host6
		{[]string{"-host6", "fd00::1"}, `-host6 "fd00::1"`},
		{[]string{"-host6", "10.0.0.1/24"}, `-host6 "10.0.0.1/24"`},
		{[]string{"-addr", "", "-addr6", ""}, `-addr "" and -addr6 ""`},
		{[]string{"-mtu", "1000"}, "-mtu 1000"}, // below IPv6's 1280
		{[]string{"-tun", "a-very-long-interface-name"}, `-tun "a-very-long-interface-name"`},
		{[]string{"-log-level", "loud"}, `-log-level "loud"`},
		{[]string{"-backlog", "0"}, "-backlog 0"},
		{[]string{"-msl", "-1s"}, "-msl -1s"},
		{[]string{"-fin-timeout", "0s"}, "-fin-timeout 0s"},
		{[]string{"-rcvbuf", "lots"}, `-rcvbuf "lots"`},
		{[]string{"-cc", "bbr"}, `-cc "bbr"`},
		{[]string{"-loss-detection", "dupack"}, `-loss-detection "dupack"`},
		{[]string{"-prr-bound", "none"}, `-prr-bound "none"`},
		{[]string{"-sample-interval", "0s"}, "-sample-interval 0s"},
		{[]string{"-impair-in", "loss=150%"}, `loss="150%"`},
		{[]string{"-impair-out", "wobble=3"}, `wobble`},
		{[]string{"-rto-min", "0s"}, "-rto-min 0s"},
		{[]string{"-rto-min", "2m"}, "-rto-min 2m0s"},
		{[]string{"-rto-initial", "1ms"}, "-rto-initial 1ms"},
		{[]string{"-rcvbuf", "12"}, `-rcvbuf "12"`},
		{[]string{"-rcvbuf-max", "2G"}, `-rcvbuf-max "2G"`},
		{[]string{"-sndbuf", "-1M"}, `-sndbuf "-1M"`},
		{[]string{"-synack-retries", "0"}, "-synack-retries 0"},
		{[]string{"-synack-retries", "99"}, "-synack-retries 99"},
		{[]string{"-shutdown-grace", "-1s"}, "-shutdown-grace -1s"},
		{[]string{"extra"}, `"extra"`},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil {
			t.Fatalf("%v: accepted", tc.args)
		}
		if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Fatalf("%v: error %q, want one line naming %s", tc.args, msg, tc.want)
		}
	}
}

// TestPcapBadPathFailsFirst: a -pcap file that cannot be created is a
// one-line error naming the flag and the path, before tund creates any
// namespace or device (so this runs without root).
func TestPcapBadPathFailsFirst(t *testing.T) {
	path := t.TempDir() + "/missing-dir/cap.pcap"
	o, err := parseFlags([]string{"-pcap", path, "-netns", "tund-pcap-never-created"}, io.Discard)
	if err != nil || o.pcap != path {
		t.Fatalf("parseFlags: %+v %v", o, err)
	}
	err = run(o)
	if err == nil {
		t.Fatal("run accepted a -pcap path in a missing directory")
	}
	if msg := err.Error(); !strings.Contains(msg, `-pcap "`+path+`"`) || strings.Contains(msg, "\n") {
		t.Fatalf("error %q, want one line naming -pcap %q", msg, path)
	}
}
