package container

import (
	"fmt"
	"os"

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

// setupConsole makes a terminal for the container, hands its master to
// the console socket and returns the replica (the init's stdio).
func setupConsole(socket string, size *specs.Box) (*os.File, error) {
	m, r, err := NewPTY()
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if size != nil {
		ws := &unix.Winsize{Row: uint16(size.Height), Col: uint16(size.Width)}
		_ = unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, ws)
	}
	if err := SendConsole(socket, m); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}
