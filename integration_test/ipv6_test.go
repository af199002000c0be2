package integration

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIPv6TraceSSAndPcap: an IPv6 connection through tund as a learner
// watches one. The trace names its ends in brackets, `tund ss` lists it
// the way ss does, and tshark reads the capture back. Every segment's
// checksum is good, the handshake and both FINs are there, and each
// direction carries one flow label.
func TestIPv6TraceSSAndPcap(t *testing.T) {
	need(t)
	needTool(t, "tshark")
	ns := newNetNS(t)
	file := filepath.Join(t.TempDir(), "cap.pcap")
	ctl := filepath.Join(t.TempDir(), "ctl.sock")
	proc := startTund(t, ns, "-pcap", file, "-control", ctl, "-trace")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A connection held open, for tund ss.
	held, err := nsDial(t, ns, "["+stackAddr6+"]:7", 0)
	if err != nil {
		t.Fatal(err)
	}
	heldPort := strconv.Itoa(held.LocalAddr().(*net.TCPAddr).Port)
	ss, err := exec.Command(tundBin, "ss", "-control", ctl).CombinedOutput()
	held.Close()
	if err != nil {
		t.Fatalf("tund ss: %v\n%s", err, ss)
	}
	if !regexpLine(string(ss), `^ESTABLISHED\s+0\s+0\s+`+regexp.QuoteMeta(families[1].stackAt(7))+`\s+`+regexp.QuoteMeta("["+hostAddr6+"]:"+heldPort)+`\s*$`) {
		t.Errorf("tund ss lacks the IPv6 connection from port %s:\n%s", heldPort, ss)
	}

	out, err := inNS(ctx, ns, "curl", "-6", "-sS", "-o", "/dev/null", "-w", "%{local_port} %{size_download}",
		families[1].url("/bytes/1000")).Output()
	if err != nil {
		t.Fatalf("curl -6: %v", err)
	}
	var lport, size int
	if _, err := fmt.Sscan(string(out), &lport, &size); err != nil || size != 1000 {
		t.Fatalf("curl printed %q, want a port and 1000 bytes", out)
	}
	client := fmt.Sprintf("[%s]:%d", hostAddr6, lport)
	if !waitFor(5*time.Second, func() bool { return strings.Contains(proc.log(), client+" LAST-ACK → CLOSED") }) {
		t.Fatalf("the trace never showed %s closing:\n%s", client, proc.log())
	}
	for _, want := range []string{client + " LISTEN → SYN-RECEIVED", client + " SYN-RECEIVED → ESTABLISHED"} {
		if !strings.Contains(proc.log(), want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	proc.stop(t)

	fields := tshark(t, file, "-o", "tcp.check_checksum:TRUE", "-Y", "ipv6 && tcp.port == "+strconv.Itoa(lport),
		"-T", "fields", "-E", "separator=/t",
		"-e", "ipv6.src", "-e", "ipv6.dst", "-e", "ipv6.flow", "-e", "tcp.flags.str", "-e", "tcp.len", "-e", "tcp.checksum.status")
	if bad := strings.TrimSpace(tshark(t, file, "-o", "tcp.check_checksum:TRUE", "-Y", "ipv6 && "+badTCPChecksum,
		"-T", "fields", "-e", "frame.number")); bad != "" {
		t.Errorf("IPv6 segments with a bad TCP checksum: frames %s", strings.Fields(bad))
	}
	type dir struct{ segs, bytes, syn, fin int }
	seen := map[string]*dir{}
	flows := map[string]map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(fields), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 6 {
			t.Fatalf("tshark line %q: %d fields, want 6", line, len(f))
		}
		d := seen[f[0]]
		if d == nil {
			d, flows[f[0]] = &dir{}, map[string]bool{}
			seen[f[0]] = d
		}
		d.segs++
		n, _ := strconv.Atoi(f[4])
		d.bytes += n
		if strings.Contains(f[3], "S") {
			d.syn++
		}
		if strings.Contains(f[3], "F") {
			d.fin++
		}
		flows[f[0]][f[2]] = true
		// tshark's checksum status: 0 bad, 1 good, 2 unverified; a bad
		// one is reported above (where Linux's 0xffff for 0 is not).
		if f[5] == "2" || f[5] == "Unverified" {
			t.Errorf("segment %q: TCP checksum not verified", line)
		}
	}
	srv, cli := seen[stackAddr6], seen[hostAddr6]
	if srv == nil || cli == nil {
		t.Fatalf("capture lacks a direction of the connection:\n%s", fields)
	}
	if srv.syn != 1 || cli.syn != 1 || srv.fin != 1 || cli.fin != 1 || srv.bytes < 1000 || cli.bytes == 0 {
		t.Errorf("from tund: %+v, from curl: %+v; want one SYN and one FIN each way, ≥ 1000 bytes back", *srv, *cli)
	}
	if len(flows[stackAddr6]) != 1 {
		t.Errorf("tund's flow labels %v, want one (RFC 6437)", flows[stackAddr6])
	}
	for label := range flows[stackAddr6] {
		if v, err := strconv.ParseUint(label, 0, 32); err != nil || v == 0 {
			t.Errorf("tund's flow label %q: want a nonzero number (%v)", label, err)
		}
	}
}

// TestIPv6FragmentsDroppedAndCounted: tund does not reassemble. An echo
// request too large for the link leaves the kernel in fragments, in
// either family, and each is dropped and counted as "fragment", not
// answered and not mistaken for anything else.
func TestIPv6FragmentsDroppedAndCounted(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	startTund(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dropped := func() int {
		out, err := inNS(ctx, ns, "curl", "--fail", "-sS", families[0].url("/stats")).Output()
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`drops\{reason="fragment"\} (\d+)`).FindSubmatch(out)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	before := 0
	for _, f := range families {
		out, err := inNS(ctx, ns, "ping", f.flag, "-c", "2", "-i", "0.2", "-W", "1", "-s", "3000", f.stack).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "0 received") {
			t.Errorf("ping %s -s 3000 (fragmented): %v, want no reply\n%s", f.flag, err, out)
		}
		// Two requests of 3 fragments each at a 1500-byte MTU.
		if n := dropped(); n < before+4 {
			t.Errorf("ping %s: %d fragments counted, want at least %d more than %d", f.flag, n, 4, before)
		} else {
			before = n
		}
	}
	// Unfragmented echoes still work after them.
	for _, f := range families {
		if out, err := inNS(ctx, ns, "ping", f.flag, "-c", "1", "-W", "2", f.stack).CombinedOutput(); err != nil {
			t.Errorf("ping %s after the fragments: %v\n%s", f.flag, err, out)
		}
	}
}

// TestIPv6Only: with -addr "" tund speaks IPv6 alone, and curl -6 still
// gets every byte.
func TestIPv6Only(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	proc := startTund(t, ns, "-addr", "")
	if !strings.Contains(proc.log(), `http=http://[`+stackAddr6+`]:80/`) {
		t.Errorf("tund does not say it serves only over IPv6:\n%s", proc.log())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	body := newHashingWriter()
	cmd := inNS(ctx, ns, "curl", "-6", "--fail", "-sS", families[1].url("/bytes/10485760"))
	cmd.Stdout = body
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl -6: %v", err)
	}
	if body.n != 10<<20 || body.sum() != tundBodySHA(10<<20) {
		t.Fatalf("downloaded %d bytes sha256 %s, want %d %s", body.n, body.sum(), 10<<20, tundBodySHA(10<<20))
	}
}
