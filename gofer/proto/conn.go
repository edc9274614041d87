package proto

import (
	"errors"
	"io"
	"sync"

	gproto "google.golang.org/protobuf/proto"

	"golang.org/x/sys/unix"
)

// Protocol versions. A client sends the range it speaks in VersionReq; the
// server answers with the highest version both speak, or EPROTONOSUPPORT.
const (
	MinVersion = 1
	// Version 2 serves trusted.* xattrs (mapped into the host's user.*,
	// PROTOCOL.md) and regular files as mount roots. Version 3 lists
	// directories packed, through other directories, with a handle of the
	// directory listed and with its subdirectories prefetched (ReaddirReq
	// packed, via, want_handle, prefetch).
	MaxVersion = 3
)

// MaxMessageSize bounds one packet in either direction. Everything the
// protocol carries is smaller: names are at most NAME_MAX, symlink targets
// PATH_MAX, xattr values XATTR_SIZE_MAX (64 KiB), and the server pages
// directory listings below it.
const MaxMessageSize = 128 << 10

// MaxFDs bounds the FDs one packet may carry.
const MaxFDs = 4

// SetStat mask bits: which fields of SetStatReq apply.
const (
	SetStatMode  = 1 << 0
	SetStatUID   = 1 << 1
	SetStatGID   = 1 << 2
	SetStatSize  = 1 << 3
	SetStatAtime = 1 << 4
	SetStatMtime = 1 << 5
)

// ErrProtocol reports a malformed or unexpected packet.
var ErrProtocol = errors.New("gofer protocol violation")

// Conn frames protobuf messages on a connected SOCK_SEQPACKET socket. Send
// and Recv may be used from different goroutines; two concurrent Recvs (or
// two concurrent Sends) are serialized.
type Conn struct {
	fd int

	recvMu sync.Mutex // guards buf and oob
	buf    []byte
	oob    []byte

	sendMu sync.Mutex

	closeOnce sync.Once
}

// NewConn wraps fd. The Conn does not own fd until Close is called.
func NewConn(fd int) *Conn {
	return &Conn{
		fd:  fd,
		buf: make([]byte, MaxMessageSize+1),
		oob: make([]byte, unix.CmsgSpace(MaxFDs*4)),
	}
}

// FD returns the socket.
func (c *Conn) FD() int { return c.fd }

// Close closes the socket; later calls do nothing, so that a closed FD
// number reused elsewhere is never closed twice.
func (c *Conn) Close() error {
	err := error(unix.EBADF)
	c.closeOnce.Do(func() { err = unix.Close(c.fd) })
	return err
}

// Send marshals m into one packet with fds attached. The caller keeps
// ownership of fds.
func (c *Conn) Send(m gproto.Message, fds []int) error {
	if len(fds) > MaxFDs {
		return unix.EINVAL
	}
	b, err := gproto.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > MaxMessageSize {
		return unix.EMSGSIZE
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

// RecvRaw reads one packet and returns its bytes (valid until the next
// RecvRaw) and any FDs it carried, which the caller then owns. A closed
// peer gives io.EOF.
func (c *Conn) RecvRaw() ([]byte, []int, error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	var n, oobn, flags int
	var err error
	for {
		n, oobn, flags, _, err = unix.Recvmsg(c.fd, c.buf, c.oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, nil, err
	}
	fds := parseRights(c.oob[:oobn])
	if n == 0 && oobn == 0 {
		return nil, nil, io.EOF
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || n > MaxMessageSize {
		closeAll(fds)
		return nil, nil, ErrProtocol
	}
	return c.buf[:n], fds, nil
}

// parseRights extracts FDs from SCM_RIGHTS messages, ignoring anything
// else; a malformed control buffer yields what was parsed before it.
func parseRights(oob []byte) []int {
	if len(oob) == 0 {
		return nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err == nil {
			fds = append(fds, got...)
		}
	}
	return fds
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// CloseFDs closes every FD in fds.
func CloseFDs(fds []int) { closeAll(fds) }

// DecodeRequest parses a client packet. It never panics: anything that is
// not a well-formed Request carrying exactly one operation is ErrProtocol.
func DecodeRequest(b []byte) (*Request, error) {
	var r Request
	if err := (gproto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &r); err != nil {
		return nil, ErrProtocol
	}
	if r.Op == nil {
		return nil, ErrProtocol
	}
	return &r, nil
}

// DecodeResponse parses a server packet, with the same guarantees as
// DecodeRequest.
func DecodeResponse(b []byte) (*Response, error) {
	var r Response
	if err := (gproto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &r); err != nil {
		return nil, ErrProtocol
	}
	return &r, nil
}
