package tun

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// pcapFile is a pcap file read back by readPcap.
type pcapFile struct {
	magic, snaplen, linktype uint32
	major, minor             uint16
	recs                     []pcapRec
}

type pcapRec struct {
	ts   time.Time
	orig int
	data []byte
}

// readPcap is a minimal reader of little-endian classic pcap files with
// nanosecond timestamps, the format Capture writes.
func readPcap(t *testing.T, b []byte) pcapFile {
	t.Helper()
	le := binary.LittleEndian
	if len(b) < 24 {
		t.Fatalf("pcap file of %d bytes has no global header", len(b))
	}
	f := pcapFile{magic: le.Uint32(b), major: le.Uint16(b[4:]), minor: le.Uint16(b[6:]),
		snaplen: le.Uint32(b[16:]), linktype: le.Uint32(b[20:])}
	if f.magic != PcapMagicNanos {
		t.Fatalf("magic %#x, want %#x", f.magic, PcapMagicNanos)
	}
	if z := b[8:16]; !bytes.Equal(z, make([]byte, 8)) {
		t.Fatalf("thiszone/sigfigs %x, want zeros", z)
	}
	b = b[24:]
	for len(b) > 0 {
		if len(b) < 16 {
			t.Fatalf("record %d: %d bytes left, short header", len(f.recs), len(b))
		}
		sec, nsec := le.Uint32(b), le.Uint32(b[4:])
		incl, orig := int(le.Uint32(b[8:])), int(le.Uint32(b[12:]))
		if nsec >= 1e9 {
			t.Fatalf("record %d: fraction %d is not nanoseconds", len(f.recs), nsec)
		}
		if incl > orig || incl > int(f.snaplen) || len(b) < 16+incl {
			t.Fatalf("record %d: incl %d orig %d with %d bytes left", len(f.recs), incl, orig, len(b)-16)
		}
		f.recs = append(f.recs, pcapRec{ts: time.Unix(int64(sec), int64(nsec)), orig: orig, data: b[16 : 16+incl]})
		b = b[16+incl:]
	}
	return f
}

// lockedBuffer is a bytes.Buffer safe for the flush timer's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// fakePacket is an IPv4-looking packet: version/IHL byte, then a
// direction mark and a sequence number, then filler up to size.
func fakePacket(dir byte, i, size int) []byte {
	p := make([]byte, size)
	p[0] = 0x45
	p[1] = dir
	binary.BigEndian.PutUint32(p[2:], uint32(i))
	for j := 6; j < size; j++ {
		p[j] = byte(i + j)
	}
	return p
}

func TestCaptureRecordsBothDirectionsInOrder(t *testing.T) {
	a, b := Pipe(1500)
	var out bytes.Buffer
	c, err := Capture(a, &out)
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() != 24 {
		t.Fatalf("after Capture the file has %d bytes, want the 24-byte global header", out.Len())
	}
	start := time.Now()
	var want [][]byte
	buf := make([]byte, 1500)
	for i := 0; i < 50; i++ {
		po := fakePacket('o', i, 20+i*29)
		if _, err := c.Write(po); err != nil {
			t.Fatal(err)
		}
		want = append(want, po)
		if n, err := b.Read(buf); err != nil || !bytes.Equal(buf[:n], po) {
			t.Fatalf("packet %d did not cross the pipe: %v", i, err)
		}
		pi := fakePacket('i', i, 1500-i*13)
		if _, err := b.Write(pi); err != nil {
			t.Fatal(err)
		}
		n, err := c.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], pi) {
			t.Fatalf("packet %d read through the capture: %v", i, err)
		}
		want = append(want, pi)
	}
	// Refused packets are not recorded.
	if _, err := c.Write(make([]byte, 1501)); !errors.Is(err, ErrTooBig) {
		t.Fatalf("oversized write: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	// Closed: nothing more is recorded, and Close again is harmless.
	c.Write(fakePacket('x', 0, 40))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	f := readPcap(t, out.Bytes())
	if f.major != 2 || f.minor != 4 || f.snaplen != 65535 || f.linktype != PcapLinkTypeRaw {
		t.Fatalf("global header: version %d.%d snaplen %d linktype %d", f.major, f.minor, f.snaplen, f.linktype)
	}
	if len(f.recs) != len(want) {
		t.Fatalf("%d records, want %d", len(f.recs), len(want))
	}
	var bytesWant uint64
	for i, r := range f.recs {
		if !bytes.Equal(r.data, want[i]) || r.orig != len(want[i]) {
			t.Fatalf("record %d: %d/%d bytes % x..., want %d bytes % x...", i, len(r.data), r.orig,
				r.data[:min(8, len(r.data))], len(want[i]), want[i][:8])
		}
		// pcap time has no monotonic clock: allow for the wall clock.
		if r.ts.Before(start.Round(0).Add(-time.Millisecond)) || r.ts.After(end.Round(0).Add(time.Millisecond)) {
			t.Fatalf("record %d: time %v outside [%v, %v]", i, r.ts, start, end)
		}
		if i > 0 && r.ts.Before(f.recs[i-1].ts) {
			t.Fatalf("record %d: time %v before the previous %v", i, r.ts, f.recs[i-1].ts)
		}
		bytesWant += uint64(len(want[i]))
	}
	if st := c.Stats(); st.Packets != uint64(len(want)) || st.Bytes != bytesWant || st.Missed != 0 {
		t.Fatalf("stats %+v, want %d packets, %d bytes", st, len(want), bytesWant)
	}
}

// TestCaptureConcurrent reads and writes on two goroutines, as the stack
// does; each direction must come out whole and in order (go test -race).
func TestCaptureConcurrent(t *testing.T) {
	a, b := Pipe(1500)
	var out bytes.Buffer
	c, err := Capture(a, &out)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500 // under the pipe's queue length: nothing is dropped
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // the stack sending
		defer wg.Done()
		for i := 0; i < n; i++ {
			c.Write(fakePacket('o', i, 40+i%1400))
		}
	}()
	go func() { // the kernel sending
		defer wg.Done()
		for i := 0; i < n; i++ {
			b.Write(fakePacket('i', i, 1500-i%1400))
		}
	}()
	go func() { // the stack receiving
		defer wg.Done()
		buf := make([]byte, 1500)
		for i := 0; i < n; i++ {
			if _, err := c.Read(buf); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	c.Close()
	next := map[byte]int{}
	for i, r := range readPcap(t, out.Bytes()).recs {
		dir := r.data[1]
		want := fakePacket(dir, next[dir], len(r.data))
		if (dir != 'o' && dir != 'i') || !bytes.Equal(r.data, want) {
			t.Fatalf("record %d: direction %q, sequence %d, want %d", i, dir, binary.BigEndian.Uint32(r.data[2:]), next[dir])
		}
		next[dir]++
	}
	if next['o'] != n || next['i'] != n {
		t.Fatalf("recorded %d out and %d in, want %d each", next['o'], next['i'], n)
	}
}

func TestCaptureNoAllocs(t *testing.T) {
	a, b := Pipe(1500)
	defer a.Close()
	c, err := Capture(a, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p := fakePacket('o', 1, 1400)
	buf := make([]byte, 1500)
	allocs := testing.AllocsPerRun(1000, func() {
		c.Write(p)
		b.Read(buf)
		b.Write(p)
		c.Read(buf)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet pair, want 0", allocs)
	}
	if st := c.Stats(); st.Packets < 2000 {
		t.Fatalf("stats %+v", st)
	}
}

// failingWriter accepts ok bytes, then fails.
type failingWriter struct {
	mu sync.Mutex
	ok int
}

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(p) > w.ok {
		n := w.ok
		w.ok = 0
		return n, errDiskFull
	}
	w.ok -= len(p)
	return len(p), nil
}

func TestCaptureWriteErrorKeepsTheLink(t *testing.T) {
	a, b := Pipe(1500)
	if _, err := Capture(a, &failingWriter{ok: 10}); err == nil || !errors.Is(err, errDiskFull) {
		t.Fatalf("Capture with an unwritable header: %v", err)
	}
	w := &failingWriter{ok: 24 + 100<<10} // the header, then about 100 KiB
	c, err := Capture(a, w)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	const n = 200 // 200 × (1400 + 16) bytes is more than the writer takes
	for i := 0; i < n; i++ {
		p := fakePacket('o', i, 1400)
		if k, err := c.Write(p); k != len(p) || err != nil {
			t.Fatalf("write %d: %d %v", i, k, err)
		}
		if k, err := b.Read(buf); err != nil || !bytes.Equal(buf[:k], p) {
			t.Fatalf("packet %d lost: %v", i, err)
		}
	}
	err = c.Err()
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("Err() = %v, want the writer's error", err)
	}
	if err := c.Flush(); !errors.Is(err, errDiskFull) {
		t.Fatalf("Flush() = %v", err)
	}
	st := c.Stats()
	if st.Missed == 0 || st.Packets+st.Missed != n {
		t.Fatalf("stats %+v: want recorded + missed = %d", st, n)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close() = %v; a capture error must not fail the device", err)
	}
	t.Logf("%v; %+v", err, st)
}

func TestCaptureFlush(t *testing.T) {
	a, b := Pipe(1500)
	defer a.Close()
	out := &lockedBuffer{}
	c, err := Capture(a, out)
	if err != nil {
		t.Fatal(err)
	}
	p := fakePacket('o', 7, 100)
	c.Write(p)
	b.Read(make([]byte, 1500))
	if got := len(out.Bytes()); got != 24 {
		t.Fatalf("%d bytes before any flush, want the buffered record held back", got)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if recs := readPcap(t, out.Bytes()).recs; len(recs) != 1 || !bytes.Equal(recs[0].data, p) {
		t.Fatalf("after Flush: %d records", len(recs))
	}
	// Without Flush, a record reaches the writer within a second or so.
	c.Write(p)
	b.Read(make([]byte, 1500))
	if !waitUntil(3*time.Second, func() bool { return len(out.Bytes()) == 24+2*(16+100) }) {
		t.Fatalf("the buffered record was never flushed: %d bytes", len(out.Bytes()))
	}
}

func waitUntil(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestCaptureSnapLen(t *testing.T) {
	a, b := Pipe(70000)
	var out bytes.Buffer
	c, err := Capture(a, &out)
	if err != nil {
		t.Fatal(err)
	}
	p := fakePacket('o', 1, 70000)
	c.Write(p)
	b.Read(make([]byte, 70000))
	c.Close()
	recs := readPcap(t, out.Bytes()).recs
	if len(recs) != 1 || recs[0].orig != 70000 || !bytes.Equal(recs[0].data, p[:PcapSnapLen]) {
		t.Fatalf("records %d: %s", len(recs), fmt.Sprint(len(recs[0].data), "/", recs[0].orig))
	}
}

// TestCaptureTsharkReadsBothFamilies: one capture holds IPv4 and IPv6
// packets under LINKTYPE_RAW, and tshark reads both back: the addresses
// of each family, the pieces of a super-segment of each with their
// sequence numbers, lengths and verified TCP checksums. Without tshark it
// skips, or fails when TUND_REQUIRE_INTEGRATION=1 (as CI sets, and CI
// installs tshark).
func TestCaptureTsharkReadsBothFamilies(t *testing.T) {
	path, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("TUND_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("TUND_REQUIRE_INTEGRATION=1 but tshark is not installed")
		}
		t.Skip("tshark is not installed: not checking that it reads the capture")
	}
	a, b := PipeOffload(1500)
	defer b.Close()
	var buf bytes.Buffer
	c, err := Capture(a, &buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []int{4, 6} {
		pkt := superSegmentOf(v, header.TCPFlagAck, randomPayload(3000, 13))
		hl := headLen(v)
		if err := c.WriteOffload(pkt[:hl], pkt[hl:], Offload{GSOSize: 1400, CsumPartial: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "both.pcap")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-n", "-r", file, "-o", "tcp.check_checksum:TRUE", "-T", "fields",
		"-E", "separator=,", "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst",
		"-e", "tcp.seq_raw", "-e", "tcp.len", "-e", "tcp.checksum.status")
	var stderr strings.Builder
	cmd.Stderr = &stderr // it only warns about running as root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	// Checksum status 1 is "Good".
	want := ""
	for _, addrs := range []string{"10.0.0.1,10.0.0.2,,", ",,2001:db8::1,2001:db8::2"} {
		for i, n := range []int{1400, 1400, 200} {
			want += fmt.Sprintf("%s,%d,%d,1\n", addrs, 0xfffff000+1400*i, n)
		}
	}
	if string(out) != want {
		t.Fatalf("tshark read\n%s\nwant\n%s", out, want)
	}
}
