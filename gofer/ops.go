package gofer

import (
	"encoding/binary"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/gofer/proto"
)

// Sizes the gofer enforces on what the sentry sends, from Linux's limits.
const (
	xattrNameMax = 255      // XATTR_NAME_MAX
	xattrSizeMax = 64 << 10 // XATTR_SIZE_MAX
	pathMax      = 4096     // PATH_MAX, counting the NUL
	// readdirBudget bounds the names one Readdir response carries, well
	// under proto.MaxMessageSize.
	readdirBudget = 48 << 10
	// attrCost is the most an encoded Attr adds to a Readdir entry.
	attrCost = 160
	// packedBudget bounds a packed page, whose size is exact, with the
	// subdirectories prefetched with it.
	packedBudget = 96 << 10
	// maxVia bounds ReaddirReq.via.
	maxVia = 64
	// maxPrefetch bounds the subdirectories listed with a directory.
	maxPrefetch = 256
	// userXattrPrefix is the only host xattr namespace the gofer touches:
	// the host's trusted.* and security.* (file capabilities, LSM labels)
	// would let the sandbox grant itself privilege on the host. The
	// sandbox's trusted.* live in the host's user namespace instead, under
	// veilXattrPrefix (see hostXattrName).
	userXattrPrefix    = "user."
	trustedXattrPrefix = "trusted."
	veilXattrPrefix    = "user.veil."
	veilTrustedPrefix  = veilXattrPrefix + "t."
	veilUserPrefix     = veilXattrPrefix + "u."
)

func handleResp(h uint32, attr *proto.Attr) *proto.Response {
	return &proto.Response{Result: &proto.Response_Handle{Handle: &proto.HandleResp{Handle: h, Attr: attr}}}
}

func emptyResp() *proto.Response {
	return &proto.Response{Result: &proto.Response_Empty{Empty: &proto.Empty{}}}
}

func (s *session) walk(r *proto.WalkReq) (*proto.Response, error) {
	dir, err := s.getDir(r.Dir)
	if err != nil {
		return nil, err
	}
	name, err := checkName(r.Name)
	if err != nil {
		return nil, err
	}
	return s.addChild(dir, name)
}

// reopen opens the file n holds with real access, through procFD: the
// magic link names exactly n's inode, whatever its path is now.
func (s *session) reopen(n *node, flags int) (int, error) {
	for {
		fd, err := unix.Openat(s.procFD, procName(n.fd), flags|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func (s *session) open(r *proto.OpenReq) (*proto.Response, []int, error) {
	n, err := s.get(r.Handle)
	if err != nil {
		return nil, nil, err
	}
	acc := int(r.Flags & unix.O_ACCMODE)
	trunc := r.Flags&unix.O_TRUNC != 0
	if acc == unix.O_ACCMODE {
		return nil, nil, unix.EINVAL
	}
	if acc != unix.O_RDONLY || trunc {
		if err := s.mutating(); err != nil {
			return nil, nil, err
		}
	}
	var flags int
	switch n.ftype {
	case unix.S_IFREG:
		flags = acc | unix.O_LARGEFILE
		if trunc {
			flags |= unix.O_TRUNC
		}
	case unix.S_IFDIR:
		if acc != unix.O_RDONLY || trunc {
			return nil, nil, unix.EISDIR
		}
		flags = unix.O_RDONLY | unix.O_DIRECTORY
	case unix.S_IFLNK:
		return nil, nil, unix.ELOOP
	default:
		// FIFOs, sockets and devices are the sentry's to implement; a host
		// one is never handed out.
		return nil, nil, unix.ENXIO
	}
	fd, err := s.reopen(n, flags)
	if err != nil {
		return nil, nil, err
	}
	attr, _, err := statFD(fd)
	if err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	return &proto.Response{Result: &proto.Response_Open{Open: &proto.OpenResp{Attr: attr}}}, []int{fd}, nil
}

func (s *session) stat(r *proto.StatReq) (*proto.Response, error) {
	n, err := s.get(r.Handle)
	if err != nil {
		return nil, err
	}
	attr, _, err := statFD(n.fd)
	if err != nil {
		return nil, err
	}
	return &proto.Response{Result: &proto.Response_Stat{Stat: &proto.StatResp{Attr: attr}}}, nil
}

// openDirAt opens name in dir as a directory to read, never following a
// symlink (ENOTDIR for one, as for any non-directory).
func openDirAt(dir int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch err {
		case unix.EINTR:
			continue
		case unix.ELOOP:
			return -1, unix.ENOTDIR // a symlink is not a directory to list
		}
		return fd, err
	}
}

func (s *session) readdir(r *proto.ReaddirReq) (*proto.Response, error) {
	n, err := s.getDir(r.Dir)
	if err != nil {
		return nil, err
	}
	if r.Cookie < 0 {
		return nil, unix.EINVAL
	}
	v3 := s.version >= 3
	if len(r.Via) > 0 && (!v3 || len(r.Name) == 0 || len(r.Via) > maxVia) {
		return nil, unix.EINVAL
	}
	target := "."
	if len(r.Name) > 0 {
		if target, err = checkName(r.Name); err != nil {
			return nil, err
		}
	}
	// Through via, one component at a time, each a directory reached
	// without following anything, as a walk would.
	at, owned := n.fd, false
	for _, c := range r.Via {
		name, err := checkName(c)
		if err == nil {
			var next int
			if next, err = unix.Openat(at, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
				if owned {
					unix.Close(at)
				}
				at, owned = next, true
			}
		}
		if err != nil {
			if owned {
				unix.Close(at)
			}
			return nil, err
		}
	}
	fd, err := openDirAt(at, target)
	if owned {
		unix.Close(at)
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if _, err := unix.Seek(fd, r.Cookie, 0); err != nil {
		return nil, err
	}
	if s.dbuf == nil {
		s.dbuf = make([]byte, 32<<10)
		// Room for a whole page: listPacked stops short of the budget.
		s.pbuf = make([]byte, 0, packedBudget)
	}
	buf := s.dbuf
	rd := &proto.ReaddirResp{}
	if r.Packed && v3 {
		var left int
		rd.Packed, rd.End, left, err = listPacked(fd, buf, r.Attrs, packedBudget, s.pbuf[:0])
		if err == nil && rd.End && r.Cookie == 0 && r.Attrs && r.Prefetch > 0 {
			rd.Subs = prefetchSubdirs(fd, buf, rd.Packed, int(min(r.Prefetch, maxPrefetch)), left)
		}
	} else {
		rd.Entries, rd.End, err = listEntries(fd, buf, r.Attrs)
	}
	if err != nil {
		return nil, err
	}
	if r.WantHandle && len(r.Name) > 0 && r.Cookie == 0 && v3 {
		rd.Dir = s.dirHandle(fd)
	}
	return &proto.Response{Result: &proto.Response_Readdir{Readdir: rd}}, nil
}

// dirents calls fn for each entry of the directory open at fd from its
// offset on, but "." and "..", until fn returns false (the entry is then
// left unread: the client goes on from the last cookie it got); end says
// the directory ran out.
func dirents(fd int, buf []byte, fn func(name []byte, ino uint64, off int64, typ uint8) bool) (end bool, err error) {
	for {
		nb, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, err
		}
		if nb == 0 {
			return true, nil
		}
		for b := buf[:nb]; len(b) >= 19; {
			reclen := int(binary.LittleEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return false, unix.EIO
			}
			name := b[19:reclen]
			if i := indexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			ino := binary.LittleEndian.Uint64(b[0:8])
			off := int64(binary.LittleEndian.Uint64(b[8:16]))
			typ := b[18]
			b = b[reclen:]
			if string(name) == "." || string(name) == ".." {
				continue
			}
			if !fn(name, ino, off, typ) {
				return false, nil
			}
		}
	}
}

// lstatAt returns the attributes of the entry name of the directory open
// at fd: relative to that FD and never following the last component, so
// it names only the entry itself.
func lstatAt(fd int, name []byte, st *unix.Stat_t) bool {
	return unix.Fstatat(fd, string(name), st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// listEntries lists as Dirent messages, within readdirBudget.
func listEntries(fd int, buf []byte, attrs bool) (out []*proto.Dirent, end bool, err error) {
	budget := readdirBudget
	end, err = dirents(fd, buf, func(name []byte, ino uint64, off int64, typ uint8) bool {
		cost := len(name) + 32
		if attrs {
			cost += attrCost
		}
		if cost > budget {
			return false
		}
		budget -= cost
		d := &proto.Dirent{Name: append([]byte(nil), name...), Ino: ino, Type: uint32(typ), Cookie: off}
		var st unix.Stat_t
		if attrs && lstatAt(fd, name, &st) {
			d.Attr = attrOf(&st)
		}
		out = append(out, d)
		return true
	})
	return out, end, err
}

// listPacked appends the listing, packed, to pack, within budget bytes;
// left is what remains.
func listPacked(fd int, buf []byte, attrs bool, budget int, pack []byte) (_ []byte, end bool, left int, err error) {
	end, err = dirents(fd, buf, func(name []byte, ino uint64, off int64, typ uint8) bool {
		cost := proto.PackedSize(len(name), attrs)
		if cost > budget {
			return false
		}
		budget -= cost
		var st unix.Stat_t
		if attrs && lstatAt(fd, name, &st) {
			hs := proto.HostStat(&st)
			pack = proto.AppendPacked(pack, name, ino, off, typ, &hs)
		} else {
			pack = proto.AppendPacked(pack, name, ino, off, typ, nil)
		}
		return true
	})
	return pack, end, budget, err
}

// prefetchSubdirs lists up to max of the subdirectories in pack, a
// complete packed listing of the directory open at fd, each in full and
// all within budget bytes; a subdirectory that does not fit ends it. The
// listings go after pack in its buffer.
func prefetchSubdirs(fd int, buf []byte, pack []byte, max, budget int) []*proto.Sublisting {
	ents, err := proto.DecodePacked(string(pack), nil)
	if err != nil {
		return nil
	}
	var subs []*proto.Sublisting
	for _, e := range ents {
		if len(subs) == max {
			break
		}
		if !e.HasAttr || e.Attr.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		budget -= len(e.Name) + 16 // the Sublisting's own encoding
		if budget <= 0 {
			break
		}
		sfd, err := openDirAt(fd, e.Name)
		if err != nil {
			continue // gone, or replaced meanwhile: the client asks if it needs it
		}
		start := len(pack)
		all, end, left, err := listPacked(sfd, buf, true, budget, pack)
		unix.Close(sfd)
		if err != nil || !end {
			break
		}
		pack, budget = all, left
		subs = append(subs, &proto.Sublisting{Name: []byte(e.Name), Packed: pack[start:]})
	}
	return subs
}

// dirHandle makes a handle of the directory open at fd, or nil if it
// cannot (the listing is still good without it).
func (s *session) dirHandle(fd int) *proto.HandleResp {
	// Through the magic link: exactly the directory just listed, whatever
	// has been renamed since.
	pfd, err := unix.Openat(s.procFD, procName(fd), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	attr, ftype, err := statFD(pfd)
	if err != nil || ftype != unix.S_IFDIR {
		unix.Close(pfd)
		return nil
	}
	h, err := s.add(pfd, ftype)
	if err != nil {
		return nil
	}
	return &proto.HandleResp{Handle: h, Attr: attr}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func (s *session) readlink(r *proto.ReadlinkReq) (*proto.Response, error) {
	n, err := s.get(r.Handle)
	if err != nil {
		return nil, err
	}
	if n.ftype != unix.S_IFLNK {
		return nil, unix.EINVAL
	}
	buf := make([]byte, pathMax)
	nb, err := unix.Readlinkat(n.fd, "", buf)
	if err != nil {
		return nil, err
	}
	return &proto.Response{Result: &proto.Response_Readlink{Readlink: &proto.ReadlinkResp{Target: buf[:nb]}}}, nil
}

// own gives a file the sentry just created its owner, then restores the
// exact mode asked for. On failure the caller removes the file.
func (s *session) own(fd int, uid, gid, mode uint32, ftype uint32) error {
	if err := unix.Fchownat(fd, "", int(uid), int(gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	// Always set the mode: the gofer's umask must not apply, and chown
	// cleared setuid/setgid.
	if ftype != unix.S_IFLNK {
		return unix.Fchmodat(s.procFD, procName(fd), mode&0o7777, 0)
	}
	return nil
}

// finishCreate takes the O_PATH handle of the new child name of dir, sets
// its owner, and returns a HandleResp. On failure it removes the child.
func (s *session) finishCreate(dir *node, name string, uid, gid, mode, want uint32) (*proto.Response, error) {
	undo := func() {
		flag := 0
		if want == unix.S_IFDIR {
			flag = unix.AT_REMOVEDIR
		}
		unix.Unlinkat(dir.fd, name, flag)
	}
	fd, err := lookup(dir, name)
	if err != nil {
		undo()
		return nil, err
	}
	_, ftype, err := statFD(fd)
	if err == nil && ftype != want {
		// Replaced between creation and lookup: not ours to touch.
		unix.Close(fd)
		return nil, unix.EIO
	}
	if err == nil {
		err = s.own(fd, uid, gid, mode, ftype)
	}
	var attr *proto.Attr
	if err == nil {
		attr, _, err = statFD(fd)
	}
	if err != nil {
		unix.Close(fd)
		undo()
		return nil, err
	}
	h, err := s.add(fd, ftype)
	if err != nil {
		undo()
		return nil, err
	}
	return handleResp(h, attr), nil
}

// mutableDir checks that the connection may mutate and returns the
// directory r names with a checked component.
func (s *session) mutableDir(h uint32, rawName []byte) (*node, string, error) {
	dir, err := s.getDir(h)
	if err != nil {
		return nil, "", err
	}
	name, err := checkName(rawName)
	if err != nil {
		return nil, "", err
	}
	if err := s.mutating(); err != nil {
		return nil, "", err
	}
	return dir, name, nil
}

func (s *session) create(r *proto.CreateReq) (*proto.Response, []int, error) {
	dir, name, err := s.mutableDir(r.Dir, r.Name)
	if err != nil {
		return nil, nil, err
	}
	acc := int(r.Flags & unix.O_ACCMODE)
	if acc == unix.O_ACCMODE {
		return nil, nil, unix.EINVAL
	}
	mode := r.Mode & 0o7777
	fd, err := unix.Openat(dir.fd, name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_LARGEFILE|acc, mode)
	if err != nil {
		return nil, nil, err
	}
	// Own the file through the open FD, which cannot have been swapped.
	if err := unix.Fchown(fd, int(r.Uid), int(r.Gid)); err != nil {
		unix.Close(fd)
		unix.Unlinkat(dir.fd, name, 0)
		return nil, nil, err
	}
	{
		// The gofer's umask must not apply, and chown cleared setuid.
		if err := unix.Fchmod(fd, mode); err != nil {
			unix.Close(fd)
			unix.Unlinkat(dir.fd, name, 0)
			return nil, nil, err
		}
	}
	pfd, err := unix.Openat(s.procFD, procName(fd), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		unix.Unlinkat(dir.fd, name, 0)
		return nil, nil, err
	}
	attr, _, err := statFD(fd)
	if err != nil {
		unix.Close(fd)
		unix.Close(pfd)
		unix.Unlinkat(dir.fd, name, 0)
		return nil, nil, err
	}
	h, err := s.add(pfd, unix.S_IFREG)
	if err != nil {
		unix.Close(fd)
		unix.Unlinkat(dir.fd, name, 0)
		return nil, nil, err
	}
	return handleResp(h, attr), []int{fd}, nil
}

func (s *session) mkdir(r *proto.MkdirReq) (*proto.Response, error) {
	dir, name, err := s.mutableDir(r.Dir, r.Name)
	if err != nil {
		return nil, err
	}
	mode := r.Mode & 0o7777
	if err := unix.Mkdirat(dir.fd, name, mode); err != nil {
		return nil, err
	}
	return s.finishCreate(dir, name, r.Uid, r.Gid, mode, unix.S_IFDIR)
}

func (s *session) mknod(r *proto.MknodReq) (*proto.Response, error) {
	dir, name, err := s.mutableDir(r.Dir, r.Name)
	if err != nil {
		return nil, err
	}
	ftype := r.Mode & unix.S_IFMT
	if ftype != unix.S_IFIFO && ftype != unix.S_IFSOCK {
		// Device nodes are never made on the host for the sandbox.
		return nil, unix.EPERM
	}
	mode := r.Mode & 0o7777
	if err := unix.Mknodat(dir.fd, name, ftype|mode, 0); err != nil {
		return nil, err
	}
	return s.finishCreate(dir, name, r.Uid, r.Gid, mode, ftype)
}

func (s *session) symlink(r *proto.SymlinkReq) (*proto.Response, error) {
	dir, name, err := s.mutableDir(r.Dir, r.Name)
	if err != nil {
		return nil, err
	}
	switch {
	case len(r.Target) == 0:
		return nil, unix.ENOENT
	case len(r.Target) >= pathMax:
		return nil, unix.ENAMETOOLONG
	case indexByte(r.Target, 0) >= 0:
		return nil, unix.EINVAL
	}
	// The target is stored, never resolved by the gofer.
	if err := unix.Symlinkat(string(r.Target), dir.fd, name); err != nil {
		return nil, err
	}
	return s.finishCreate(dir, name, r.Uid, r.Gid, 0o777, unix.S_IFLNK)
}

func (s *session) link(r *proto.LinkReq) (*proto.Response, error) {
	dir, name, err := s.mutableDir(r.Dir, r.Name)
	if err != nil {
		return nil, err
	}
	target, err := s.get(r.Target)
	if err != nil {
		return nil, err
	}
	if target.ftype == unix.S_IFDIR {
		return nil, unix.EPERM
	}
	err = unix.Linkat(target.fd, "", dir.fd, name, unix.AT_EMPTY_PATH)
	if err == unix.ENOENT || err == unix.EPERM {
		// AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the magic link does
		// not, and names the same inode.
		err = unix.Linkat(s.procFD, procName(target.fd), dir.fd, name, unix.AT_SYMLINK_FOLLOW)
	}
	if err != nil {
		return nil, err
	}
	return emptyResp(), nil
}

func (s *session) unlink(r *proto.UnlinkReq) (*proto.Response, error) {
	dir, name, err := s.mutableDir(r.Dir, r.Name)
	if err != nil {
		return nil, err
	}
	if err := unix.Unlinkat(dir.fd, name, 0); err != nil {
		return nil, err
	}
	return emptyResp(), nil
}

func (s *session) rmdir(r *proto.RmdirReq) (*proto.Response, error) {
	dir, name, err := s.mutableDir(r.Dir, r.Name)
	if err != nil {
		return nil, err
	}
	if err := unix.Unlinkat(dir.fd, name, unix.AT_REMOVEDIR); err != nil {
		return nil, err
	}
	return emptyResp(), nil
}

func (s *session) rename(r *proto.RenameReq) (*proto.Response, error) {
	oldDir, oldName, err := s.mutableDir(r.OldDir, r.OldName)
	if err != nil {
		return nil, err
	}
	newDir, newName, err := s.mutableDir(r.NewDir, r.NewName)
	if err != nil {
		return nil, err
	}
	if r.Flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 ||
		r.Flags == unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE {
		return nil, unix.EINVAL
	}
	if err := unix.Renameat2(oldDir.fd, oldName, newDir.fd, newName, uint(r.Flags)); err != nil {
		return nil, err
	}
	return emptyResp(), nil
}

// validTime checks a SetStat timestamp the way utimensat(2) does.
func validTime(t *proto.Timespec) error {
	if t == nil {
		return unix.EINVAL
	}
	if t.Nsec == unix.UTIME_NOW || t.Nsec == unix.UTIME_OMIT {
		return nil
	}
	if t.Nsec < 0 || t.Nsec > 999999999 {
		return unix.EINVAL
	}
	return nil
}

func (s *session) setStat(r *proto.SetStatReq) (*proto.Response, error) {
	n, err := s.get(r.Handle)
	if err != nil {
		return nil, err
	}
	const all = proto.SetStatMode | proto.SetStatUID | proto.SetStatGID | proto.SetStatSize | proto.SetStatAtime | proto.SetStatMtime
	if r.Mask&^all != 0 {
		return nil, unix.EINVAL
	}
	if r.Mask == 0 {
		return emptyResp(), nil
	}
	if err := s.mutating(); err != nil {
		return nil, err
	}
	// Validate everything before changing anything.
	if r.Mask&proto.SetStatSize != 0 {
		switch {
		case n.ftype == unix.S_IFDIR:
			return nil, unix.EISDIR
		case n.ftype != unix.S_IFREG:
			return nil, unix.EINVAL
		case r.Size < 0:
			return nil, unix.EINVAL
		}
	}
	if r.Mask&proto.SetStatMode != 0 && n.ftype == unix.S_IFLNK {
		return nil, unix.EOPNOTSUPP
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	if r.Mask&proto.SetStatAtime != 0 {
		if err := validTime(r.Atime); err != nil {
			return nil, err
		}
		ts[0] = unix.Timespec{Sec: r.Atime.Sec, Nsec: r.Atime.Nsec}
	}
	if r.Mask&proto.SetStatMtime != 0 {
		if err := validTime(r.Mtime); err != nil {
			return nil, err
		}
		ts[1] = unix.Timespec{Sec: r.Mtime.Sec, Nsec: r.Mtime.Nsec}
	}

	// Owner first: chown clears setuid/setgid, which a mode given in the
	// same call then sets again, as one setattr would leave them.
	if r.Mask&(proto.SetStatUID|proto.SetStatGID) != 0 {
		uid, gid := -1, -1
		if r.Mask&proto.SetStatUID != 0 {
			uid = int(r.Uid)
		}
		if r.Mask&proto.SetStatGID != 0 {
			gid = int(r.Gid)
		}
		if err := unix.Fchownat(n.fd, "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, err
		}
	}
	if r.Mask&proto.SetStatMode != 0 {
		if err := unix.Fchmodat(s.procFD, procName(n.fd), r.Mode&0o7777, 0); err != nil {
			return nil, err
		}
	}
	if r.Mask&proto.SetStatSize != 0 {
		fd, err := s.reopen(n, unix.O_WRONLY|unix.O_LARGEFILE)
		if err != nil {
			return nil, err
		}
		err = unix.Ftruncate(fd, r.Size)
		unix.Close(fd)
		if err != nil {
			return nil, err
		}
	}
	if r.Mask&(proto.SetStatAtime|proto.SetStatMtime) != 0 {
		if err := s.utimes(n, ts); err != nil {
			return nil, err
		}
	}
	return emptyResp(), nil
}

// utimes sets n's times without following a symlink n is.
func (s *session) utimes(n *node, ts []unix.Timespec) error {
	err := unix.UtimesNanoAt(n.fd, "", ts, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.EINVAL || err == unix.ENOENT {
		if n.ftype == unix.S_IFLNK {
			return unix.EOPNOTSUPP
		}
		// Kernels without AT_EMPTY_PATH here: go through the magic link.
		err = unix.UtimesNanoAt(s.procFD, procName(n.fd), ts, 0)
	}
	return err
}

// hostXattrName checks a sandbox xattr name and gives the host name it is
// stored under: user.X as itself, trusted.X as user.veil.t.X, and the
// sandbox's own user.veil.X as user.veil.u.X, so that the sandbox can
// neither forge nor see the mapping. Other namespaces are not served.
func hostXattrName(raw []byte, version uint32) (string, error) {
	name := string(raw)
	if len(name) == 0 || len(name) > xattrNameMax {
		return "", unix.ERANGE
	}
	if indexByte(raw, 0) >= 0 {
		return "", unix.EINVAL
	}
	var host string
	switch {
	case version < 2:
		// Version 1: user.* only, stored as named.
		if !strings.HasPrefix(name, userXattrPrefix) || len(name) == len(userXattrPrefix) {
			return "", unix.EOPNOTSUPP
		}
		host = name
	case strings.HasPrefix(name, trustedXattrPrefix) && len(name) > len(trustedXattrPrefix):
		host = veilTrustedPrefix + name[len(trustedXattrPrefix):]
	case strings.HasPrefix(name, veilXattrPrefix):
		host = veilUserPrefix + name[len(veilXattrPrefix):]
	case strings.HasPrefix(name, userXattrPrefix) && len(name) > len(userXattrPrefix):
		host = name
	default:
		return "", unix.EOPNOTSUPP
	}
	if len(host) > xattrNameMax {
		return "", unix.ERANGE
	}
	return host, nil
}

// sandboxXattrName reverses hostXattrName; ok is false for host names the
// sandbox does not see.
func sandboxXattrName(host string, version uint32) (string, bool) {
	switch {
	case version < 2:
		return host, strings.HasPrefix(host, userXattrPrefix)
	case strings.HasPrefix(host, veilTrustedPrefix):
		return trustedXattrPrefix + host[len(veilTrustedPrefix):], true
	case strings.HasPrefix(host, veilUserPrefix):
		return veilXattrPrefix + host[len(veilUserPrefix):], true
	case strings.HasPrefix(host, veilXattrPrefix):
		return "", false
	case strings.HasPrefix(host, userXattrPrefix):
		return host, true
	}
	return "", false
}

// xattrFD opens n for an f*xattr call. Only regular files and directories
// carry user.* xattrs on Linux.
func (s *session) xattrFD(n *node) (int, error) {
	flags := unix.O_RDONLY | unix.O_NONBLOCK
	switch n.ftype {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		flags |= unix.O_DIRECTORY
	default:
		return -1, unix.EPERM
	}
	return s.reopen(n, flags)
}

func (s *session) setxattr(r *proto.SetxattrReq) (*proto.Response, error) {
	n, err := s.get(r.Handle)
	if err != nil {
		return nil, err
	}
	name, err := hostXattrName(r.Name, s.version)
	if err != nil {
		return nil, err
	}
	if len(r.Value) > xattrSizeMax {
		return nil, unix.E2BIG
	}
	if r.Flags&^(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0 {
		return nil, unix.EINVAL
	}
	if err := s.mutating(); err != nil {
		return nil, err
	}
	fd, err := s.xattrFD(n)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, name, r.Value, int(r.Flags)); err != nil {
		return nil, err
	}
	return emptyResp(), nil
}

func (s *session) getxattr(r *proto.GetxattrReq) (*proto.Response, error) {
	n, err := s.get(r.Handle)
	if err != nil {
		return nil, err
	}
	name, err := hostXattrName(r.Name, s.version)
	if err != nil {
		return nil, err
	}
	fd, err := s.xattrFD(n)
	if err == unix.EPERM {
		return nil, unix.ENODATA
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, xattrSizeMax)
	nb, err := unix.Fgetxattr(fd, name, buf)
	if err != nil {
		return nil, err
	}
	return &proto.Response{Result: &proto.Response_Getxattr{Getxattr: &proto.GetxattrResp{Value: buf[:nb]}}}, nil
}

func (s *session) listxattr(r *proto.ListxattrReq) (*proto.Response, error) {
	n, err := s.get(r.Handle)
	if err != nil {
		return nil, err
	}
	resp := &proto.ListxattrResp{}
	fd, err := s.xattrFD(n)
	if err == unix.EPERM {
		return &proto.Response{Result: &proto.Response_Listxattr{Listxattr: resp}}, nil
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, xattrSizeMax)
	nb, err := unix.Flistxattr(fd, buf)
	if err != nil {
		return nil, err
	}
	for _, host := range strings.Split(string(buf[:nb]), "\x00") {
		// Other namespaces are not served, so they are not listed.
		if name, ok := sandboxXattrName(host, s.version); ok {
			resp.Names = append(resp.Names, []byte(name))
		}
	}
	return &proto.Response{Result: &proto.Response_Listxattr{Listxattr: resp}}, nil
}

func (s *session) removexattr(r *proto.RemovexattrReq) (*proto.Response, error) {
	n, err := s.get(r.Handle)
	if err != nil {
		return nil, err
	}
	name, err := hostXattrName(r.Name, s.version)
	if err != nil {
		return nil, err
	}
	if err := s.mutating(); err != nil {
		return nil, err
	}
	fd, err := s.xattrFD(n)
	if err == unix.EPERM {
		return nil, unix.ENODATA
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := unix.Fremovexattr(fd, name); err != nil {
		return nil, err
	}
	return emptyResp(), nil
}

func (s *session) close(r *proto.CloseReq) (*proto.Response, error) {
	var err error
	for _, h := range r.Handles {
		n, ok := s.handles[h]
		if !ok {
			err = unix.EBADF
			continue
		}
		unix.Close(n.fd)
		delete(s.handles, h)
	}
	if err != nil {
		return nil, err
	}
	return emptyResp(), nil
}

func (s *session) statFS(r *proto.StatFSReq) (*proto.Response, error) {
	n, err := s.get(r.Handle)
	if err != nil {
		return nil, err
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(n.fd, &st); err != nil {
		return nil, err
	}
	return &proto.Response{Result: &proto.Response_StatFs{StatFs: &proto.StatFSResp{
		Type:    st.Type,
		Bsize:   st.Bsize,
		Blocks:  st.Blocks,
		Bfree:   st.Bfree,
		Bavail:  st.Bavail,
		Files:   st.Files,
		Ffree:   st.Ffree,
		Namelen: st.Namelen,
		Frsize:  st.Frsize,
		Flags:   st.Flags,
	}}}, nil
}
