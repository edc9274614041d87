// Package gofer owns the gofer: the separate, confined process that serves
// a sandbox's files to the sentry over the protocol of gofer/proto.
//
// The gofer trusts nothing the sentry sends. It never resolves a path the
// sentry gives: every request names a handle (an O_PATH FD the gofer opened
// earlier) and at most one path component, opened with
// openat(handle, name, O_NOFOLLOW|O_PATH), so neither symlinks, "..", nor a
// rename racing the lookup can take it outside the mount's root. Symlinks
// are handed back as symlinks; resolving them is the sentry's job, inside
// the sandbox's own root. Regular files and directories are donated to the
// sentry as host FDs so that bulk I/O never crosses the protocol.
//
// Entry points: Confine (once, before serving), then Serve or ServeFD per
// mount connection, each in its own goroutine.
package gofer

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/gofer/proto"
)

// maxHandles bounds the handles one connection may hold, so a runaway
// sentry exhausts its own connection and not the gofer.
const maxHandles = 1 << 16

// procFD is an open directory FD on /proc/self/fd. The gofer reopens an
// O_PATH FD with real access (and chmods, truncates...) through it, which
// names exactly the inode the handle holds, no path involved. It is opened
// before confinement, because /proc is not visible afterwards.
var (
	procMu sync.Mutex
	procFD = -1
)

// openProcSelfFD opens procFD if it is not open yet.
func openProcSelfFD() (int, error) {
	procMu.Lock()
	defer procMu.Unlock()
	if procFD >= 0 {
		return procFD, nil
	}
	fd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("gofer: open /proc/self/fd: %w", err)
	}
	procFD = fd
	return fd, nil
}

// OpenRoot opens dir as a mount root for ServeFD: a directory, or a
// regular file for a bind-mounted file. Call it for every mount source
// before Confine hides the host's tree.
func OpenRoot(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("gofer: open root %q: %w", dir, err)
	}
	return fd, nil
}

// Serve serves one sentry connection: conn is a connected SOCK_SEQPACKET
// socket (the gofer's end), root the directory that is the mount's root as
// this process sees it ("/" after Confine(root)), readOnly refuses every
// mutation with EROFS. It returns nil when the sentry closes its end, and
// an error if the connection breaks in any other way or the sentry
// violates the protocol. Serve closes conn before returning.
func Serve(conn int, root string, readOnly bool) error {
	fd, err := OpenRoot(root)
	if err != nil {
		unix.Close(conn)
		return err
	}
	return ServeFD(conn, fd, readOnly)
}

// ServeFD is Serve with the root given as a directory FD (from OpenRoot),
// which ServeFD takes over and closes.
func ServeFD(conn int, rootFD int, readOnly bool) error {
	c := proto.NewConn(conn)
	defer c.Close()
	pfd, err := openProcSelfFD()
	if err != nil {
		unix.Close(rootFD)
		return err
	}
	s := newSession(rootFD, pfd, readOnly)
	defer s.closeAll()
	return s.serve(c)
}

// Mount is one mount's connection for ServeAll.
type Mount struct {
	Conn     int  // gofer end of the mount's socket
	RootFD   int  // from OpenRoot
	ReadOnly bool // refuse mutation with EROFS
}

// ServeAll serves every mount concurrently and returns when all
// connections have ended, with the errors of those that failed.
func ServeAll(mounts []Mount) error {
	var wg sync.WaitGroup
	errs := make([]error, len(mounts))
	for i, m := range mounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ServeFD(m.Conn, m.RootFD, m.ReadOnly); err != nil {
				errs[i] = fmt.Errorf("mount %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// node is what a handle stands for: an O_PATH FD and the file's type.
type node struct {
	fd    int
	ftype uint32 // S_IFMT bits
}

// session is the state of one connection. It is used by one goroutine, so
// it has no lock.
type session struct {
	procFD   int
	readOnly bool
	handles  map[uint32]*node
	next     uint32
	root     uint32
	rootFD   int
	version  uint32 // 0 until the handshake
	cpu      cpuFollower
	// dbuf and pbuf are readdir's getdents and packed-page buffers, used
	// again for every listing: a response is sent before the next request
	// is read, and sending copies it.
	dbuf, pbuf []byte
}

func newSession(rootFD, pfd int, readOnly bool) *session {
	return &session{
		procFD:   pfd,
		readOnly: readOnly,
		handles:  make(map[uint32]*node),
		next:     1,
		rootFD:   rootFD,
	}
}

func (s *session) closeAll() {
	for h, n := range s.handles {
		unix.Close(n.fd)
		delete(s.handles, h)
	}
	if s.rootFD >= 0 {
		unix.Close(s.rootFD)
		s.rootFD = -1
	}
}

// serve is the request loop.
func (s *session) serve(c *proto.Conn) error {
	s.cpu.lockThread()
	for {
		b, fds, err := c.RecvRaw()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("gofer: receive: %w", err)
		}
		// The sentry never sends FDs; drop any it does.
		proto.CloseFDs(fds)
		req, err := proto.DecodeRequest(b)
		if err != nil {
			return fmt.Errorf("gofer: bad request: %w", err)
		}
		s.cpu.follow(req.Cpu)
		resp, out := s.handle(req)
		resp.Id = req.Id
		resp.NumFds = uint32(len(out))
		err = c.Send(resp, out)
		proto.CloseFDs(out)
		if err != nil {
			if err == unix.EPIPE || err == unix.ECONNRESET {
				return nil
			}
			return fmt.Errorf("gofer: send: %w", err)
		}
	}
}

// handle executes one request and returns the response and the FDs to
// donate with it (closed by the caller once sent).
func (s *session) handle(req *proto.Request) (*proto.Response, []int) {
	if v := req.GetVersion(); v != nil {
		return s.handshake(v), nil
	}
	if s.version == 0 {
		// No operation before the handshake.
		return errResp(unix.EPROTO), nil
	}
	var (
		resp *proto.Response
		fds  []int
		err  error
	)
	switch op := req.Op.(type) {
	case *proto.Request_Walk:
		resp, err = s.walk(op.Walk)
	case *proto.Request_Open:
		resp, fds, err = s.open(op.Open)
	case *proto.Request_Stat:
		resp, err = s.stat(op.Stat)
	case *proto.Request_Readdir:
		resp, err = s.readdir(op.Readdir)
	case *proto.Request_Readlink:
		resp, err = s.readlink(op.Readlink)
	case *proto.Request_Create:
		resp, fds, err = s.create(op.Create)
	case *proto.Request_Mkdir:
		resp, err = s.mkdir(op.Mkdir)
	case *proto.Request_Mknod:
		resp, err = s.mknod(op.Mknod)
	case *proto.Request_Symlink:
		resp, err = s.symlink(op.Symlink)
	case *proto.Request_Link:
		resp, err = s.link(op.Link)
	case *proto.Request_Unlink:
		resp, err = s.unlink(op.Unlink)
	case *proto.Request_Rmdir:
		resp, err = s.rmdir(op.Rmdir)
	case *proto.Request_Rename:
		resp, err = s.rename(op.Rename)
	case *proto.Request_SetStat:
		resp, err = s.setStat(op.SetStat)
	case *proto.Request_Setxattr:
		resp, err = s.setxattr(op.Setxattr)
	case *proto.Request_Getxattr:
		resp, err = s.getxattr(op.Getxattr)
	case *proto.Request_Listxattr:
		resp, err = s.listxattr(op.Listxattr)
	case *proto.Request_Removexattr:
		resp, err = s.removexattr(op.Removexattr)
	case *proto.Request_Close:
		resp, err = s.close(op.Close)
	case *proto.Request_StatFs:
		resp, err = s.statFS(op.StatFs)
	default:
		err = unix.ENOSYS
	}
	if err != nil {
		proto.CloseFDs(fds)
		return errResp(err), nil
	}
	return resp, fds
}

func errResp(err error) *proto.Response {
	return &proto.Response{Errno: uint32(toErrno(err))}
}

// toErrno turns a host error into the errno the sentry sees. Anything
// that is not an errno is an I/O error: host failures never leak raw.
func toErrno(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) && e != 0 {
		return e
	}
	return unix.EIO
}

func (s *session) handshake(v *proto.VersionReq) *proto.Response {
	if s.version != 0 {
		return errResp(unix.EPROTO)
	}
	if v.MinVersion > v.MaxVersion || v.MaxVersion < proto.MinVersion || v.MinVersion > proto.MaxVersion {
		return errResp(unix.EPROTONOSUPPORT)
	}
	ver := min(v.MaxVersion, uint32(proto.MaxVersion))
	attr, ftype, err := statFD(s.rootFD)
	if err != nil {
		return errResp(err)
	}
	if ftype != unix.S_IFDIR && (ftype != unix.S_IFREG || ver < 2) {
		return errResp(unix.ENOTDIR)
	}
	h, err := s.add(s.rootFD, ftype)
	if err != nil {
		return errResp(err)
	}
	s.rootFD = -1 // now owned by the handle table
	s.root = h
	s.version = ver
	return &proto.Response{Result: &proto.Response_Version{Version: &proto.VersionResp{
		Version:  ver,
		Root:     h,
		RootAttr: attr,
		ReadOnly: s.readOnly,
	}}}
}

// add gives fd a handle; on failure fd is closed.
func (s *session) add(fd int, ftype uint32) (uint32, error) {
	if len(s.handles) >= maxHandles {
		unix.Close(fd)
		return 0, unix.EMFILE
	}
	for {
		h := s.next
		s.next++
		if s.next == 0 {
			s.next = 1
		}
		if _, used := s.handles[h]; !used && h != 0 {
			s.handles[h] = &node{fd: fd, ftype: ftype}
			return h, nil
		}
	}
}

// get returns the node of h: EBADF for an unknown handle.
func (s *session) get(h uint32) (*node, error) {
	n, ok := s.handles[h]
	if !ok {
		return nil, unix.EBADF
	}
	return n, nil
}

// getDir returns the node of h, which must be a directory.
func (s *session) getDir(h uint32) (*node, error) {
	n, err := s.get(h)
	if err != nil {
		return nil, err
	}
	if n.ftype != unix.S_IFDIR {
		return nil, unix.ENOTDIR
	}
	return n, nil
}

// checkName enforces that a name is exactly one component of a path.
func checkName(name []byte) (string, error) {
	switch {
	case len(name) == 0, string(name) == ".", string(name) == "..":
		return "", unix.EINVAL
	case len(name) > unix.NAME_MAX:
		return "", unix.ENAMETOOLONG
	}
	for _, c := range name {
		if c == '/' || c == 0 {
			return "", unix.EINVAL
		}
	}
	return string(name), nil
}

// procName names fd inside procFD.
func procName(fd int) string { return strconv.Itoa(fd) }

func (s *session) mutating() error {
	if s.readOnly {
		return unix.EROFS
	}
	return nil
}

// statFD returns the attributes of the file fd (any kind of FD, O_PATH
// included) refers to, never following a symlink.
func statFD(fd int) (*proto.Attr, uint32, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(fd, "", &st, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, 0, err
	}
	return attrOf(&st), st.Mode & unix.S_IFMT, nil
}

func attrOf(st *unix.Stat_t) *proto.Attr {
	return &proto.Attr{
		Mode:    st.Mode,
		Uid:     st.Uid,
		Gid:     st.Gid,
		Nlink:   uint64(st.Nlink),
		Ino:     st.Ino,
		Dev:     st.Dev,
		Size:    st.Size,
		Blocks:  st.Blocks,
		Blksize: int64(st.Blksize),
		Rdev:    st.Rdev,
		Atime:   &proto.Timespec{Sec: st.Atim.Sec, Nsec: st.Atim.Nsec},
		Mtime:   &proto.Timespec{Sec: st.Mtim.Sec, Nsec: st.Mtim.Nsec},
		Ctime:   &proto.Timespec{Sec: st.Ctim.Sec, Nsec: st.Ctim.Nsec},
	}
}

// lookup opens name in dir as an O_PATH FD without following anything.
func lookup(dir *node, name string) (int, error) {
	for {
		fd, err := unix.Openat(dir.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// addChild looks name up in dir and returns a HandleResp for it.
func (s *session) addChild(dir *node, name string) (*proto.Response, error) {
	fd, err := lookup(dir, name)
	if err != nil {
		return nil, err
	}
	attr, ftype, err := statFD(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	h, err := s.add(fd, ftype)
	if err != nil {
		return nil, err
	}
	return &proto.Response{Result: &proto.Response_Handle{Handle: &proto.HandleResp{Handle: h, Attr: attr}}}, nil
}
