package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// TestDiagramHub: the page draws every state and every edge of the
// table; the state snapshot counts connections per state and edges
// taken; the event stream reports an edge the moment a connection takes
// it.
func TestDiagramHub(t *testing.T) {
	hub := newDiagramHub(nil)
	da, db := tun.Pipe(1500)
	server, err := stack.New(db, stack.Config{Addr: netip.MustParseAddr("10.9.0.2"), Trace: hub.publish})
	if err != nil {
		t.Fatal(err)
	}
	client, err := stack.New(da, stack.Config{Addr: netip.MustParseAddr("10.9.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	defer server.Close()
	hub.st = server
	mux := http.NewServeMux()
	hub.routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer hub.close()

	page := get(t, srv.URL+"/diagram")
	for st := tcp.Closed; st <= tcp.TimeWait; st++ {
		if !strings.Contains(page, `id="c-`+st.String()+`"`) {
			t.Errorf("the page has no count for %s", st)
		}
	}
	for _, tr := range append(tcp.Transitions, tcp.Loops...) {
		if !strings.Contains(page, `id="`+edgeID(tr.From, tr.To)+`"`) {
			t.Errorf("the page has no arrow for %v → %v", tr.From, tr.To)
		}
	}

	resp, err := http.Get(srv.URL + "/diagram/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events: Content-Type %q", ct)
	}
	events := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		var event string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "edge":
				events <- strings.TrimPrefix(line, "data: ")
			}
		}
		close(events)
	}()

	l, err := server.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	c, err := client.Dial("tcp", "10.9.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"e-LISTEN-SYN-RECEIVED": false, "e-SYN-RECEIVED-ESTABLISHED": false}
	deadline := time.After(5 * time.Second)
	for !want["e-LISTEN-SYN-RECEIVED"] || !want["e-SYN-RECEIVED-ESTABLISHED"] {
		select {
		case data := <-events:
			var e diagramEvent
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				t.Fatalf("edge event %q: %v", data, err)
			}
			if _, ok := want[e.Edge]; ok {
				want[e.Edge] = true
				if e.N != 1 {
					t.Errorf("%s taken %d times, want 1", e.Edge, e.N)
				}
			}
		case <-deadline:
			t.Fatalf("edges seen: %v", want)
		}
	}
	var s diagramState
	if err := json.Unmarshal([]byte(get(t, srv.URL+"/diagram/state")), &s); err != nil {
		t.Fatal(err)
	}
	if s.States["ESTABLISHED"] != 1 || s.States["LISTEN"] != 1 || s.Taken["e-SYN-RECEIVED-ESTABLISHED"] != 1 {
		t.Errorf("state %+v", s)
	}
	c.Close()

	// Closing the hub ends the stream (tund stopping).
	hub.close()
	for range events {
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	return string(b)
}
