// Command plot turns tund -trace-json files into an SVG line chart, one
// series per file, of a per-connection figure over time: cwnd (default),
// inflight, srtt or rto. Each file contributes its busiest connection (the
// one with the most samples). No dependencies: the SVG is written by hand.
//
//	go run ./scripts/plot -o cwnd.svg -metric cwnd newreno=nr.jsonl cubic=cu.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

type event struct {
	T        float64 `json:"t"`
	Kind     string  `json:"kind"`
	Local    string  `json:"local"`
	Remote   string  `json:"remote"`
	Cwnd     float64 `json:"cwnd"`
	InFlight float64 `json:"inflight"`
	SRTTus   float64 `json:"srtt_us"`
	RTOus    float64 `json:"rto_us"`
}

type point struct{ x, y float64 }

type series struct {
	name   string
	points []point
}

var metrics = map[string]struct {
	unit string
	get  func(e *event) float64
}{
	"cwnd":     {"KiB", func(e *event) float64 { return e.Cwnd / 1024 }},
	"inflight": {"KiB", func(e *event) float64 { return e.InFlight / 1024 }},
	"srtt":     {"ms", func(e *event) float64 { return e.SRTTus / 1000 }},
	"rto":      {"ms", func(e *event) float64 { return e.RTOus / 1000 }},
}

func main() {
	out := flag.String("o", "plot.svg", "output SVG `file`")
	metric := flag.String("metric", "cwnd", "what to plot: cwnd, inflight, srtt or rto")
	title := flag.String("title", "", "chart title (default: the metric)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: plot [-o out.svg] [-metric cwnd] name=trace.jsonl ...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*out, *metric, *title, flag.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "plot: %v\n", err)
		os.Exit(1)
	}
}

func run(out, metric, title string, args []string) error {
	m, ok := metrics[metric]
	if !ok {
		return fmt.Errorf("-metric %q: want cwnd, inflight, srtt or rto", metric)
	}
	if len(args) == 0 {
		return errors.New("no trace files: give name=file.jsonl arguments")
	}
	var all []series
	for _, a := range args {
		name, path, ok := strings.Cut(a, "=")
		if !ok {
			name, path = a, a
		}
		s, err := load(name, path, m.get)
		if err != nil {
			return err
		}
		all = append(all, s)
	}
	if title == "" {
		title = fmt.Sprintf("%s over time", metric)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	return svg(f, title, fmt.Sprintf("%s (%s)", metric, m.unit), all)
}

// load reads the samples of path's busiest connection.
func load(name, path string, get func(*event) float64) (series, error) {
	f, err := os.Open(path)
	if err != nil {
		return series{}, err
	}
	defer f.Close()
	byConn := map[string][]event{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Kind != "sample" {
			continue
		}
		k := e.Local + " " + e.Remote
		byConn[k] = append(byConn[k], e)
	}
	if err := sc.Err(); err != nil {
		return series{}, fmt.Errorf("%s: %v", path, err)
	}
	var best []event
	for _, evs := range byConn {
		if len(evs) > len(best) {
			best = evs
		}
	}
	if len(best) == 0 {
		return series{}, fmt.Errorf("%s: no samples (was tund run with -trace-json?)", path)
	}
	s := series{name: name}
	t0 := best[0].T
	for i := range best {
		s.points = append(s.points, point{best[i].T - t0, get(&best[i])})
	}
	sort.Slice(s.points, func(i, j int) bool { return s.points[i].x < s.points[j].x })
	return s, nil
}

var colors = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"}

// svg draws the series on shared axes starting at zero.
func svg(w io.Writer, title, ylabel string, all []series) error {
	const W, H, left, right, top, bottom = 900.0, 480.0, 70.0, 20.0, 40.0, 50.0
	maxX, maxY := 0.0, 0.0
	for _, s := range all {
		for _, p := range s.points {
			maxX, maxY = math.Max(maxX, p.x), math.Max(maxY, p.y)
		}
	}
	maxX, maxY = nice(maxX), nice(maxY)
	px := func(x float64) float64 { return left + x/maxX*(W-left-right) }
	py := func(y float64) float64 { return H - bottom - y/maxY*(H-top-bottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%g" y="24" font-size="16">%s</text>`+"\n", left, html.EscapeString(title))
	for i := 0; i <= 5; i++ {
		x, y := maxX*float64(i)/5, maxY*float64(i)/5
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", px(0), py(y), px(maxX), py(y))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%g</text>`+"\n", left-6, py(y)+4, round(y))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%g</text>`+"\n", px(x), H-bottom+18, round(x))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">time (s)</text>`+"\n", (left+W-right)/2, H-10)
	fmt.Fprintf(&b, `<text transform="translate(18,%.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", (top+H-bottom)/2, html.EscapeString(ylabel))
	for i, s := range all {
		c := colors[i%len(colors)]
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="`, c)
		for _, p := range s.points {
			fmt.Fprintf(&b, "%.1f,%.1f ", px(p.x), py(p.y))
		}
		b.WriteString("\"/>\n")
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="14" height="3" fill="%s"/>`, W-right-160, top+8+float64(i)*18, c)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", W-right-140, top+13+float64(i)*18, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// nice rounds v up to 1, 2 or 5 times a power of ten.
func nice(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func round(v float64) float64 { return math.Round(v*1000) / 1000 }
