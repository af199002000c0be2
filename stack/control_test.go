package stack

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// holderEnv, when set, makes the test binary a control socket holder:
// ListenControl on the path it names, print "ready", then hold the socket
// without ever answering until stdin closes (or it is killed).
const holderEnv = "TUND_TEST_CONTROL_HOLDER"

func TestMain(m *testing.M) {
	if path := os.Getenv(holderEnv); path != "" {
		l, err := ListenControl(path)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		l.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startHolder runs a control socket holder in a child process.
func startHolder(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("holder: %q", line)
	}
	return cmd
}

// checkOneLineNaming fails unless err is a one-line error naming path.
func checkOneLineNaming(t *testing.T, err error, path string) {
	t.Helper()
	if err == nil {
		t.Fatal("a second ListenControl on a held path succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, path) || strings.Contains(msg, "\n") {
		t.Fatalf("error %q: want one line naming %s", msg, path)
	}
}

// sameSocket fails unless path is still the socket file fi was.
func sameSocket(t *testing.T, path string, fi os.FileInfo) {
	t.Helper()
	now, err := os.Lstat(path)
	if err != nil || !os.SameFile(fi, now) {
		t.Fatalf("the holder's socket file was removed or replaced (%v)", err)
	}
}

// refusedWhileHeld checks that ListenControl on a path someone holds
// fails, naming it, and leaves the holder's socket alone.
func refusedWhileHeld(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ListenControl(path)
	if err == nil {
		l.Close()
	}
	checkOneLineNaming(t, err, path)
	sameSocket(t, path, fi)
}

// TestListenControlSecondListenerFails: two listeners on one path, in
// one process: the second fails naming the path and leaves the first's
// socket alone; once the first closes, socket and lock file are gone and
// the path can be served again.
func TestListenControlSecondListenerFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	l1, err := ListenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	refusedWhileHeld(t, path)
	l1.Close()
	for _, p := range []string{path, path + ".lock"} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after Close (%v)", p, err)
		}
	}
	l2, err := ListenControl(path)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	l2.Close()
}

// TestListenControlLeavesSlowHolderAlone: a live holder whose socket
// does not answer (its accept queue is full: the daemon is busy or
// stuck) keeps its socket; a second ListenControl fails naming the path
// instead of taking a silent socket for a stale one.
func TestListenControlLeavesSlowHolderAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	// The holder, by hand: the lock a live tund holds, and a socket with
	// a backlog of 0 that one pending connection fills.
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		cfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(cfd)
		err = unix.Connect(cfd, &unix.SockaddrUnix{Name: path})
		if err == unix.EAGAIN {
			break // full: the socket answers nobody now
		}
		if err != nil || i == 10 {
			t.Fatalf("filling the backlog: %v after %d", err, i)
		}
	}
	refusedWhileHeld(t, path)
}

// TestListenControlAcrossProcesses: another process holding the path
// makes ListenControl fail at once, naming it; when that process dies
// without cleaning up (SIGKILL), its socket file and lock file are left
// behind, and the next ListenControl replaces the stale socket.
func TestListenControlAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	holder := startHolder(t, path)
	refusedWhileHeld(t, path)

	holder.Process.Signal(syscall.SIGKILL)
	holder.Wait()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the killed holder's socket should be left behind: %v", err)
	}
	l, err := ListenControl(path)
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	defer l.Close()
	// It is ours now: it answers.
	s, _ := pipePair(t, 1500)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.ServeControl(ctx, l)
	var stats Stats
	qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
	defer qcancel()
	if err := QueryControl(qctx, path, "stats", &stats); err != nil {
		t.Fatal(err)
	}
}

// TestListenControlKeepsOtherFiles: a file at the path that is not a
// socket is never removed.
func TestListenControlKeepsOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := ListenControl(path)
	if err == nil {
		l.Close()
		t.Fatal("ListenControl replaced a regular file")
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatalf("the file at the path was changed: %q", b)
	}
	if _, err := os.Lstat(path + ".lock"); !os.IsNotExist(err) {
		t.Errorf("lock file left after a failed ListenControl (%v)", err)
	}
}

// TestHandleControl: a command added with HandleControl gets its
// arguments and streams its answer; its error is the last line; the
// built-in commands still answer, and an unknown one gets an error.
func TestHandleControl(t *testing.T) {
	a, _ := pipePair(t, 1500)
	a.HandleControl("count", func(ctx context.Context, args string, w io.Writer) error {
		n, err := strconv.Atoi(args)
		if err != nil {
			return fmt.Errorf("not a number: %q", args)
		}
		for i := range n {
			fmt.Fprintf(w, "line %d\n", i)
		}
		return nil
	})
	path := filepath.Join(t.TempDir(), "ctl.sock")
	l, err := ListenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.ServeControl(ctx, l)
	ask := func(req string) string {
		t.Helper()
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "%s\n", req)
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := ask("count 3"); got != "line 0\nline 1\nline 2\n" {
		t.Errorf("count 3: %q", got)
	}
	if got := ask("count x"); got != "error: not a number: \"x\"\n" {
		t.Errorf("count x: %q", got)
	}
	if got := ask("states"); !strings.Contains(got, "{") {
		t.Errorf("states: %q", got)
	}
	if got := ask("nonsense"); !strings.Contains(got, `unknown command \"nonsense\"`) {
		t.Errorf("nonsense: %q", got)
	}
}
