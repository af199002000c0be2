package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// webDriver is just enough of a W3C WebDriver client to drive the
// distribution's Chromium through chromedriver: a session, a page, and
// scripts run in it.
type webDriver struct {
	t       *testing.T
	base    string // http://127.0.0.1:PORT
	session string
}

// call sends a WebDriver command and decodes its "value" into out.
func (wd *webDriver) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, wd.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, raw)
	}
	var env struct{ Value json.RawMessage }
	if err := json.Unmarshal(raw, &env); err != nil {
		return err
	}
	if out != nil {
		return json.Unmarshal(env.Value, out)
	}
	return nil
}

// startBrowser runs chromedriver on a free loopback port and opens a
// headless Chromium session (closed when the test ends).
func startBrowser(t *testing.T) *webDriver {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("chromedriver", fmt.Sprintf("--port=%d", port), "--allowed-ips=127.0.0.1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "started successfully") {
				ready <- true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("chromedriver did not start")
	}
	wd := &webDriver{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": "/usr/bin/chromium",
			// No background networking: the browser talks to tund's
			// loopback address and nowhere else.
			"args": []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--disable-default-apps", "--user-data-dir=" + t.TempDir()},
		},
	}}}
	var sess struct{ SessionID string }
	if err := wd.call("POST", "/session", caps, &sess); err != nil {
		t.Fatalf("new browser session: %v", err)
	}
	wd.session = sess.SessionID
	t.Cleanup(func() { wd.call("DELETE", "/session/"+wd.session, nil, nil) })
	return wd
}

// open loads url in the browser.
func (wd *webDriver) open(url string) {
	wd.t.Helper()
	if err := wd.call("POST", "/session/"+wd.session+"/url", map[string]string{"url": url}, nil); err != nil {
		wd.t.Fatal(err)
	}
}

// eval runs script in the page and returns its result as a string.
func (wd *webDriver) eval(script string) string {
	wd.t.Helper()
	var v any
	if err := wd.call("POST", "/session/"+wd.session+"/execute/sync", map[string]any{"script": script, "args": []any{}}, &v); err != nil {
		wd.t.Fatal(err)
	}
	return fmt.Sprint(v)
}

// waitEval waits up to 10 s for script's result to be want.
func (wd *webDriver) waitEval(script, want string) {
	wd.t.Helper()
	var got string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = wd.eval(script); got == want {
			return
		}
	}
	wd.t.Fatalf("%s: %q, want %q", script, got, want)
}

// TestLiveDiagramInABrowser: tund's live state diagram (beside -metrics,
// host side) in a real headless Chromium: the page loads and follows the
// event stream; a connection made from the namespace shows in the counts
// and lights its edges as it opens and closes.
func TestLiveDiagramInABrowser(t *testing.T) {
	need(t)
	needTool(t, "chromium")
	needTool(t, "chromedriver")
	ns := newNetNS(t)
	proc := startTund(t, ns, "-metrics", "127.0.0.1:0")
	m := regexp.MustCompile(`msg="live state diagram" url=(http://127\.0\.0\.1:\d+/diagram)`).FindStringSubmatch(proc.log())
	if m == nil {
		t.Fatalf("no diagram URL in the log:\n%s", proc.log())
	}
	wd := startBrowser(t)
	wd.open(m[1])
	count := func(state string) string {
		return `return document.getElementById("c-` + state + `").textContent`
	}
	taken := func(edge string) string {
		return `return document.getElementById("` + edge + `").dataset.taken || "0"`
	}
	wd.waitEval(`return document.getElementById("status").textContent`, "live")
	wd.waitEval(count("LISTEN"), "4")
	wd.waitEval(count("ESTABLISHED"), "0")
	if got := wd.eval(`return document.querySelectorAll("g.edge").length`); got == "0" {
		t.Fatal("the page draws no edges")
	}

	c, err := nsDial(t, ns, stackAddr+":7", 0)
	if err != nil {
		t.Fatal(err)
	}
	wd.waitEval(count("ESTABLISHED"), "1")
	wd.waitEval(taken("e-LISTEN-SYN-RECEIVED"), "1")
	wd.waitEval(taken("e-SYN-RECEIVED-ESTABLISHED"), "1")
	if last := wd.eval(`return document.body.dataset.last || ""`); !strings.Contains(last, "→ ESTABLISHED") {
		t.Errorf("the page's last edge: %q", last)
	}

	c.Close() // the client closes first: tund's side goes CLOSE-WAIT, LAST-ACK, CLOSED
	wd.waitEval(taken("e-LAST-ACK-CLOSED"), "1")
	wd.waitEval(count("ESTABLISHED"), "0")
	t.Logf("edges taken: %s", wd.eval(`return Array.from(document.querySelectorAll("g.edge")).filter(g => g.dataset.taken).map(g => g.id + "=" + g.dataset.taken).join(" ")`))
}
