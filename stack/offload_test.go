package stack

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// TestOffloadEchoWithSuperSegments: two stacks over a link with offloads
// (tun.PipeOffload, whatever TUND_TEST_OFFLOAD says) echo 8 MiB intact,
// and both directions really went as super-segments, counted as the
// segments they carry.
func TestOffloadEchoWithSuperSegments(t *testing.T) {
	da, db := tun.PipeOffload(1500)
	a, err := New(da, Config{Addr: netip.MustParseAddr("10.9.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(db, Config{Addr: netip.MustParseAddr("10.9.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	if a.tcpCfg.GSOMax < 40*1448 {
		t.Fatalf("GSOMax %d on a device with offloads", a.tcpCfg.GSOMax)
	}
	runEcho(t, a, b)
	for _, s := range []*Stack{a, b} {
		st := s.Stats()
		if st.SuperSegmentsOut == 0 || st.SuperSegmentsIn == 0 {
			t.Errorf("%v: %d super-segments out, %d in: offload was not used", s.Addr(), st.SuperSegmentsOut, st.SuperSegmentsIn)
		}
		// 8 MiB each way is over 5,700 segments of 1,448 bytes, in far
		// fewer packets (ACKs count as packets too).
		if st.SegmentsOut < 5700 || st.PacketsOut*2 > st.SegmentsOut {
			t.Errorf("%v: %d segments out in %d packets", s.Addr(), st.SegmentsOut, st.PacketsOut)
		}
	}
}

// TestOffloadThroughImpair: a sender with offloads whose super-segments
// reach an impaired receiver; tun.Impair cuts them and impairs each
// MSS-sized piece (loss, reordering, duplication), and 16 MiB still
// arrive intact.
func TestOffloadThroughImpair(t *testing.T) {
	da, db := tun.PipeOffload(1500)
	m := tun.Impairment{Loss: 0.01, Reorder: 0.02, ReorderGap: 2, Duplicate: 0.01}
	imp, err := tun.Impair(db, tun.ImpairConfig{Seed: 7, In: m, Out: m})
	if err != nil {
		t.Fatal(err)
	}
	tc := tcp.Config{MinRTO: 5 * time.Millisecond, InitialRTO: 50 * time.Millisecond}
	a, err := New(da, Config{Addr: netip.MustParseAddr("10.9.0.1"), TCP: tc})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(imp, Config{Addr: netip.MustParseAddr("10.9.0.2"), TCP: tc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	l, err := b.Listen("tcp", ":9")
	if err != nil {
		t.Fatal(err)
	}
	sums := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			sums <- nil
			return
		}
		defer c.Close()
		h := sha256.New()
		io.Copy(h, c)
		sums <- h.Sum(nil)
	}()
	const size = 16 << 20
	data := randomBytes(size, 9)
	c, err := a.Dial("tcp", "10.9.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	c.SetWriteDeadline(time.Now().Add(2 * time.Minute))
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.(*Conn).CloseWrite()
	want := sha256.Sum256(data)
	select {
	case got := <-sums:
		if !bytes.Equal(got, want[:]) {
			t.Fatalf("the receiver's sha256 %x, want %x", got, want)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the transfer did not finish")
	}
	c.Close()
	st, ist := a.Stats(), imp.Stats()
	if st.SuperSegmentsOut == 0 {
		t.Fatal("the sender sent no super-segment")
	}
	// Impair saw pieces: at least one packet per 1,448 bytes, and lost
	// some of them.
	if ist.In.Packets < size/1448 || ist.In.Lost == 0 || ist.In.Duplicated == 0 {
		t.Fatalf("impairment saw %+v for %d bytes: not MSS-sized pieces", ist.In, size)
	}
	t.Logf("%d super-segments out; impair took %d pieces, lost %d; %d retransmissions", st.SuperSegmentsOut, ist.In.Packets, ist.In.Lost, st.Retransmits)
}
