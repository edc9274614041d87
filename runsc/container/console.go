package container

// Terminals. A process with a terminal never gets a host terminal as its
// stdio: runsc makes a host pseudo-terminal pair, keeps the master for
// whoever shows the terminal and gives the sentry the replica, which the
// sentry bridges to a pair of its own devpts (boot.Args.Terminal). The
// master goes either to the client's --console-socket, as runc sends it
// (one message, the terminal's name as payload and the master's FD as
// SCM_RIGHTS), or, for a foreground runsc with no console socket, to a
// Console that relays it to runsc's own stdio the way runc's foreground
// terminal does (the caller's terminal raw, window size followed).

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// NewPTY opens a host pseudo-terminal pair and returns the master and the
// replica.
func NewPTY() (master, replica *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("terminal: %w", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("terminal: unlocking: %w", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("terminal: %w", err)
	}
	r, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("terminal: %w", err)
	}
	return m, r, nil
}

// SendConsole sends master to the unix socket at path as runc does: one
// message whose payload names the terminal and whose SCM_RIGHTS carry
// its master.
func SendConsole(path string, master *os.File) error {
	// Raw calls, not package net, whose resolver would link cgo.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("--console-socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("--console-socket %s: %w", path, err)
	}
	if err := unix.Sendmsg(fd, []byte(master.Name()), unix.UnixRights(int(master.Fd())), nil, 0); err != nil {
		return fmt.Errorf("--console-socket: sending the terminal: %w", err)
	}
	return nil
}

// SocketConsole makes a terminal whose master goes to the console socket
// at path, sized size if not nil, and returns its replica for the
// sandbox.
func SocketConsole(path string, size *specs.Box) (*os.File, error) {
	m, r, err := NewPTY()
	if err != nil {
		return nil, err
	}
	defer m.Close()
	setSize(m, size)
	if err := SendConsole(path, m); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func setSize(m *os.File, size *specs.Box) {
	if size != nil {
		ws := &unix.Winsize{Row: uint16(size.Height), Col: uint16(size.Width)}
		_ = unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, ws)
	}
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Console relays a terminal's master to a foreground runsc's stdin and
// stdout. When stdin is a terminal it is put in raw mode for the
// console's life (the sandbox's terminal does the editing, echo and
// signal characters) and its window size is copied to the master now and
// on every SIGWINCH.
type Console struct {
	master  *os.File
	in      *os.File
	saved   *unix.Termios
	sigs    chan os.Signal
	outDone chan struct{}
}

// NewConsole makes a terminal relayed to in and out and returns the
// console and the replica for the sandbox (to be closed by the caller
// once the sandbox has its copy). size, if not nil, is the initial size
// when in is not a terminal.
func NewConsole(in, out *os.File, size *specs.Box) (*Console, *os.File, error) {
	m, r, err := NewPTY()
	if err != nil {
		return nil, nil, err
	}
	c := &Console{master: m, in: in, outDone: make(chan struct{})}
	if tio, err := unix.IoctlGetTermios(int(in.Fd()), unix.TCGETS); err == nil {
		saved := *tio
		makeRaw(tio)
		if err := unix.IoctlSetTermios(int(in.Fd()), unix.TCSETS, tio); err != nil {
			m.Close()
			r.Close()
			return nil, nil, fmt.Errorf("terminal: raw mode: %w", err)
		}
		c.saved = &saved
		c.sigs = make(chan os.Signal, 1)
		signal.Notify(c.sigs, unix.SIGWINCH)
		c.resize()
		go func() {
			for range c.sigs {
				c.resize()
			}
		}()
	} else {
		setSize(m, size)
	}
	go func() {
		// Ends with the process: a read of runsc's stdin is not
		// interruptible, and nothing is lost by leaving it.
		_, _ = io.Copy(m, in)
	}()
	go func() {
		// EIO once every replica (the sandbox's, runsc's) is closed.
		_, _ = io.Copy(out, m)
		close(c.outDone)
	}()
	return c, r, nil
}

// resize copies stdin's window size to the master.
func (c *Console) resize() {
	if ws, err := unix.IoctlGetWinsize(int(c.in.Fd()), unix.TIOCGWINSZ); err == nil {
		_ = unix.IoctlSetWinsize(int(c.master.Fd()), unix.TIOCSWINSZ, ws)
	}
}

// Close waits briefly for the sandbox's last output to be relayed (the
// sandbox has ended), then restores the caller's terminal.
func (c *Console) Close() {
	select {
	case <-c.outDone:
	case <-time.After(2 * time.Second):
	}
	if c.sigs != nil {
		signal.Stop(c.sigs)
		close(c.sigs)
	}
	if c.saved != nil {
		_ = unix.IoctlSetTermios(int(c.in.Fd()), unix.TCSETS, c.saved)
	}
}

// makeRaw is cfmakeraw(3).
func makeRaw(t *unix.Termios) {
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
}
