package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// nginxBin is the distribution's nginx (package nginx or nginx-light).
const nginxBin = "/usr/sbin/nginx"

// needDaemon is needTool for a program the distribution installs outside
// PATH (its daemons live in /usr/sbin): a skip with the reason, a failure
// when CI requires the integration tests.
func needDaemon(t *testing.T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("TUND_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("TUND_REQUIRE_INTEGRATION=1 but %s is missing (%s)", path, pkg)
		}
		skipped.add(t.Name(), "needs "+path)
		t.Skip("needs " + path)
	}
}

// nginxServer is the distribution's nginx serving a directory inside a
// test's namespace: one process (master_process off), every file it
// writes (pid, temp paths, the log on stderr) in the test's temp dir, so
// nothing of the host's is read or touched but the binary.
type nginxServer struct {
	cmd  *exec.Cmd
	root string // the directory it serves
	mu   sync.Mutex
	log  strings.Builder
	done chan struct{}
}

func (n *nginxServer) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.log.Len() < 64<<10 {
		n.log.Write(p)
	}
	return len(p), nil
}

func (n *nginxServer) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log.String()
}

// kill ends nginx at once (SIGKILL): its kernel closes its sockets.
func (n *nginxServer) kill() {
	n.cmd.Process.Kill()
	<-n.done
}

// startNginx runs nginx in ns listening on addr (HOST:PORT) and waits
// until it accepts connections; its root is returned empty, for the test
// to fill. It is killed when the test ends.
func startNginx(t *testing.T, ns, addr string) *nginxServer {
	t.Helper()
	needDaemon(t, nginxBin, "nginx")
	dir := t.TempDir()
	n := &nginxServer{root: filepath.Join(dir, "www"), done: make(chan struct{})}
	if err := os.Mkdir(n.root, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_timeout 30s;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen %[2]s;
		root %[1]s/www;
	}
}
`, dir, addr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// -e stderr: the error log nginx opens before reading its
	// configuration goes to the test, not to /var/log/nginx.
	n.cmd = exec.Command("ip", "netns", "exec", ns, nginxBin, "-e", "stderr", "-p", dir, "-c", confPath)
	n.cmd.Stdout, n.cmd.Stderr = n, n
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(n.kill)
	if !waitFor(10*time.Second, func() bool {
		c, err := nsDialOpts(ns, addr, dialOpts{timeout: time.Second})
		if err != nil {
			return false
		}
		c.Close()
		return true
	}) {
		t.Fatalf("nginx did not start listening on %s:\n%s", addr, n)
	}
	return n
}

// writePattern writes n bytes of patternReader's pattern to path.
func writePattern(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFrom(&patternReader{n: n}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
