package main

import (
	"encoding/json"
	"fmt"
	"html"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tcp"
)

// The live diagram: beside -metrics, tund serves /diagram, RFC 9293's
// state diagram drawn from tcp.Transitions (and the loops, tcp.Loops),
// each state showing how many connections are in it now and each edge
// lighting up as a connection takes it. The page follows /diagram/events,
// a server-sent event stream fed by the stack's trace hook; /diagram/state
// is the same as one JSON snapshot, for a page that has just loaded.

// diagramHub counts the edges taken and fans trace events out to the
// pages following them. publish is the stack's trace hook: it never
// blocks (a page that falls behind loses events, and the counts it is
// sent every second put it right).
type diagramHub struct {
	st    *stack.Stack
	mu    sync.Mutex
	taken map[string]uint64 // edge ID → times taken since tund started
	subs  map[chan diagramEvent]struct{}
	done  chan struct{}
	once  sync.Once
}

// diagramEvent is one edge taken, as the page is told.
type diagramEvent struct {
	Edge string `json:"edge"`
	From string `json:"from"`
	To   string `json:"to"`
	On   string `json:"on"`
	Peer string `json:"peer"`
	N    uint64 `json:"n"` // times taken so far
}

func newDiagramHub(st *stack.Stack) *diagramHub {
	return &diagramHub{st: st, taken: map[string]uint64{}, subs: map[chan diagramEvent]struct{}{}, done: make(chan struct{})}
}

// edgeID names the drawing's arrow for an edge (a loop is an arrow from a
// state to itself).
func edgeID(from, to tcp.State) string {
	return "e-" + from.String() + "-" + to.String()
}

// publish is a stack.Config.Trace.
func (h *diagramHub) publish(ev stack.TraceEvent) {
	id := edgeID(ev.From, ev.To)
	h.mu.Lock()
	h.taken[id]++
	e := diagramEvent{Edge: id, From: ev.From.String(), To: ev.To.String(), On: ev.On.String(), Peer: ev.Remote.String(), N: h.taken[id]}
	for ch := range h.subs {
		select {
		case ch <- e:
		default: // a slow page: it catches up from the counts
		}
	}
	h.mu.Unlock()
}

func (h *diagramHub) subscribe() chan diagramEvent {
	ch := make(chan diagramEvent, 256)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch
}

func (h *diagramHub) unsubscribe(ch chan diagramEvent) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.mu.Unlock()
}

// close ends every event stream (tund is stopping).
func (h *diagramHub) close() { h.once.Do(func() { close(h.done) }) }

// diagramState is /diagram/state, and each "counts" event.
type diagramState struct {
	States map[string]int    `json:"states"`
	Taken  map[string]uint64 `json:"taken,omitempty"`
}

func (h *diagramHub) state(withTaken bool) diagramState {
	s := diagramState{States: map[string]int{}}
	for st := tcp.Closed; st <= tcp.TimeWait; st++ {
		s.States[st.String()] = 0
	}
	for st, n := range h.st.StateCounts() {
		s.States[st.String()] = n
	}
	if withTaken {
		h.mu.Lock()
		s.Taken = make(map[string]uint64, len(h.taken))
		for id, n := range h.taken {
			s.Taken[id] = n
		}
		h.mu.Unlock()
	}
	return s
}

// routes adds the diagram's handlers to mux.
func (h *diagramHub) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /diagram", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, diagramPage)
	})
	mux.HandleFunc("GET /diagram/state", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h.state(true))
	})
	mux.HandleFunc("GET /diagram/events", h.events)
}

// events is the server-sent event stream: "edge" for every edge taken,
// "counts" every second.
func (h *diagramHub) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	ch := h.subscribe()
	defer h.unsubscribe(ch)
	send := func(event string, v any) bool {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	if !send("counts", h.state(false)) {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case e := <-ch:
			if !send("edge", e) {
				return
			}
		case <-tick.C:
			if !send("counts", h.state(false)) {
				return
			}
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		}
	}
}

// The drawing. Where each state sits is layout, chosen here after the
// RFC's figure; which arrows there are, and their labels, come from
// tcp.Transitions and tcp.Loops.
var statePos = map[tcp.State][2]int{
	tcp.Closed:      {470, 50},
	tcp.Listen:      {250, 150},
	tcp.SynSent:     {720, 150},
	tcp.SynReceived: {250, 280},
	tcp.Established: {470, 370},
	tcp.FinWait1:    {220, 480},
	tcp.CloseWait:   {720, 480},
	tcp.FinWait2:    {110, 610},
	tcp.Closing:     {360, 610},
	tcp.LastAck:     {720, 610},
	tcp.TimeWait:    {240, 730},
}

// pageEdge is one arrow: every transition between two states.
type pageEdge struct {
	from, to tcp.State
	labels   []string
	off      bool // only edges off the main path (tcp.OffMainPath): drawn faint
}

func pageEdges() []pageEdge {
	byKey := map[[2]tcp.State]*pageEdge{}
	var order [][2]tcp.State
	add := func(t tcp.Transition) {
		k := [2]tcp.State{t.From, t.To}
		e := byKey[k]
		if e == nil {
			e = &pageEdge{from: t.From, to: t.To, off: true}
			byKey[k] = e
			order = append(order, k)
		}
		label := t.On.String()
		if t.Action != "" {
			label += " / " + t.Action
		}
		e.labels = append(e.labels, label)
		if !tcp.OffMainPath(t.On) {
			e.off = false // drawn plain as soon as one of its edges is on the main path
		}
	}
	for _, t := range tcp.Transitions {
		add(t)
	}
	for _, t := range tcp.Loops {
		add(t)
	}
	out := make([]pageEdge, 0, len(order))
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	return out
}

// diagramSVG draws the states and arrows.
func diagramSVG() string {
	var b strings.Builder
	b.WriteString(`<svg id="diagram" viewBox="0 0 900 800" xmlns="http://www.w3.org/2000/svg">`)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>`)
	edges := pageEdges()
	for _, e := range edges {
		p, q := statePos[e.from], statePos[e.to]
		cls := "edge"
		if e.off {
			cls += " off"
		}
		id := edgeID(e.from, e.to)
		title := html.EscapeString(strings.Join(e.labels, "\n"))
		var d string
		var lx, ly int
		if e.from == e.to {
			// A loop above the state's box.
			d = fmt.Sprintf("M%d,%d C%d,%d %d,%d %d,%d", p[0]-20, p[1]-18, p[0]-40, p[1]-70, p[0]+40, p[1]-70, p[0]+20, p[1]-18)
			lx, ly = p[0]+44, p[1]-52
		} else {
			// A gentle curve, bent to the right of its direction, so
			// the two arrows between a pair of states do not overlap.
			mx, my := (p[0]+q[0])/2, (p[1]+q[1])/2
			dx, dy := q[0]-p[0], q[1]-p[1]
			cx, cy := mx-dy/6, my+dx/6
			x1, y1 := clipToBox(p, [2]int{cx, cy})
			x2, y2 := clipToBox(q, [2]int{cx, cy})
			d = fmt.Sprintf("M%d,%d Q%d,%d %d,%d", x1, y1, cx, cy, x2, y2)
			lx, ly = (mx+cx)/2, (my+cy)/2
		}
		fmt.Fprintf(&b, `<g class="%s" id="%s"><title>%s</title><path d="%s" marker-end="url(#arrow)"/>`, cls, id, title, d)
		if !e.off && e.from != e.to { // loops and faint arrows: labels on hover only
			fmt.Fprintf(&b, `<text class="label" x="%d" y="%d">%s</text>`, lx, ly, html.EscapeString(e.labels[0]))
		}
		fmt.Fprintf(&b, `<text class="taken" id="n-%s" x="%d" y="%d"></text></g>`, id, lx, ly+12)
	}
	states := make([]tcp.State, 0, len(statePos))
	for st := range statePos {
		states = append(states, st)
	}
	sort.Slice(states, func(i, j int) bool { return states[i] < states[j] })
	for _, st := range states {
		p := statePos[st]
		name := st.String()
		fmt.Fprintf(&b, `<g class="state" id="s-%s"><rect x="%d" y="%d" width="130" height="36" rx="8"/>`, name, p[0]-65, p[1]-18)
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="name">%s</text>`, p[0], p[1]-2, name)
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="count" id="c-%s">0</text></g>`, p[0], p[1]+13, name)
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// clipToBox moves the end of an arrow from a state's centre c to the edge
// of its box, on the line towards toward.
func clipToBox(c, toward [2]int) (int, int) {
	dx, dy := float64(toward[0]-c[0]), float64(toward[1]-c[1])
	if dx == 0 && dy == 0 {
		return c[0], c[1]
	}
	sx, sy := 1e9, 1e9
	if dx != 0 {
		sx = 65 / math.Abs(dx)
	}
	if dy != 0 {
		sy = 18 / math.Abs(dy)
	}
	s := min(sx, sy)
	return c[0] + int(dx*s), c[1] + int(dy*s)
}

// diagramPage is the whole page: the drawing, its style and the script
// that keeps it live.
var diagramPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tund: the state diagram, live</title>
<style>
body { font-family: sans-serif; margin: 1em; }
#diagram { width: 100%; max-width: 1000px; }
.state rect { fill: #eef3fb; stroke: #3060a0; stroke-width: 1.5; }
.state.busy rect { fill: #cfe0ff; }
.state .name { font-size: 12px; text-anchor: middle; font-weight: bold; }
.state .count { font-size: 12px; text-anchor: middle; }
.edge path { fill: none; stroke: #555; stroke-width: 1.3; transition: stroke 0.6s, stroke-width 0.6s; }
.edge.off path { stroke: #bbb; stroke-dasharray: 4 3; }
.edge.lit path { stroke: #e05000; stroke-width: 4; }
.edge .label { font-size: 9px; fill: #333; }
.edge .taken { font-size: 9px; fill: #e05000; }
#status { color: #666; font-size: 13px; }
</style></head><body>
<h1>tund: the state diagram, live</h1>
<p>Each state shows how many connections are in it now; an arrow lights up as a connection takes it, and counts how often it was taken since tund started. Hover an arrow for every trigger on it. <span id="status">connecting…</span></p>
` + diagramSVG() + `
<script>
const status = document.getElementById("status");
function setCounts(states) {
  for (const [name, n] of Object.entries(states)) {
    const c = document.getElementById("c-" + name);
    if (!c) continue;
    c.textContent = String(n);
    document.getElementById("s-" + name).classList.toggle("busy", n > 0);
  }
}
function setTaken(id, n) {
  const t = document.getElementById("n-" + id);
  if (t) t.textContent = "×" + n;
  const g = document.getElementById(id);
  if (g) g.dataset.taken = String(n);
}
function light(id) {
  const g = document.getElementById(id);
  if (!g) return;
  g.classList.add("lit");
  clearTimeout(g._timer);
  g._timer = setTimeout(() => g.classList.remove("lit"), 1500);
}
fetch("/diagram/state").then(r => r.json()).then(s => {
  setCounts(s.states);
  for (const [id, n] of Object.entries(s.taken || {})) setTaken(id, n);
});
const es = new EventSource("/diagram/events");
es.onopen = () => { status.textContent = "live"; };
es.onerror = () => { status.textContent = "disconnected; retrying…"; };
es.addEventListener("counts", e => setCounts(JSON.parse(e.data).states));
es.addEventListener("edge", e => {
  const ev = JSON.parse(e.data);
  setTaken(ev.edge, ev.n);
  light(ev.edge);
  document.body.dataset.last = ev.from + " → " + ev.to + " on " + ev.on;
});
</script></body></html>
`
