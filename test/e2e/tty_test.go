package e2e

import (
	"os"
	"testing"
	"time"
)

// ptyJobControl drives the host's interactive bash on a pseudo-terminal
// that python's pty module makes (posix_openpt, setsid, TIOCSCTTY): the
// line discipline, ^C to the foreground job, ^Z and fg, a resize with
// SIGWINCH, and the exit status. It prints one fact per line; the same
// facts must come out natively and in the sandbox, where the terminal is
// the sentry's devpts.
const ptyJobControl = `
import fcntl, os, pty, re, select, struct, sys, termios, time
env = dict(os.environ, PS1="$ ", TERM="dumb", HOME="/")
pid, fd = pty.fork()
if pid == 0:
    os.execve("/bin/bash", ["bash", "--norc", "--noprofile", "--noediting", "-i"], env)
buf = b""
def expect(pat, timeout=10, poke=None):
    global buf
    end = time.time() + timeout
    while True:
        m = re.search(pat, buf)
        if m:
            buf = buf[m.end():]
            return m
        left = end - time.time()
        if left <= 0:
            sys.exit("timed out waiting for %r; have %r" % (pat, buf))
        r, _, _ = select.select([fd], [], [], min(left, 0.5))
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                d = b""
            if not d:
                sys.exit("EOF waiting for %r; have %r" % (pat, buf))
            buf += d
        elif poke:
            poke()
def send(s):
    os.write(fd, s.encode())
expect(rb"\$ $")
send("tty\r")
m = expect(rb"(/dev/pts/\d+)\r\n")
print("tty", re.sub(rb"\d+", b"N", m.group(1)).decode())
expect(rb"\$ ")
send("echo typo\x7f\x7fped\r")
expect(rb"typed\r\n")
print("erase ok")
expect(rb"\$ ")
send("echo go; sleep 100\r")
expect(rb"\r\ngo\r\n")
time.sleep(0.5)
send("\x03")
expect(rb"\$ $", poke=lambda: send("\x03"))
send("echo rc=$?\r")
print(expect(rb"(rc=\d+)").group(1).decode())
expect(rb"\$ ")
send("echo go2; sleep 50\r")
expect(rb"\r\ngo2\r\n")
time.sleep(0.5)
send("\x1a")
m = expect(rb"\[1\]\+\s+(Stopped)", poke=lambda: send("\x1a"))
print("job", m.group(1).decode())
expect(rb"\$ $")
send("fg\r")
expect(rb"sleep 50\r\n")
time.sleep(0.5)
send("\x03")
expect(rb"\$ $", poke=lambda: send("\x03"))
send("echo rc2=$?\r")
print(expect(rb"(rc2=\d+)").group(1).decode())
expect(rb"\$ ")
send("trap 'echo winch $(stty size)' WINCH; echo armed\r")
expect(rb"\r\narmed\r\n")
expect(rb"\$ $")
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
send("\r")
print(expect(rb"(winch 40 120)").group(1).decode())
expect(rb"\$ ")
send("exit 3\r")
_, st = os.waitpid(pid, 0)
print("exit", os.waitstatus_to_exitcode(st))
`

// TestPtyJobControl runs ptyJobControl natively and in a sandbox and
// compares what it saw.
func TestPtyJobControl(t *testing.T) {
	needSandbox(t)
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Skip("/bin/bash missing")
	}
	py := realPython(t)
	nat := native(t, 60*time.Second, py, "-c", ptyJobControl)
	if nat.code != 0 {
		t.Fatalf("native run failed (%d): %s %s", nat.code, nat.stdout, tail(nat.stderr, 10))
	}
	sb := sandbox(t, 120*time.Second, py, "-c", ptyJobControl)
	if sb.code != 0 {
		t.Fatalf("sandbox run failed (%d): %s %s", sb.code, sb.stdout, tail(sb.stderr, 10))
	}
	want := "tty /dev/pts/N\nerase ok\nrc=130\njob Stopped\nrc2=130\nwinch 40 120\nexit 3\n"
	if nat.stdout != want {
		t.Errorf("native run printed %q, want %q", nat.stdout, want)
	}
	diffLines(t, "bash on a pty", lines(nat.stdout), lines(sb.stdout))
}
