// Package proc owns procfs: a filesystem whose directories and files are
// generated from the sandbox's kernel state each time they are looked up,
// listed or opened.
//
// Global entries: self, thread-self, cpuinfo, meminfo, stat, uptime,
// loadavg, version, filesystems, mounts, swaps, partitions, sys/ (kernel,
// vm and fs settings, read-only but for kernel/hostname, which follows
// sethostname's rules) and net/ (the tables ip, netstat and ss read). Per process
// (/proc/PID) and per thread (/proc/PID/task/TID): stat, status, statm,
// cmdline, environ, comm, maps, smaps, fd/, fdinfo/, cwd, exe, root,
// mounts, mountinfo, limits, cgroup, oom_score, oom_score_adj, io, ns/,
// auxv, uid_map, gid_map, and task/ in a process.
//
// Nothing is cached that could go stale: an inode names its process by
// PID (and thread by TID) and finds it again on every use, so a dentry the
// VFS keeps after the process is gone answers ENOENT, and one for a reused
// PID shows the new process. Every inode is evictable, which bounds the
// dentries the VFS keeps for processes that came and went.
//
// fd/N, cwd, root and exe are magic links (vfs.MagicLink): opening through
// them reaches the very file the process holds, through the VFS, never by
// re-resolving a path name; a file with no place in the mount tree (a pipe,
// a socket, a donated host FD) is reached as the same open file. Looking
// into another process's private entries needs ptrace read access
// (kernel.MayReadProcess), as on Linux.
package proc

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// PROC_SUPER_MAGIC is statfs's f_type for procfs.
const PROC_SUPER_MAGIC = 0x9fa0

// Filesystem is one procfs instance of a kernel.
type Filesystem struct {
	k    *kernel.Kernel
	root *dirInode
	sys  *sysState
}

// New returns the procfs of k.
func New(k *kernel.Kernel) *Filesystem {
	fs := &Filesystem{k: k, sys: sysStateOf(k)}
	fs.root = &dirInode{node: node{ino: inoRoot, mode: 0555}, list: fs.rootEntries, lookup: fs.rootLookup}
	return fs
}

func (fs *Filesystem) Name() string                            { return "proc" }
func (fs *Filesystem) Root(context.Context) (vfs.Inode, error) { return fs.root, nil }
func (fs *Filesystem) Sync(context.Context) error              { return nil }
func (fs *Filesystem) Release(context.Context)                 {}
func (fs *Filesystem) StatFS(context.Context) (vfs.Statfs, error) {
	return vfs.Statfs{Type: PROC_SUPER_MAGIC, BlockSize: 4096, FragSize: 4096, NameLength: 255}, nil
}

// taskOf returns the task a context belongs to (nil for sentry work).
func taskOf(ctx context.Context) *kernel.Task {
	t, _ := ctx.(*kernel.Task)
	return t
}

// node holds what every procfs inode has.
type node struct {
	ino  uint64
	mode uint32 // permission bits
	// owner returns the owner; nil means root.
	owner func() (auth.KUID, auth.KGID)
	// alive returns ENOENT once what the inode shows is gone; nil means
	// it never goes.
	alive func() error
}

func (n *node) check() error {
	if n.alive != nil {
		return n.alive()
	}
	return nil
}

func (n *node) perms(typ uint32) vfs.Perms {
	p := vfs.Perms{Mode: typ | n.mode}
	if n.owner != nil {
		p.UID, p.GID = n.owner()
	}
	return p
}

func (n *node) stat(typ uint32, nlink uint32) (vfs.Statx, error) {
	if err := n.check(); err != nil {
		return vfs.Statx{}, err
	}
	p := n.perms(typ)
	now := time.Now()
	ts := vfs.StatxTimestamp{Sec: now.Unix(), Nsec: uint32(now.Nanosecond())}
	return vfs.Statx{
		Mask: unix.STATX_BASIC_STATS, Blksize: 1024, Nlink: nlink, UID: uint32(p.UID), GID: uint32(p.GID),
		Mode: uint16(p.Mode), Ino: n.ino, Atime: ts, Mtime: ts, Ctime: ts,
	}, nil
}

// SetStat refuses chmod and chown; a truncation (open with O_TRUNC, as a
// shell's ">" does) and times are accepted and change nothing, as
// Linux's proc_setattr.
func (n *node) SetStat(_ context.Context, opts vfs.SetStatOptions) error {
	if opts.Mask&(unix.STATX_MODE|unix.STATX_UID|unix.STATX_GID) != 0 {
		return unix.EPERM
	}
	return nil
}

// Evict lets the VFS drop cached dentries of procfs: nothing is held.
func (n *node) Evict(context.Context) {}

// entry is one child of a generated directory.
type entry struct {
	name string
	make func() vfs.Inode
}

// dirInode is a generated directory.
type dirInode struct {
	vfs.NotSymlink
	node
	list   func(ctx context.Context) []entry
	lookup func(ctx context.Context, name string) (vfs.Inode, error)
}

func (d *dirInode) Perms() vfs.Perms { return d.perms(unix.S_IFDIR) }

func (d *dirInode) Stat(ctx context.Context) (vfs.Statx, error) { return d.stat(unix.S_IFDIR, 2) }

func (d *dirInode) Lookup(ctx context.Context, name string) (vfs.Inode, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	if d.lookup != nil {
		if ino, err := d.lookup(ctx, name); ino != nil || err != unix.ENOENT {
			return ino, err
		}
	}
	if d.list == nil {
		return nil, unix.ENOENT
	}
	for _, e := range d.list(ctx) {
		if e.name == name {
			return e.make(), nil
		}
	}
	return nil, unix.ENOENT
}

func (d *dirInode) ReadDir(ctx context.Context) ([]vfs.Dirent, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	var out []vfs.Dirent
	if d.list == nil {
		return nil, nil
	}
	for _, e := range d.list(ctx) {
		ino := e.make()
		var num uint64
		switch n := ino.(type) {
		case *dirInode:
			num = n.ino
		case *fileInode:
			num = n.ino
		case *symlinkInode:
			num = n.ino
		case *magicLinkInode:
			num = n.ino
		}
		out = append(out, vfs.Dirent{Name: e.name, Ino: num, Type: vfs.DirentType(ino.Perms().Mode)})
	}
	return out, nil
}

func (d *dirInode) Open(context.Context, uint32) (vfs.FileDescriptionImpl, error) {
	return nil, unix.EISDIR
}

func (d *dirInode) Create(context.Context, string, vfs.CreateOptions) (vfs.Inode, error) {
	return nil, unix.EACCES
}
func (d *dirInode) Mkdir(context.Context, string, vfs.CreateOptions) (vfs.Inode, error) {
	return nil, unix.EACCES
}
func (d *dirInode) Symlink(context.Context, string, string, vfs.CreateOptions) (vfs.Inode, error) {
	return nil, unix.EACCES
}
func (d *dirInode) Link(context.Context, string, vfs.Inode) error   { return unix.EACCES }
func (d *dirInode) Unlink(context.Context, string, vfs.Inode) error { return unix.EACCES }
func (d *dirInode) Rmdir(context.Context, string, vfs.Inode) error  { return unix.EACCES }
func (d *dirInode) Rename(context.Context, string, vfs.Inode, vfs.Inode, string, vfs.Inode) error {
	return unix.EACCES
}

// fileInode is a generated file: read makes its contents, write (if set)
// takes each write(2)'s bytes.
type fileInode struct {
	vfs.NotDir
	vfs.NotSymlink
	node
	read  func(ctx context.Context) ([]byte, error)
	write func(ctx context.Context, data []byte) error
}

func (f *fileInode) Perms() vfs.Perms { return f.perms(unix.S_IFREG) }

func (f *fileInode) Stat(ctx context.Context) (vfs.Statx, error) { return f.stat(unix.S_IFREG, 1) }

func (f *fileInode) Open(ctx context.Context, flags uint32) (vfs.FileDescriptionImpl, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	if flags&unix.O_ACCMODE != unix.O_RDONLY && f.write == nil {
		return nil, unix.EACCES
	}
	return &seqFile{ino: f}, nil
}

// seqFile is an open generated file. Its contents are made on the first
// read and again by every read from offset 0, so a reader that rewinds
// sees fresh values; reads further on continue the same snapshot.
type seqFile struct {
	vfs.FileDescriptionDefaultImpl
	ino *fileInode

	mu   sync.Mutex
	data []byte
	made bool
}

func (s *seqFile) Read(ctx context.Context, dst usermem.IOSequence, off int64) (int64, error) {
	s.mu.Lock()
	if off == 0 || !s.made {
		data, err := s.ino.read(ctx)
		if err != nil {
			s.mu.Unlock()
			return 0, err
		}
		s.data, s.made = data, true
	}
	data := s.data
	s.mu.Unlock()
	if off >= int64(len(data)) {
		return 0, nil
	}
	n, err := dst.CopyOut(data[off:])
	return int64(n), err
}

func (s *seqFile) Write(ctx context.Context, src usermem.IOSequence, off int64, appending bool) (int64, int64, error) {
	if s.ino.write == nil {
		return 0, 0, unix.EINVAL
	}
	// Settings are small: a page is as much as Linux's proc handlers take.
	n := min(src.NumBytes(), 4096)
	buf := make([]byte, n)
	got, err := src.CopyIn(buf)
	if err != nil && got == 0 {
		return 0, 0, err
	}
	if err := s.ino.write(ctx, buf[:got]); err != nil {
		return 0, 0, err
	}
	return int64(got), off + int64(got), nil
}

func (s *seqFile) Stat(ctx context.Context) (vfs.Statx, error) { return s.ino.Stat(ctx) }

// Seek allows any offset, as seq_file does.
func (s *seqFile) Seek(ctx context.Context, offset int64, whence int32, cur int64) (int64, error) {
	switch whence {
	case unix.SEEK_SET:
	case unix.SEEK_CUR:
		offset += cur
	default:
		return 0, unix.EINVAL
	}
	if offset < 0 {
		return 0, unix.EINVAL
	}
	return offset, nil
}

// symlinkInode is a generated symlink.
type symlinkInode struct {
	vfs.NotDir
	node
	target func(ctx context.Context) (string, error)
}

func (l *symlinkInode) Perms() vfs.Perms { return l.perms(unix.S_IFLNK) }

// Stat reports size 0, as Linux does for proc links; computing the
// target could need VFS locks that Stat's callers may hold.
func (l *symlinkInode) Stat(ctx context.Context) (vfs.Statx, error) {
	return l.stat(unix.S_IFLNK, 1)
}
func (l *symlinkInode) Readlink(ctx context.Context) (string, error) {
	if err := l.check(); err != nil {
		return "", err
	}
	return l.target(ctx)
}
func (l *symlinkInode) Open(context.Context, uint32) (vfs.FileDescriptionImpl, error) {
	return nil, unix.ELOOP
}

// magicLinkInode is a symlink that stands for a file (vfs.MagicLink).
type magicLinkInode struct {
	symlinkInode
	jump func(ctx context.Context, link vfs.VirtualDentry) (vfs.VirtualDentry, error)
}

func (l *magicLinkInode) Jump(ctx context.Context, link vfs.VirtualDentry) (vfs.VirtualDentry, error) {
	if err := l.check(); err != nil {
		return vfs.VirtualDentry{}, err
	}
	return l.jump(ctx, link)
}

var _ vfs.MagicLink = (*magicLinkInode)(nil)

// Inode numbers: fixed ones for global entries, and for a process's
// entries pid<<32 | tid<<10 | slot (tid 0 for the process's own), with
// bit 62 set for fd/ and fdinfo/ entries (pid<<32 | fd).
const (
	inoRoot = 1 + iota
	inoGlobalBase
)

func inoFor(pid, tid kernel.ThreadID, slot uint64) uint64 {
	return uint64(pid)<<32 | uint64(tid)<<10 | slot
}

func inoFD(pid kernel.ThreadID, info bool, fd int32) uint64 {
	ino := uint64(1)<<62 | uint64(pid)<<32 | uint64(uint32(fd))
	if info {
		ino |= 1 << 61
	}
	return ino
}

// Helpers that make generated entries.

func textFile(ino uint64, mode uint32, gen func(ctx context.Context) (string, error)) func() vfs.Inode {
	return func() vfs.Inode {
		return &fileInode{node: node{ino: ino, mode: mode}, read: func(ctx context.Context) ([]byte, error) {
			s, err := gen(ctx)
			return []byte(s), err
		}}
	}
}

func constFile(ino uint64, s string) func() vfs.Inode {
	return textFile(ino, 0444, func(context.Context) (string, error) { return s, nil })
}

func symlink(ino uint64, target func(ctx context.Context) (string, error)) func() vfs.Inode {
	return func() vfs.Inode {
		return &symlinkInode{node: node{ino: ino, mode: 0777}, target: target}
	}
}

func dir(ino uint64, list func(ctx context.Context) []entry) func() vfs.Inode {
	return func() vfs.Inode { return &dirInode{node: node{ino: ino, mode: 0555}, list: list} }
}

func fixedEntries(es []entry) func(context.Context) []entry {
	return func(context.Context) []entry { return es }
}
