// Package control owns the protocol between the runsc CLI and a running
// sandbox's sentry: the protobuf messages (control.proto, compiled into
// control.pb.go), the per-sandbox control socket (created by the CLI before
// the sentry starts, since the confined sentry can name no host path), and
// Conn, which moves one message per SOCK_SEQPACKET packet with FDs riding
// along as SCM_RIGHTS.
package control

//go:generate protoc --go_out=. --go_opt=paths=source_relative control.proto

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
	gproto "google.golang.org/protobuf/proto"
)

// MaxMessageSize bounds one packet. A process list of a few thousand
// processes fits; so do argv and environment of an exec up to this size.
const MaxMessageSize = 1 << 20

// MaxFDs bounds the FDs one packet carries (an exec's stdio and its
// preserved FDs): the kernel's own limit for one SCM_RIGHTS message
// (SCM_MAX_FD).
const MaxFDs = 253

// ErrClosed is returned by Recv when the peer closed the connection.
var ErrClosed = errors.New("control connection closed")

// Conn frames protobuf messages on a connected SOCK_SEQPACKET socket. One
// Send and one Recv may run concurrently.
type Conn struct {
	fd        int
	recvMu    sync.Mutex
	sendMu    sync.Mutex
	closeOnce sync.Once
}

// NewConn wraps a connected socket; Close closes it.
func NewConn(fd int) *Conn { return &Conn{fd: fd} }

// FD returns the socket (to hand it to a child process).
func (c *Conn) FD() int { return c.fd }

// Close closes the socket once.
func (c *Conn) Close() error {
	err := error(nil)
	c.closeOnce.Do(func() { err = unix.Close(c.fd) })
	return err
}

// packetTag starts every packet: an empty message marshals to nothing,
// and an empty SOCK_SEQPACKET read is also how the peer's close looks.
const packetTag = 'V'

// Send writes m as one packet with fds attached (the caller keeps them).
func (c *Conn) Send(m gproto.Message, fds []int) error {
	b, err := gproto.MarshalOptions{}.MarshalAppend([]byte{packetTag}, m)
	if err != nil {
		return err
	}
	if len(b) > MaxMessageSize+1 {
		return fmt.Errorf("control message of %d bytes exceeds %d", len(b), MaxMessageSize)
	}
	if len(fds) > MaxFDs {
		return fmt.Errorf("%d FDs exceed %d", len(fds), MaxFDs)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	for {
		err = unix.Sendmsg(c.fd, b, oob, nil, unix.MSG_NOSIGNAL)
		if err != unix.EINTR {
			return err
		}
	}
}

// Recv reads one packet into m and returns the FDs it carried, which the
// caller owns.
func (c *Conn) Recv(m gproto.Message) ([]int, error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	buf := make([]byte, MaxMessageSize+2)
	oob := make([]byte, unix.CmsgSpace(MaxFDs*4))
	var n, oobn, flags int
	var err error
	for {
		n, oobn, flags, _, err = unix.Recvmsg(c.fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	var fds []int
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr != nil {
			return nil, perr
		}
		for _, cm := range msgs {
			got, err := unix.ParseUnixRights(&cm)
			if err == nil {
				fds = append(fds, got...)
			}
		}
	}
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	if n == 0 {
		closeAll()
		return nil, ErrClosed
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || n > MaxMessageSize+1 || buf[0] != packetTag {
		closeAll()
		return nil, errors.New("malformed or truncated control message")
	}
	if err := gproto.Unmarshal(buf[1:n], m); err != nil {
		closeAll()
		return nil, fmt.Errorf("malformed control message: %w", err)
	}
	return fds, nil
}

// sockAddr returns an address for path usable from this process. A path
// longer than sun_path allows (deep --root directories) is reached
// through /proc/self/fd of its directory, which the returned closer
// releases.
func sockAddr(path string) (*unix.SockaddrUnix, func(), error) {
	if len(path) < 100 {
		return &unix.SockaddrUnix{Name: path}, func() {}, nil
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, nil, err
	}
	name := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path))
	return &unix.SockaddrUnix{Name: name}, func() { dir.Close() }, nil
}

// Listen creates the listening control socket at path, mode 0600, and
// returns its FD (close-on-exec; the sandbox inherits it explicitly).
func Listen(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("control socket: %w", err)
	}
	sa, done, err := sockAddr(path)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer done()
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := unix.Listen(fd, 64); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("control socket %s: %w", path, err)
	}
	return fd, nil
}

// Dial connects to the control socket at path.
func Dial(path string) (*Conn, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	sa, done, err := sockAddr(path)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	defer done()
	for {
		err = unix.Connect(fd, sa)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return NewConn(fd), nil
}

// Call sends req on a new connection to path and returns the first
// response; a response carrying an error is returned as an error.
func Call(path string, req *Request, fds []int) (*Response, error) {
	c, err := Dial(path)
	if err != nil {
		return nil, fmt.Errorf("connecting to the sandbox: %w", err)
	}
	defer c.Close()
	if err := c.Send(req, fds); err != nil {
		return nil, fmt.Errorf("talking to the sandbox: %w", err)
	}
	return RecvResponse(c)
}

// RecvResponse reads one response from c, turning its error field into an
// error.
func RecvResponse(c *Conn) (*Response, error) {
	var resp Response
	fds, err := c.Recv(&resp)
	for _, fd := range fds {
		unix.Close(fd)
	}
	if err != nil {
		if errors.Is(err, ErrClosed) || errors.Is(err, unix.ECONNRESET) {
			return nil, errors.New("the sandbox closed the connection (it has stopped)")
		}
		return nil, fmt.Errorf("talking to the sandbox: %w", err)
	}
	if resp.Error != "" {
		return nil, errors.New(resp.Error)
	}
	return &resp, nil
}
