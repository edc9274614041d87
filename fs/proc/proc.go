// Package proc owns /proc: a filesystem whose directories and files are
// generated from the kernel's state when they are looked up and opened.
// This is the minimum the workloads of the first milestone need (self,
// per-process exe, cwd, fd/, maps, stat, status, cmdline, environ, comm,
// auxv; global cpuinfo, meminfo, uptime, version, loadavg, stat,
// filesystems, mounts); the full procfs is later work.
package proc

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// PROC_SUPER_MAGIC is statfs's f_type for procfs.
const PROC_SUPER_MAGIC = 0x9fa0

// Filesystem is one procfs instance of a kernel.
type Filesystem struct {
	k    *kernel.Kernel
	root *dirInode
}

// New returns the procfs of k.
func New(k *kernel.Kernel) *Filesystem {
	fs := &Filesystem{k: k}
	fs.root = &dirInode{fs: fs, ino: 1, list: fs.rootEntries, lookup: fs.rootLookup}
	return fs
}

func (fs *Filesystem) Name() string                            { return "proc" }
func (fs *Filesystem) Root(context.Context) (vfs.Inode, error) { return fs.root, nil }
func (fs *Filesystem) Sync(context.Context) error              { return nil }
func (fs *Filesystem) Release(context.Context)                 {}
func (fs *Filesystem) StatFS(context.Context) (vfs.Statfs, error) {
	return vfs.Statfs{Type: PROC_SUPER_MAGIC, BlockSize: 4096, FragSize: 4096, NameLength: 255}, nil
}

var nextIno atomic.Uint64

func init() { nextIno.Store(1 << 20) }

// taskOf returns the task a context belongs to (nil for sentry work).
func taskOf(ctx context.Context) *kernel.Task {
	t, _ := ctx.(*kernel.Task)
	return t
}

// entry is one child of a generated directory.
type entry struct {
	name string
	make func() vfs.Inode
}

// dirInode is a generated directory.
type dirInode struct {
	vfs.NotSymlink
	fs     *Filesystem
	ino    uint64
	mode   uint32
	uid    uint32
	gid    uint32
	list   func(ctx context.Context) []entry
	lookup func(ctx context.Context, name string) (vfs.Inode, error)
}

func (d *dirInode) Perms() vfs.Perms {
	m := d.mode
	if m == 0 {
		m = 0555
	}
	return vfs.Perms{Mode: unix.S_IFDIR | m}
}

func (d *dirInode) Stat(context.Context) (vfs.Statx, error) {
	return statOf(d.Perms().Mode, d.ino, 0, 2, d.uid, d.gid), nil
}

func statOf(mode uint32, ino, size uint64, nlink uint32, uid, gid uint32) vfs.Statx {
	now := time.Now()
	ts := vfs.StatxTimestamp{Sec: now.Unix(), Nsec: uint32(now.Nanosecond())}
	return vfs.Statx{
		Mask: unix.STATX_BASIC_STATS, Blksize: 1024, Nlink: nlink, UID: uid, GID: gid,
		Mode: uint16(mode), Ino: ino, Size: size, Atime: ts, Mtime: ts, Ctime: ts,
	}
}

func (d *dirInode) SetStat(context.Context, vfs.SetStatOptions) error { return unix.EPERM }

func (d *dirInode) Lookup(ctx context.Context, name string) (vfs.Inode, error) {
	if d.lookup != nil {
		if ino, err := d.lookup(ctx, name); ino != nil || err != unix.ENOENT {
			return ino, err
		}
	}
	for _, e := range d.list(ctx) {
		if e.name == name {
			return e.make(), nil
		}
	}
	return nil, unix.ENOENT
}

func (d *dirInode) ReadDir(ctx context.Context) ([]vfs.Dirent, error) {
	var out []vfs.Dirent
	for _, e := range d.list(ctx) {
		ino := e.make()
		st, _ := ino.Stat(ctx)
		out = append(out, vfs.Dirent{Name: e.name, Ino: st.Ino, Type: vfs.DirentType(ino.Perms().Mode)})
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
func (d *dirInode) Link(context.Context, string, vfs.Inode) error { return unix.EACCES }
func (d *dirInode) Unlink(context.Context, string, vfs.Inode) error {
	return unix.EACCES
}
func (d *dirInode) Rmdir(context.Context, string, vfs.Inode) error { return unix.EACCES }
func (d *dirInode) Rename(context.Context, string, vfs.Inode, vfs.Inode, string, vfs.Inode) error {
	return unix.EACCES
}

// fileInode is a generated regular file: gen runs at open.
type fileInode struct {
	vfs.NotDir
	vfs.NotSymlink
	ino  uint64
	mode uint32
	uid  uint32
	gid  uint32
	gen  func(ctx context.Context) ([]byte, error)
}

func (f *fileInode) Perms() vfs.Perms {
	m := f.mode
	if m == 0 {
		m = 0444
	}
	return vfs.Perms{Mode: unix.S_IFREG | m}
}

func (f *fileInode) Stat(context.Context) (vfs.Statx, error) {
	return statOf(f.Perms().Mode, f.ino, 0, 1, f.uid, f.gid), nil
}

func (f *fileInode) SetStat(context.Context, vfs.SetStatOptions) error { return unix.EPERM }

func (f *fileInode) Open(ctx context.Context, flags uint32) (vfs.FileDescriptionImpl, error) {
	if flags&unix.O_ACCMODE != unix.O_RDONLY {
		return nil, unix.EACCES
	}
	data, err := f.gen(ctx)
	if err != nil {
		return nil, err
	}
	return &seqFile{ino: f, data: data}, nil
}

// seqFile is an open generated file: a snapshot taken at open.
type seqFile struct {
	vfs.FileDescriptionDefaultImpl
	ino  *fileInode
	data []byte
}

func (s *seqFile) Read(ctx context.Context, dst usermem.IOSequence, off int64) (int64, error) {
	if off >= int64(len(s.data)) {
		return 0, nil
	}
	n, err := dst.CopyOut(s.data[off:])
	return int64(n), err
}

func (s *seqFile) Stat(ctx context.Context) (vfs.Statx, error) { return s.ino.Stat(ctx) }

// symlinkInode is a generated symlink.
type symlinkInode struct {
	vfs.NotDir
	ino    uint64
	uid    uint32
	gid    uint32
	target func(ctx context.Context) (string, error)
}

func (l *symlinkInode) Perms() vfs.Perms { return vfs.Perms{Mode: unix.S_IFLNK | 0777} }
func (l *symlinkInode) Stat(context.Context) (vfs.Statx, error) {
	return statOf(unix.S_IFLNK|0777, l.ino, 0, 1, l.uid, l.gid), nil
}
func (l *symlinkInode) SetStat(context.Context, vfs.SetStatOptions) error { return unix.EPERM }
func (l *symlinkInode) Readlink(ctx context.Context) (string, error)      { return l.target(ctx) }
func (l *symlinkInode) Open(context.Context, uint32) (vfs.FileDescriptionImpl, error) {
	return nil, unix.ELOOP
}

// inoFor gives stable inode numbers to generated files of a process.
func inoFor(pid kernel.ThreadID, slot uint64) uint64 { return uint64(pid)<<16 | slot }

func file(ino uint64, gen func(ctx context.Context) ([]byte, error)) func() vfs.Inode {
	return func() vfs.Inode { return &fileInode{ino: ino, gen: gen} }
}

func text(s func(ctx context.Context) string) func(ctx context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) { return []byte(s(ctx)), nil }
}

func (fs *Filesystem) rootEntries(ctx context.Context) []entry {
	es := []entry{
		{"self", func() vfs.Inode {
			return &symlinkInode{ino: 2, target: func(ctx context.Context) (string, error) {
				t := taskOf(ctx)
				if t == nil {
					return "", unix.ENOENT
				}
				return strconv.Itoa(int(t.ThreadGroup().ID())), nil
			}}
		}},
		{"thread-self", func() vfs.Inode {
			return &symlinkInode{ino: 3, target: func(ctx context.Context) (string, error) {
				t := taskOf(ctx)
				if t == nil {
					return "", unix.ENOENT
				}
				return fmt.Sprintf("%d/task/%d", t.ThreadGroup().ID(), t.ThreadID()), nil
			}}
		}},
		{"cpuinfo", file(4, text(fs.cpuinfo))},
		{"meminfo", file(5, text(fs.meminfo))},
		{"uptime", file(6, text(fs.uptime))},
		{"version", file(7, text(func(context.Context) string {
			return fmt.Sprintf("Linux version %s (veil@veil) %s\n", kernel.Release, kernel.Version)
		}))},
		{"loadavg", file(8, text(fs.loadavg))},
		{"filesystems", file(9, text(func(context.Context) string {
			return "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\nnodev\tdevpts\nnodev\t9p\n"
		}))},
		{"stat", file(10, text(fs.stat))},
		{"mounts", func() vfs.Inode {
			return &symlinkInode{ino: 11, target: func(context.Context) (string, error) { return "self/mounts", nil }}
		}},
	}
	for _, tg := range fs.k.ThreadGroups() {
		tg := tg
		es = append(es, entry{strconv.Itoa(int(tg.ID())), func() vfs.Inode { return fs.processDir(tg) }})
	}
	return es
}

func (fs *Filesystem) rootLookup(ctx context.Context, name string) (vfs.Inode, error) {
	pid, err := strconv.Atoi(name)
	if err != nil || pid <= 0 {
		return nil, unix.ENOENT
	}
	tg := fs.k.ThreadGroupByID(kernel.ThreadID(pid))
	if tg == nil {
		// A thread ID is reachable too (as Linux's hidden tid entries).
		if t := fs.k.TaskByID(kernel.ThreadID(pid)); t != nil {
			return fs.taskDir(t.ThreadGroup(), t), nil
		}
		return nil, unix.ENOENT
	}
	return fs.processDir(tg), nil
}
