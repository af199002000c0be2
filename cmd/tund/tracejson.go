package main

import (
	"bufio"
	"encoding/json"
	"io"
	"sync"

	"github.com/tund-project/tund/stack"
)

// jsonTrace writes transitions and samples as JSON lines, one object per
// line, for scripts (scripts/plot turns them into an SVG plot):
//
//	{"t":0.0123,"kind":"transition","local":"198.18.0.2:80","remote":"198.18.0.1:40312","from":"ESTABLISHED","to":"CLOSE-WAIT","on":"rcv FIN","seq":1,"ack":2}
//	{"t":0.0200,"kind":"sample","local":"...","remote":"...","state":"ESTABLISHED","cwnd":14480,"ssthresh":1073741824,"inflight":2896,"snd_wnd":65535,"srtt_us":310,"rto_us":200000,"retrans":3,"timeouts":1,"dsacks":1,"loss":"open","reo_wnd_us":25,"rack_rtt_us":305,"prr_delivered":14480,"prr_out":8688,"spurious_undone":1}
type jsonTrace struct {
	mu  sync.Mutex
	w   *bufio.Writer
	enc *json.Encoder
	c   io.Closer
}

func newJSONTrace(w io.WriteCloser) *jsonTrace {
	bw := bufio.NewWriterSize(w, 64<<10)
	return &jsonTrace{w: bw, enc: json.NewEncoder(bw), c: w}
}

type jsonEvent struct {
	T      float64 `json:"t"`
	Kind   string  `json:"kind"`
	Local  string  `json:"local"`
	Remote string  `json:"remote,omitempty"`
	// Transitions.
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	On     string `json:"on,omitempty"`
	Action string `json:"action,omitempty"`
	Seq    uint32 `json:"seq,omitempty"`
	Ack    uint32 `json:"ack,omitempty"`
	// Samples.
	State    string `json:"state,omitempty"`
	Cwnd     int    `json:"cwnd,omitempty"`
	SSThresh int    `json:"ssthresh,omitempty"`
	InFlight int    `json:"inflight"`
	SndWnd   int    `json:"snd_wnd,omitempty"`
	SRTTus   int64  `json:"srtt_us,omitempty"`
	RTOus    int64  `json:"rto_us,omitempty"`
	Retrans  uint64 `json:"retrans,omitempty"`
	Timeouts uint64 `json:"timeouts,omitempty"`
	DSACKs   uint64 `json:"dsacks,omitempty"`
	// Loss recovery (RFC 8985, RFC 6937).
	Loss         string `json:"loss,omitempty"`
	ReoWndus     int64  `json:"reo_wnd_us,omitempty"`
	RACKRTTus    int64  `json:"rack_rtt_us,omitempty"`
	PRRDelivered int    `json:"prr_delivered,omitempty"`
	PRROut       int    `json:"prr_out,omitempty"`
	Spurious     uint64 `json:"spurious_undone,omitempty"`
}

func (j *jsonTrace) transition(ev stack.TraceEvent) {
	e := jsonEvent{T: ev.Time.Seconds(), Kind: "transition", Local: ev.Local.String(),
		From: ev.From.String(), To: ev.To.String(), On: ev.On.String(), Action: ev.Action}
	if ev.Remote.IsValid() {
		e.Remote = ev.Remote.String()
	}
	if ev.HasSegment {
		e.Seq, e.Ack = uint32(ev.Seq), uint32(ev.Ack)
	}
	j.write(&e)
}

func (j *jsonTrace) sample(s stack.Sample) {
	j.write(&jsonEvent{T: s.Time.Seconds(), Kind: "sample", Local: s.Local.String(), Remote: s.Remote.String(),
		State: s.State, Cwnd: s.Cwnd, SSThresh: s.SSThresh, InFlight: s.InFlight, SndWnd: s.SndWnd,
		SRTTus: s.SRTT.Microseconds(), RTOus: s.RTO.Microseconds(), Retrans: s.Retransmits,
		Timeouts: s.Timeouts, DSACKs: s.DSACKs, Loss: s.LossState, ReoWndus: s.ReoWnd.Microseconds(),
		RACKRTTus: s.RACKRTT.Microseconds(), PRRDelivered: s.PRRDelivered, PRROut: s.PRROut, Spurious: s.Spurious})
}

func (j *jsonTrace) write(e *jsonEvent) {
	j.mu.Lock()
	_ = j.enc.Encode(e)
	j.mu.Unlock()
}

// Close flushes and closes the file.
func (j *jsonTrace) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.w.Flush()
	if cerr := j.c.Close(); err == nil {
		err = cerr
	}
	return err
}
