package main

import (
	"context"
	"math"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestJain(t *testing.T) {
	for _, c := range []struct {
		x    []float64
		want float64
	}{
		{[]float64{5, 5, 5, 5}, 1},
		{[]float64{1, 0, 0, 0}, 0.25},
		{[]float64{1, 1, 0, 0}, 0.5},
		{[]float64{1, 2, 3}, 36.0 / 42},
		{[]float64{0, 0}, 0},
		{nil, 0},
	} {
		if got := jain(c.x); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("jain(%v) = %v, want %v", c.x, got, c.want)
		}
	}
}

// TestRunOverLoopback runs pardl against an HTTP /bytes/N server on
// loopback whose flows are throttled unevenly: flow rates must come out
// uneven, and Jain's index below 1.
func TestRunOverLoopback(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	buf := make([]byte, 16<<10)
	next := make(chan int, 4)
	for i := range 4 {
		next <- i
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := <-next // flow i gets i+1 chunks every tick
		w.Header().Set("Content-Length", strconv.Itoa(1<<30))
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			for range i + 1 {
				if _, err := w.Write(buf); err != nil {
					return
				}
			}
			w.(http.Flusher).Flush()
		}
	})}
	go srv.Serve(l)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := run(ctx, l.Addr().String(), 4, 1<<30, 100*time.Millisecond, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rates) != 4 || r.Failed != 0 {
		t.Fatalf("result %+v", r)
	}
	// Rates are 1:2:3:4 units (Jain 100/120 = 0.83), give or take a
	// tick; the bounds are loose so that a loaded machine cannot fail it.
	if r.Rates[0] <= 0 || r.Rates[3] < 2*r.Rates[0] || r.Jain > 0.95 || r.Jain < 0.6 {
		t.Errorf("rates %v, Jain %.3f: want about 1:2:3:4 and Jain about 0.83", r.Rates, r.Jain)
	}
	if want := sum(r.Rates) / 1e9; math.Abs(r.Gbps-want) > 1e-9 {
		t.Errorf("aggregate %v, want %v", r.Gbps, want)
	}
}

func sum(x []float64) (s float64) {
	for _, v := range x {
		s += v
	}
	return s
}
