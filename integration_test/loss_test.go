package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// TestTransfersUnderRandomLossWithKernel: nftables drops a share of the
// TCP packets crossing the TUN device in both directions, and tun.Impair
// adds reordering, duplication and delay. 8 MiB go each way between a
// kernel socket and the stack (with NewReno and with CUBIC), and arrive
// byte-exact.
func TestTransfersUnderRandomLossWithKernel(t *testing.T) {
	need(t)
	reorderDupDelay := tun.Impairment{Reorder: 0.02, ReorderGap: 2, Duplicate: 0.01, Delay: 2 * time.Millisecond}
	for _, tc := range []struct {
		name   string
		cc     string
		loss   int
		impair tun.Impairment
	}{
		{"newreno/2%", "newreno", 2, tun.Impairment{}},
		{"cubic/5%", "cubic", 5, tun.Impairment{}},
		{"cubic/1%+reorder+dup+delay", "cubic", 1, reorderDupDelay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNetNS(t)
			var wrap func(tun.Device) tun.Device
			if tc.impair != (tun.Impairment{}) {
				wrap = func(d tun.Device) tun.Device {
					imp, err := tun.Impair(d, tun.ImpairConfig{Seed: 9, In: tc.impair, Out: tc.impair})
					if err != nil {
						t.Fatal(err)
					}
					return imp
				}
			}
			st := startLibraryStackCfg(t, ns, stack.Config{TCP: tcp.Config{CongestionControl: tc.cc}}, wrap)
			nftLoss(t, ns, tc.loss)
			l, err := st.Listen("tcp", ":9200")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			// The stack's side: read everything the kernel sends, then
			// send the same amount of its own data back.
			up := randomBytes(8<<20, 31)
			down := randomBytes(8<<20, 32)
			type res struct {
				sum    [32]byte
				n      int64
				err    error
				upDone time.Time
				rtx    uint64
				info   tcp.Info
			}
			srv := make(chan res, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					srv <- res{err: err}
					return
				}
				defer c.Close()
				h := sha256.New()
				n, err := io.Copy(h, c)
				var r res
				copy(r.sum[:], h.Sum(nil))
				r.n, r.err, r.upDone = n, err, time.Now()
				if err == nil {
					_, r.err = c.Write(down)
				}
				// Wait until the kernel has everything, then read our
				// retransmission count before the connection goes.
				for i := 0; i < 3000; i++ {
					ci, _ := connOf(st, 9200)
					r.rtx, r.info = ci.Retransmits, ci.Info
					if ci.SendQ == 0 {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				srv <- r
			}()
			start := time.Now()
			kc, err := nsDial(t, ns, stackAddr+":9200", 0)
			if err != nil {
				t.Fatal(err)
			}
			defer kc.Close()
			kc.SetDeadline(time.Now().Add(3 * time.Minute))
			if _, err := kc.Write(up); err != nil {
				t.Fatal(err)
			}
			kc.CloseWrite()
			got, err := io.ReadAll(kc)
			if err != nil {
				t.Fatalf("kernel read: %v after %d bytes", err, len(got))
			}
			r := <-srv
			if r.err != nil {
				t.Fatalf("stack side: %v", r.err)
			}
			if want := sha256.Sum256(up); r.n != int64(len(up)) || r.sum != want {
				t.Fatalf("stack received %d bytes, want %d identical", r.n, len(up))
			}
			if !bytes.Equal(got, down) {
				t.Fatalf("kernel received %d bytes, want %d identical", len(got), len(down))
			}
			dropped := nftDropped(t, ns)
			t.Logf("%s, %d%% loss each way (%s): kernel→stack 8 MiB in %v, stack→kernel 8 MiB in %v (the stack retransmitted %d segments: %d recoveries, %d tail probes, %d timeouts); nftables dropped %d packets",
				tc.cc, tc.loss, tc.impair.String(), r.upDone.Sub(start).Round(time.Millisecond), time.Since(r.upDone).Round(time.Millisecond), r.rtx,
				r.info.Recoveries, r.info.Probes, r.info.Timeouts, dropped)
			if dropped == 0 {
				t.Errorf("nftables dropped nothing: the loss rules are not in the path")
			}
		})
	}
}

// connOf returns the stack's connection on local port lport.
func connOf(st *stack.Stack, lport uint16) (stack.ConnInfo, bool) {
	for _, ci := range st.Connections() {
		if ci.Local.Port() == lport && ci.Remote.IsValid() {
			return ci, true
		}
	}
	return stack.ConnInfo{}, false
}

// TestICMPPortUnreachableRefusesAtOnce: a kernel that answers our SYN
// with ICMP port unreachable (an nftables reject rule) makes the stack's
// dial fail at once with ECONNREFUSED (RFC 1122 §4.2.3.9), instead of
// retrying its SYN for two minutes.
func TestICMPPortUnreachableRefusesAtOnce(t *testing.T) {
	need(t)
	needTool(t, "nft")
	ns := newNetNS(t)
	st := startLibraryStack(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nft := inNS(ctx, ns, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(`table inet rej {
	chain in {
		type filter hook input priority 0;
		tcp dport 9300 reject with icmp type port-unreachable
	}
}
`)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	start := time.Now()
	_, err := st.DialContext(ctx, "tcp", hostAddr+":9300")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial: %v, want ECONNREFUSED from the ICMP error", err)
	}
	if st.Stats().ICMPErrors == 0 {
		t.Error("ICMP error not counted")
	}
	t.Logf("refused by ICMP after %v", time.Since(start).Round(time.Millisecond))
}
