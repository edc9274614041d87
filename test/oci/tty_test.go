package oci

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/runsc/container"
)

// tmux is a terminal emulator the test drives: a detached session of a
// tmux server of its own (so nothing else's sessions are touched) whose
// screen the test reads.
type tmux struct {
	t    *testing.T
	sock string
}

// newTmux starts cmd (a shell command line) in a w x h window. The pane
// stays after cmd ends so that its last output can be read.
func newTmux(t *testing.T, w, h int, cmd string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed (make deps installs it)")
	}
	x := &tmux{t: t, sock: fmt.Sprintf("veil-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	t.Cleanup(x.close)
	if out, err := exec.Command("tmux", "-L", x.sock, "-f", "/dev/null", "new-session", "-d", "-s", "t",
		"-x", fmt.Sprint(w), "-y", fmt.Sprint(h), cmd).CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	_ = exec.Command("tmux", "-L", x.sock, "set-option", "-t", "t", "remain-on-exit", "on").Run()
	return x
}

// close ends the tmux server (which this test process, a subreaper,
// then reaps) and what runs in it.
func (x *tmux) close() { _ = exec.Command("tmux", "-L", x.sock, "kill-server").Run() }

// keys types keys (tmux key names: "Enter", "C-c", or literal text).
func (x *tmux) keys(keys ...string) {
	x.t.Helper()
	if out, err := exec.Command("tmux", append([]string{"-L", x.sock, "send-keys", "-t", "t"}, keys...)...).CombinedOutput(); err != nil {
		x.t.Fatalf("tmux send-keys %q: %v: %s", keys, err, out)
	}
}

// line types a command line.
func (x *tmux) line(s string) { x.t.Helper(); x.keys("-l", s); x.keys("Enter") }

func (x *tmux) screen() string {
	out, _ := exec.Command("tmux", "-L", x.sock, "capture-pane", "-p", "-t", "t", "-S", "-200").Output()
	return string(out)
}

// waitFor waits until the screen matches re (beyond what it held when
// after was typed: pass the screen from before) and returns the match.
func (x *tmux) waitFor(re string, before string, timeout time.Duration) []string {
	x.t.Helper()
	m := x.tryWait(re, before, timeout)
	if m == nil {
		x.t.Fatalf("terminal never showed %q within %v; screen:\n%s", re, timeout, x.screen())
	}
	return m
}

// tryWait is waitFor that returns nil on a timeout.
func (x *tmux) tryWait(re string, before string, timeout time.Duration) []string {
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		s := x.screen()
		// Only what appeared since before counts.
		fresh := s
		if trimmed := strings.TrimRight(before, "\n "); trimmed != "" && strings.HasPrefix(s, trimmed) {
			fresh = s[len(trimmed):]
		}
		if m := rx.FindStringSubmatch(fresh); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (x *tmux) resize(w, h int) {
	x.t.Helper()
	if out, err := exec.Command("tmux", "-L", x.sock, "resize-window", "-t", "t", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h)).CombinedOutput(); err != nil {
		x.t.Fatalf("tmux resize-window: %v: %s", err, out)
	}
}

// interactiveShell drives a busybox shell on a terminal made by whatever
// started it: prompt, tty, stty size before and after a resize, ^C of a
// foreground sleep leaving the shell alive, exit status. The window is
// 80x24 to begin with.
func interactiveShell(t *testing.T, x *tmux) {
	t.Helper()
	x.waitFor(`/ #`, "", 60*time.Second)
	s := x.screen()
	x.line("tty")
	if m := x.waitFor(`\n(/dev/pts/\d+)\r?\n`, s, 10*time.Second); m == nil {
		t.Fatal("tty")
	}
	s = x.screen()
	x.line("stty size")
	x.waitFor(`\n24 80\r?\n`, s, 10*time.Second)
	// The new size travels from tmux through the client (conmon, ctr,
	// runsc) to the host master and into the sandbox's terminal, which
	// Veil polls: give it a moment before asking.
	x.resize(70, 20)
	for i := 0; ; i++ {
		time.Sleep(500 * time.Millisecond)
		s = x.screen()
		x.line("stty size")
		if x.tryWait(`\n20 70\r?\n`, s, 3*time.Second) != nil {
			break
		}
		if i == 5 {
			t.Fatalf("stty size never showed the new size 20x70; screen:\n%s", x.screen())
		}
	}
	// ^C reaches the foreground job (sleep), not the shell.
	s = x.screen()
	x.line("sleep 100")
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	x.keys("C-c")
	x.line("echo alive-$((6*7))")
	x.waitFor(`\nalive-42\r?\n`, s, 10*time.Second)
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("^C took %v to end sleep 100", d)
	}
	s = x.screen()
	x.line("exit 6")
	x.waitFor(`VEIL-EXIT=6`, s, 30*time.Second)
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func shellLine(argv ...string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// TestRunTerminal is runc's foreground terminal: `runsc run` of a bundle
// with process.terminal in a terminal (tmux) gives the shell a terminal
// of the sandbox's own, relayed to tmux's.
func TestRunTerminal(t *testing.T) {
	needRoot(t)
	r := newRT(t)
	dir := bundle(t, []string{"sh"}, func(s map[string]any) {
		s["process"].(map[string]any)["terminal"] = true
	})
	x := newTmux(t, 80, 24, "cd "+shellQuote(dir)+" && "+shellLine(runscBin, "--root", r.root, "run", "tty1")+"; st=$?; echo; echo VEIL-EXIT=$st")
	interactiveShell(t, x)
	x.close()
	checkNoLeftovers(t, r.root)
}

// TestExecTerminal is `runsc exec -t` in a terminal, and with
// --console-socket.
func TestExecTerminal(t *testing.T) {
	needRoot(t)
	r := newRT(t)
	dir := bundle(t, []string{"sleep", "300"}, nil)
	r.must("run", "-d", "--bundle", dir, "ex1")
	defer func() {
		r.run("delete", "--force", "ex1")
		checkNoLeftovers(t, r.root)
	}()
	t.Run("foreground", func(t *testing.T) {
		x := newTmux(t, 80, 24, shellLine(runscBin, "--root", r.root, "exec", "-t", "ex1", "sh")+"; st=$?; echo; echo VEIL-EXIT=$st")
		interactiveShell(t, x)
	})
	t.Run("console-socket", func(t *testing.T) {
		sock, got := consoleSocket(t)
		res := r.run("exec", "-t", "--console-socket", sock, "ex1", "sh", "-c", "sleep 0.5; tty; stty size; exit 5")
		if res.code != 5 {
			t.Errorf("exec -t: exit %d, want 5 (%s)", res.code, res.stderr)
		}
		out := <-got
		if !regexp.MustCompile(`^/dev/pts/\d+\r\n33 99\r\n`).MatchString(out) {
			t.Errorf("the terminal showed %q, want the sandbox's pts and the console size 33x99", out)
		}
	})
}

// consoleSocket listens on a unix socket as a client's --console-socket
// does. The returned channel yields what the terminal whose master
// arrives shows (until the process's side closes). Like a client, it
// sizes the terminal (99x33) as soon as it has the master.
func consoleSocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "console.sock")
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 1); err != nil {
		t.Fatal(err)
	}
	out := make(chan string, 1)
	go func() {
		defer unix.Close(lfd)
		nfd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			out <- "accept: " + err.Error()
			return
		}
		defer unix.Close(nfd)
		buf := make([]byte, 4096)
		oob := make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := unix.Recvmsg(nfd, buf, oob, 0)
		if err != nil {
			out <- "recvmsg: " + err.Error()
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) != 1 {
			out <- "no SCM_RIGHTS"
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			out <- "no FD"
			return
		}
		m := os.NewFile(uintptr(fds[0]), string(buf[:n]))
		defer m.Close()
		_ = unix.IoctlSetWinsize(fds[0], unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 99})
		var got bytes.Buffer
		chunk := make([]byte, 4096)
		for {
			k, err := m.Read(chunk)
			got.Write(chunk[:k])
			if err != nil {
				break
			}
		}
		out <- got.String()
	}()
	return path, out
}

// TestCreateTerminalConsoleSocket: runsc create with process.terminal
// sends the master to --console-socket; init's stdio is the sandbox's
// own terminal, its controlling terminal and /dev/console.
func TestCreateTerminalConsoleSocket(t *testing.T) {
	needRoot(t)
	r := newRT(t)
	dir := bundle(t, []string{"sh", "-c", "sleep 0.5; tty; stty size; echo via-dev-tty >/dev/tty; echo via-console >/dev/console; exit 3"}, func(s map[string]any) {
		s["process"].(map[string]any)["terminal"] = true
	})
	sock, got := consoleSocket(t)
	r.must("create", "--bundle", dir, "--console-socket", sock, "ct1")
	r.must("start", "ct1")
	res := r.run("wait", "ct1")
	var w struct {
		ExitStatus int `json:"exitStatus"`
	}
	_ = json.Unmarshal([]byte(res.stdout), &w)
	if w.ExitStatus != 3 {
		t.Errorf("wait: %q, want exit status 3", res.stdout)
	}
	out := <-got
	r.must("delete", "ct1")
	checkNoLeftovers(t, r.root)
	if !regexp.MustCompile(`^/dev/pts/\d+\r\n33 99\r\nvia-dev-tty\r\nvia-console\r\n$`).MatchString(out) {
		t.Errorf("the terminal showed %q, want the sandbox's pts, the console size 33x99, and lines through /dev/tty and /dev/console", out)
	}
}

// TestExecPreserveFDs: runsc exec --preserve-fds=N passes runsc's FDs 3..
// to the process as its own.
func TestExecPreserveFDs(t *testing.T) {
	needRoot(t)
	r := newRT(t)
	dir := bundle(t, []string{"sleep", "300"}, nil)
	r.must("run", "-d", "--bundle", dir, "pf1")
	defer func() {
		r.run("delete", "--force", "pf1")
		checkNoLeftovers(t, r.root)
	}()
	f3, err := os.Create(filepath.Join(t.TempDir(), "three"))
	if err != nil {
		t.Fatal(err)
	}
	defer f3.Close()
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	cmd := exec.Command(runscBin, "--root", r.root, "exec", "--preserve-fds=2", "pf1", "sh", "-c", "echo to-three >&3; echo to-four >&4")
	cmd.ExtraFiles = []*os.File{f3, wr}
	out, err := cmd.CombinedOutput()
	wr.Close()
	if err != nil {
		t.Fatalf("exec --preserve-fds: %v: %s", err, out)
	}
	if data, _ := os.ReadFile(f3.Name()); string(data) != "to-three\n" {
		t.Errorf("FD 3: the file holds %q", data)
	}
	buf := make([]byte, 64)
	n, _ := rd.Read(buf)
	if string(buf[:n]) != "to-four\n" {
		t.Errorf("FD 4: the pipe gave %q", buf[:n])
	}
}

// TestRunPreserveFDs: runsc run --preserve-fds=N passes runsc's FDs 3..
// to the init process.
func TestRunPreserveFDs(t *testing.T) {
	needRoot(t)
	r := newRT(t)
	dir := bundle(t, []string{"sh", "-c", "echo init-to-three >&3"}, nil)
	f3, err := os.Create(filepath.Join(t.TempDir(), "three"))
	if err != nil {
		t.Fatal(err)
	}
	defer f3.Close()
	cmd := exec.Command(runscBin, "--root", r.root, "run", "--preserve-fds=1", "--bundle", dir, "rp1")
	cmd.ExtraFiles = []*os.File{f3}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run --preserve-fds: %v: %s", err, out)
	}
	if data, _ := os.ReadFile(f3.Name()); string(data) != "init-to-three\n" {
		t.Errorf("FD 3: the file holds %q", data)
	}
	res := r.run("run", "--preserve-fds=3", "--bundle", dir, "rp2")
	if res.code == 0 || !strings.Contains(res.stderr, "--preserve-fds=3: FD ") {
		t.Errorf("run --preserve-fds=3 without those FDs: exit %d, %q", res.code, res.stderr)
	}
	checkNoLeftovers(t, r.root)
}

// TestTmpCopyUp: a tmpfs mount with tmpcopyup starts with the covered
// directory's tree.
func TestTmpCopyUp(t *testing.T) {
	needRoot(t)
	r := newRT(t)
	dir := bundle(t, []string{"sh", "-c", "cat /run/sub/f; stat -c '%a %u:%g' /run/sub/f; readlink /run/l; echo w > /run/new && cat /run/new; stat -c %a /run"}, func(s map[string]any) {
		s["root"].(map[string]any)["readonly"] = true
		s["mounts"] = append(s["mounts"].([]any), map[string]any{
			"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "nodev", "tmpcopyup"},
		})
	})
	run := filepath.Join(dir, "rootfs", "run")
	if err := os.MkdirAll(filepath.Join(run, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(run, 0o710)
	if err := os.WriteFile(filepath.Join(run, "sub", "f"), []byte("from-image\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	_ = os.Chown(filepath.Join(run, "sub", "f"), 7, 8)
	_ = os.Symlink("sub/f", filepath.Join(run, "l"))
	out := r.must("run", "--bundle", dir, "cu1")
	if want := "from-image\n640 7:8\nsub/f\nw\n710\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	if _, err := os.Stat(filepath.Join(run, "new")); err == nil {
		t.Error("a write to the tmpfs reached the image")
	}
	checkNoLeftovers(t, r.root)
}

// ptyCommand runs cmd with a new host terminal (80x24) as its stdio and
// controlling terminal, and returns what the terminal showed and the
// exit status.
func ptyCommand(t *testing.T, timeout time.Duration, cmd *exec.Cmd) (string, int) {
	t.Helper()
	m, r, err := container.NewPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_ = unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r, r, r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		r.Close()
		t.Fatal(err)
	}
	r.Close()
	var got bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-waited
		t.Errorf("%q did not finish within %v", cmd.Args, timeout)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	return got.String(), cmd.ProcessState.ExitCode()
}

// TestDoTerminal: `runsc do` run from a terminal gives the command a
// terminal of the sandbox's own, relayed to the caller's.
func TestDoTerminal(t *testing.T) {
	needRoot(t)
	root := busyboxRoot(t, t.TempDir())
	x := newTmux(t, 80, 24, shellLine(runscBin, "do", "--root-dir", root, "--cwd", "/", "--", "sh")+"; st=$?; echo; echo VEIL-EXIT=$st")
	interactiveShell(t, x)
	x.close()
	checkNoLeftovers(t, t.TempDir())
}
