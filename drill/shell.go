package drill

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tund-project/tund/tcp"
)

// shell carries out a shell line: sysctls that have a knob set it (before
// the stack starts), a `sockstat | grep -c STATE | grep N` check is
// answered from the stack's table, and anything else is reported as
// ignored.
func (r *runner) shell(cmd string) error {
	cmd = strings.TrimSpace(cmd)
	switch {
	case strings.HasPrefix(cmd, "sysctl"):
		for _, kv := range sysctlAssignments(cmd) {
			r.sysctl(kv[0], kv[1])
		}
		return nil
	case strings.HasPrefix(cmd, "sockstat"):
		return r.sockstat(cmd)
	}
	word := strings.Fields(cmd)
	if len(word) > 0 {
		r.ignore("shell command " + word[0])
	}
	return nil
}

// sysctlAssignments finds the name=value pairs of a sysctl command line
// ("sysctl -w a=1", "sysctl -q a=1 b=2", "sysctl -q a=\"4096 8192 16384\"").
func sysctlAssignments(cmd string) [][2]string {
	var out [][2]string
	for _, m := range sysctlRE.FindAllStringSubmatch(cmd, -1) {
		v := m[2]
		if v == "" {
			v = m[3]
		}
		out = append(out, [2]string{m[1], strings.Trim(v, `"'`)})
	}
	return out
}

var sysctlRE = regexp.MustCompile(`([a-z0-9_.]+)=("[^"]*"|'[^']*'|(\S+))`)

// sysctl maps one setting onto the stack's configuration.
func (r *runner) sysctl(name, val string) {
	if r.st != nil {
		r.ignore("sysctl " + name + " after the stack started")
		return
	}
	num := func() (int, bool) {
		f := strings.Fields(val)
		if len(f) == 3 { // tcp_rmem "min default max": the default
			f = f[1:2]
		}
		if len(f) != 1 {
			return 0, false
		}
		n, err := strconv.Atoi(f[0])
		return n, err == nil
	}
	c := &r.cfg.TCP
	n, ok := num()
	switch name {
	case "net.inet.tcp.rfc1323":
		c.NoTimestamps, c.NoWScale = n == 0, n == 0
	case "net.ipv4.tcp_timestamps":
		c.NoTimestamps = n == 0
	case "net.ipv4.tcp_window_scaling":
		c.NoWScale = n == 0
	case "net.inet.tcp.sack.enable", "net.ipv4.tcp_sack":
		c.NoSACK = n == 0
	case "net.inet.tcp.recvspace", "net.ipv4.tcp_rmem":
		if ok && n > 0 {
			c.RcvBuf = n
		}
		// tcp_rmem's third field caps autotuning (and so the window
		// scale offered), as on Linux.
		if f := strings.Fields(val); name == "net.ipv4.tcp_rmem" && len(f) == 3 {
			if m, err := strconv.Atoi(f[2]); err == nil && m > 0 {
				c.RcvBufMax = m
			}
		}
	case "net.inet.tcp.sendspace", "net.ipv4.tcp_wmem":
		if ok && n > 0 {
			c.SndBuf = n
		}
	case "net.inet.tcp.rexmit_initial":
		if ok && n > 0 {
			c.InitialRTO = time.Duration(n) * time.Millisecond
		}
	case "net.inet.tcp.rexmit_min":
		if ok && n > 0 {
			c.MinRTO = time.Duration(n) * time.Millisecond
		}
	case "net.inet.tcp.delacktime":
		if ok && n > 0 {
			c.DelayedAck = time.Duration(n) * time.Millisecond
		}
	case "net.ipv4.tcp_delack_min":
		if ok && n > 0 {
			c.DelayedAck = time.Duration(n) * time.Millisecond
		}
	case "net.ipv4.tcp_syn_retries":
		if ok && n > 0 {
			c.SynRetries = n
		}
	case "net.ipv4.tcp_synack_retries":
		if ok && n > 0 {
			c.SynAckRetries = n
		}
	case "net.ipv4.tcp_fin_timeout":
		if ok && n > 0 {
			c.FinTimeout = time.Duration(n) * time.Second
		}
	case "net.ipv4.tcp_orphan_retries":
		if ok && n > 0 {
			c.OrphanRetries = n
		}
	case "net.ipv4.tcp_syncookies":
		r.cfg.NoSynCookies = n == 0
	case "net.ipv4.tcp_congestion_control":
		if val == "cubic" || val == "reno" || val == "newreno" {
			c.CongestionControl = map[string]string{"reno": "newreno"}[val]
			if c.CongestionControl == "" {
				c.CongestionControl = val
			}
		} else {
			r.ignore("sysctl " + name + "=" + val)
		}
	case "net.inet.tcp.insecure_rst":
		c.InWindowRST = n != 0
	case "net.inet.tcp.insecure_syn":
		c.InWindowSYN = n != 0
	case "net.inet.tcp.hostcache.purgenow", "kern.ipc.maxsockbuf", "net.inet.tcp.blackhole",
		"net.inet.tcp.ecn.enable":
		// Nothing to do: no host cache, no buffer cap below the
		// script's sizes, RSTs always sent, no ECN.
	default:
		r.ignore("sysctl " + name + "=" + val)
	}
}

// sockstatRE reads FreeBSD's check that a number of sockets are in a
// state: "sockstat -4 -P tcp [-p PORT] -s | grep ... | grep -c STATE | grep N".
var sockstatRE = regexp.MustCompile(`grep -c ([A-Z_0-9]+)\s*\|\s*grep (\d+)`)

// sockstat answers a state-count check from the stack's own table and
// the script's sockets.
func (r *runner) sockstat(cmd string) error {
	m := sockstatRE.FindStringSubmatch(cmd)
	if m == nil {
		r.ignore("shell command sockstat (not a state count)")
		return nil
	}
	state, want := m[1], m[2]
	port := 0
	if p := regexp.MustCompile(`-p (\d+)`).FindStringSubmatch(cmd); p != nil {
		port, _ = strconv.Atoi(p[1])
	}
	alias := map[string]string{"SYN_RCVD": "SYN_RECV", "FIN_WAIT_1": "FIN_WAIT1", "FIN_WAIT_2": "FIN_WAIT2"}
	if a, ok := alias[state]; ok {
		state = a
	}
	n := 0
	if r.st != nil {
		for _, ci := range r.st.Connections() {
			if port != 0 && int(ci.Local.Port()) != port && int(ci.Remote.Port()) != port {
				continue
			}
			if ci.State.NetstatName() == state {
				n++
			}
		}
	}
	if state == "CLOSED" {
		// A socket the application still holds after its connection
		// ended.
		for _, s := range r.fds {
			if s.c != nil && s.c.State() == tcp.Closed {
				n++
			}
		}
	}
	if strconv.Itoa(n) != want {
		return r.fail("%d sockets in %s, the script's sockstat check expects %s", n, m[1], want)
	}
	return nil
}
