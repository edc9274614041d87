// Package gofer owns the sentry's side of the gofer protocol: Client, a
// connection to one gofer mount, and the filesystem (for sentry/vfs) that
// presents that mount to the sandbox. Bulk I/O goes to the host FDs the
// gofer donates; only metadata and tree changes cross the socket, and
// less of them the more the sandbox owns the mount: a read-only mount is
// answered from attributes and listings fetched once (dircache.go), an
// exclusive one from attributes kept between its own changes
// (exclusive.go), and donated FDs are shared by the descriptions of an
// inode (fdcache.go).
//
// Lock order: inode.appendMu; then Filesystem.handleMu, held across the
// round trips that use or re-acquire handles (handle.go) and taken by mmap
// under memory manager locks, so nothing under it calls into the memory
// manager; then inode.mu or pageCache.mu (never both; inode.mu is released
// before a cache is used); then Client.mu, which is a leaf held only for
// one round trip.
package gofer

import (
	"errors"
	"fmt"
	"log"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/gofer/proto"
)

// Client is one connection to a gofer, serving one mount. It is safe for
// concurrent use; calls are serialized on the socket. Once the gofer is
// gone (EOF, a broken socket, a protocol violation) every call fails with
// EIO, and one line saying why is logged.
type Client struct {
	mu   sync.Mutex // serializes round trips; guards id, dead and onLost
	conn *proto.Conn
	id   uint64
	dead bool
	// onLost is called (in a goroutine of its own) once the connection
	// is found broken; Shutdown does not call it.
	onLost func(error)

	// Set by the handshake, then read-only.
	Version  uint32
	Root     uint32
	RootAttr *proto.Attr
	ReadOnly bool
}

// NewClient takes over fd, a connected SOCK_SEQPACKET socket to a gofer,
// and does the version handshake.
func NewClient(fd int) (*Client, error) {
	c := &Client{conn: proto.NewConn(fd)}
	resp, _, err := c.call(&proto.Request{Op: &proto.Request_Version{Version: &proto.VersionReq{
		MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion,
	}}}, 0)
	if err != nil {
		c.Shutdown()
		return nil, err
	}
	v := resp.GetVersion()
	if v == nil || v.RootAttr == nil || v.Version < proto.MinVersion || v.Version > proto.MaxVersion {
		c.Shutdown()
		return nil, unix.EPROTO
	}
	c.Version, c.Root, c.RootAttr, c.ReadOnly = v.Version, v.Root, v.RootAttr, v.ReadOnly
	return c, nil
}

// RoundTrips returns how many requests the client has sent, for tests
// and benchmarks that check what an operation costs.
func (c *Client) RoundTrips() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// OnLost sets f to be called, once, if the connection to the gofer breaks
// (the gofer died or misbehaved).
func (c *Client) OnLost(f func(error)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onLost = f
}

// Shutdown closes the connection; the gofer then drops all its handles.
func (c *Client) Shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dead {
		c.dead = true
		c.conn.Close()
	}
}

// fail marks the connection dead. c.mu is held.
func (c *Client) fail(why error) error {
	if !c.dead {
		log.Printf("gofer client: connection to gofer lost (%v); all further file operations on this mount fail with EIO", why)
		c.dead = true
		c.conn.Close()
		if c.onLost != nil {
			go c.onLost(why)
		}
	}
	return unix.EIO
}

// call makes one round trip. wantFDs is how many FDs a successful answer
// carries; they are returned to the caller, who owns them. An errno from
// the gofer is returned as an error with a nil response.
func (c *Client) call(req *proto.Request, wantFDs int) (*proto.Response, []int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return nil, nil, unix.EIO
	}
	c.id++
	req.Id = c.id
	req.Cpu = currentCPU() + 1
	if err := c.conn.Send(req, nil); err != nil {
		return nil, nil, c.fail(fmt.Errorf("send: %w", err))
	}
	b, fds, err := c.conn.RecvRaw()
	if err != nil {
		return nil, nil, c.fail(fmt.Errorf("receive: %w", err))
	}
	resp, err := proto.DecodeResponse(b)
	if err != nil || resp.Id != req.Id || int(resp.NumFds) != len(fds) {
		proto.CloseFDs(fds)
		return nil, nil, c.fail(errors.New("malformed response"))
	}
	if resp.Errno != 0 {
		proto.CloseFDs(fds)
		return nil, nil, unix.Errno(resp.Errno)
	}
	if len(fds) != wantFDs || resp.Result == nil {
		proto.CloseFDs(fds)
		return nil, nil, c.fail(fmt.Errorf("response to %T carries %d FDs and result %T", req.Op, len(fds), resp.Result))
	}
	return resp, fds, nil
}

// badResult reports a response of the wrong type: the gofer is broken.
func (c *Client) badResult(fds []int) error {
	proto.CloseFDs(fds)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fail(errors.New("response of the wrong type"))
}

func (c *Client) handleCall(req *proto.Request, wantFDs int) (uint32, *proto.Attr, []int, error) {
	resp, fds, err := c.call(req, wantFDs)
	if err != nil {
		return 0, nil, nil, err
	}
	h := resp.GetHandle()
	if h == nil || h.Attr == nil {
		return 0, nil, nil, c.badResult(fds)
	}
	return h.Handle, h.Attr, fds, nil
}

func (c *Client) emptyCall(req *proto.Request) error {
	resp, fds, err := c.call(req, 0)
	if err != nil {
		return err
	}
	if resp.GetEmpty() == nil {
		return c.badResult(fds)
	}
	return nil
}

// Walk looks up name in directory dir and returns a new handle for it.
func (c *Client) Walk(dir uint32, name string) (uint32, *proto.Attr, error) {
	h, a, _, err := c.handleCall(&proto.Request{Op: &proto.Request_Walk{Walk: &proto.WalkReq{Dir: dir, Name: []byte(name)}}}, 0)
	return h, a, err
}

// Open returns a host FD for the regular file or directory h. flags holds
// O_ACCMODE and O_TRUNC.
func (c *Client) Open(h uint32, flags uint32) (int, *proto.Attr, error) {
	resp, fds, err := c.call(&proto.Request{Op: &proto.Request_Open{Open: &proto.OpenReq{Handle: h, Flags: flags}}}, 1)
	if err != nil {
		return -1, nil, err
	}
	o := resp.GetOpen()
	if o == nil || o.Attr == nil {
		return -1, nil, c.badResult(fds)
	}
	return fds[0], o.Attr, nil
}

// Stat returns h's attributes.
func (c *Client) Stat(h uint32) (*proto.Attr, error) {
	resp, fds, err := c.call(&proto.Request{Op: &proto.Request_Stat{Stat: &proto.StatReq{Handle: h}}}, 0)
	if err != nil {
		return nil, err
	}
	if resp.GetStat().GetAttr() == nil {
		return nil, c.badResult(fds)
	}
	return resp.GetStat().Attr, nil
}

// Readdir returns a page of entries after cookie, each with its
// attributes if attrs; end says no page follows (an empty page means the
// same, from a gofer that does not say).
// A non-empty name lists that child of dir instead.
func (c *Client) Readdir(dir uint32, name string, cookie int64, attrs bool) (ents []*proto.Dirent, end bool, err error) {
	resp, fds, err := c.call(&proto.Request{Op: &proto.Request_Readdir{Readdir: &proto.ReaddirReq{Dir: dir, Name: []byte(name), Cookie: cookie, Attrs: attrs}}}, 0)
	if err != nil {
		return nil, false, err
	}
	rd := resp.GetReaddir()
	if rd == nil {
		return nil, false, c.badResult(fds)
	}
	return rd.Entries, rd.End || len(rd.Entries) == 0, nil
}

// ReaddirAll returns every entry of dir, or of its child name if given.
func (c *Client) ReaddirAll(dir uint32, name string, attrs bool) ([]*proto.Dirent, error) {
	var all []*proto.Dirent
	var cookie int64
	for {
		ents, end, err := c.Readdir(dir, name, cookie, attrs)
		if err != nil {
			return nil, err
		}
		all = append(all, ents...)
		if end {
			return all, nil
		}
		cookie = ents[len(ents)-1].Cookie
	}
}

// ListOpts say what ListDir lists and what it brings back besides.
type ListOpts struct {
	// Name lists that child of dir (or of the last of Via) instead.
	Name string
	// Via are directories walked from dir to the parent of Name.
	Via []string
	// Attrs asks for each entry's attributes.
	Attrs bool
	// WantHandle asks, with a Name, for a handle of the directory listed.
	WantHandle bool
	// Prefetch asks for the listings of up to this many subdirectories
	// too, when the directory fits one page.
	Prefetch int
}

// DirList is what ListDir returns.
type DirList struct {
	Ents []proto.PackedDirent
	// Handle of the directory listed (0 if none) and its attributes.
	Handle     uint32
	HandleAttr *proto.Attr
	// Subs holds prefetched subdirectories' packed listings by name, to
	// be decoded with proto.DecodePacked.
	Subs map[string]string
}

// ListDir returns every entry of dir as o says. Entries come packed from
// a gofer that speaks version 3 (where names share one string per page);
// Via, WantHandle and Prefetch need version 3 too, and are left out (the
// first is EINVAL) for an older gofer.
func (c *Client) ListDir(dir uint32, o ListOpts) (*DirList, error) {
	packed := c.Version >= 3
	if len(o.Via) > 0 && !packed {
		return nil, unix.EINVAL
	}
	var via [][]byte
	for _, v := range o.Via {
		via = append(via, []byte(v))
	}
	out := &DirList{}
	var cookie int64
	var err error
	for {
		req := &proto.ReaddirReq{Dir: dir, Name: []byte(o.Name), Via: via, Cookie: cookie, Attrs: o.Attrs, Packed: packed,
			WantHandle: o.WantHandle && packed && o.Name != "" && cookie == 0}
		if packed && cookie == 0 && o.Attrs {
			req.Prefetch = uint32(max(o.Prefetch, 0))
		}
		resp, fds, cerr := c.call(&proto.Request{Op: &proto.Request_Readdir{Readdir: req}}, 0)
		if cerr != nil {
			err = cerr
			break
		}
		rd := resp.GetReaddir()
		if rd == nil {
			err = c.badResult(fds)
			break
		}
		if d := rd.Dir; d != nil && req.WantHandle {
			if d.Attr == nil {
				err = c.badResult(nil)
				break
			}
			out.Handle, out.HandleAttr = d.Handle, d.Attr
		}
		for _, sub := range rd.Subs {
			if out.Subs == nil {
				out.Subs = make(map[string]string, len(rd.Subs))
			}
			out.Subs[string(sub.Name)] = string(sub.Packed)
		}
		n := len(out.Ents)
		if len(rd.Packed) > 0 {
			// The buffer is this response's own and never written again,
			// so names can point into it.
			if out.Ents, err = proto.DecodePacked(unsafe.String(&rd.Packed[0], len(rd.Packed)), out.Ents); err != nil {
				err = c.badResult(nil)
				break
			}
		}
		for _, e := range rd.Entries {
			d := proto.PackedDirent{Name: string(e.Name), Ino: e.Ino, Cookie: e.Cookie, Type: uint8(e.Type), HasAttr: e.Attr != nil}
			if e.Attr != nil {
				d.Attr = proto.StatOf(e.Attr)
			}
			out.Ents = append(out.Ents, d)
		}
		if rd.End || len(out.Ents) == n {
			return out, nil
		}
		cookie = out.Ents[len(out.Ents)-1].Cookie
	}
	if out.Handle != 0 {
		c.Close(out.Handle)
	}
	return nil, err
}

// Readlink returns the target of symlink h.
func (c *Client) Readlink(h uint32) (string, error) {
	resp, fds, err := c.call(&proto.Request{Op: &proto.Request_Readlink{Readlink: &proto.ReadlinkReq{Handle: h}}}, 0)
	if err != nil {
		return "", err
	}
	if resp.GetReadlink() == nil {
		return "", c.badResult(fds)
	}
	return string(resp.GetReadlink().Target), nil
}

// Create makes and opens a regular file: a handle, its attributes and a
// host FD open with flags' access mode.
func (c *Client) Create(dir uint32, name string, flags, mode, uid, gid uint32) (uint32, *proto.Attr, int, error) {
	h, a, fds, err := c.handleCall(&proto.Request{Op: &proto.Request_Create{Create: &proto.CreateReq{
		Dir: dir, Name: []byte(name), Flags: flags, Mode: mode, Uid: uid, Gid: gid}}}, 1)
	if err != nil {
		return 0, nil, -1, err
	}
	return h, a, fds[0], nil
}

// Mkdir makes a directory.
func (c *Client) Mkdir(dir uint32, name string, mode, uid, gid uint32) (uint32, *proto.Attr, error) {
	h, a, _, err := c.handleCall(&proto.Request{Op: &proto.Request_Mkdir{Mkdir: &proto.MkdirReq{
		Dir: dir, Name: []byte(name), Mode: mode, Uid: uid, Gid: gid}}}, 0)
	return h, a, err
}

// Mknod makes a FIFO or socket inode (mode includes the type).
func (c *Client) Mknod(dir uint32, name string, mode, uid, gid uint32) (uint32, *proto.Attr, error) {
	h, a, _, err := c.handleCall(&proto.Request{Op: &proto.Request_Mknod{Mknod: &proto.MknodReq{
		Dir: dir, Name: []byte(name), Mode: mode, Uid: uid, Gid: gid}}}, 0)
	return h, a, err
}

// Symlink makes a symlink to target.
func (c *Client) Symlink(dir uint32, name, target string, uid, gid uint32) (uint32, *proto.Attr, error) {
	h, a, _, err := c.handleCall(&proto.Request{Op: &proto.Request_Symlink{Symlink: &proto.SymlinkReq{
		Dir: dir, Name: []byte(name), Target: []byte(target), Uid: uid, Gid: gid}}}, 0)
	return h, a, err
}

// Link makes name in dir a hard link to target.
func (c *Client) Link(target, dir uint32, name string) error {
	return c.emptyCall(&proto.Request{Op: &proto.Request_Link{Link: &proto.LinkReq{Target: target, Dir: dir, Name: []byte(name)}}})
}

// Unlink removes a non-directory.
func (c *Client) Unlink(dir uint32, name string) error {
	return c.emptyCall(&proto.Request{Op: &proto.Request_Unlink{Unlink: &proto.UnlinkReq{Dir: dir, Name: []byte(name)}}})
}

// Rmdir removes an empty directory.
func (c *Client) Rmdir(dir uint32, name string) error {
	return c.emptyCall(&proto.Request{Op: &proto.Request_Rmdir{Rmdir: &proto.RmdirReq{Dir: dir, Name: []byte(name)}}})
}

// Rename is renameat2(2) between two directories of the mount.
func (c *Client) Rename(oldDir uint32, oldName string, newDir uint32, newName string, flags uint32) error {
	return c.emptyCall(&proto.Request{Op: &proto.Request_Rename{Rename: &proto.RenameReq{
		OldDir: oldDir, OldName: []byte(oldName), NewDir: newDir, NewName: []byte(newName), Flags: flags}}})
}

// SetStat changes the attributes selected by r.Mask (proto.SetStat*);
// r.Handle is set from h.
func (c *Client) SetStat(h uint32, r *proto.SetStatReq) error {
	r.Handle = h
	return c.emptyCall(&proto.Request{Op: &proto.Request_SetStat{SetStat: r}})
}

// Setxattr sets an extended attribute (user.* or trusted.*).
func (c *Client) Setxattr(h uint32, name string, value []byte, flags uint32) error {
	return c.emptyCall(&proto.Request{Op: &proto.Request_Setxattr{Setxattr: &proto.SetxattrReq{Handle: h, Name: []byte(name), Value: value, Flags: flags}}})
}

// Getxattr reads an extended attribute.
func (c *Client) Getxattr(h uint32, name string) ([]byte, error) {
	resp, fds, err := c.call(&proto.Request{Op: &proto.Request_Getxattr{Getxattr: &proto.GetxattrReq{Handle: h, Name: []byte(name)}}}, 0)
	if err != nil {
		return nil, err
	}
	if resp.GetGetxattr() == nil {
		return nil, c.badResult(fds)
	}
	return resp.GetGetxattr().Value, nil
}

// Listxattr lists extended attribute names.
func (c *Client) Listxattr(h uint32) ([]string, error) {
	resp, fds, err := c.call(&proto.Request{Op: &proto.Request_Listxattr{Listxattr: &proto.ListxattrReq{Handle: h}}}, 0)
	if err != nil {
		return nil, err
	}
	if resp.GetListxattr() == nil {
		return nil, c.badResult(fds)
	}
	names := make([]string, 0, len(resp.GetListxattr().Names))
	for _, n := range resp.GetListxattr().Names {
		names = append(names, string(n))
	}
	return names, nil
}

// Removexattr removes an extended attribute.
func (c *Client) Removexattr(h uint32, name string) error {
	return c.emptyCall(&proto.Request{Op: &proto.Request_Removexattr{Removexattr: &proto.RemovexattrReq{Handle: h, Name: []byte(name)}}})
}

// Close drops handles.
func (c *Client) Close(handles ...uint32) error {
	if len(handles) == 0 {
		return nil
	}
	return c.emptyCall(&proto.Request{Op: &proto.Request_Close{Close: &proto.CloseReq{Handles: handles}}})
}

// StatFS answers statfs(2) for the mount.
func (c *Client) StatFS(h uint32) (*proto.StatFSResp, error) {
	resp, fds, err := c.call(&proto.Request{Op: &proto.Request_StatFs{StatFs: &proto.StatFSReq{Handle: h}}}, 0)
	if err != nil {
		return nil, err
	}
	if resp.GetStatFs() == nil {
		return nil, c.badResult(fds)
	}
	return resp.GetStatFs(), nil
}

// currentCPU is the CPU the calling thread runs on, for the gofer's
// affinity hint (0 if the kernel will not say).
func currentCPU() uint32 {
	var cpu uint32
	if _, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), 0, 0); e != 0 {
		return 0
	}
	return cpu
}
