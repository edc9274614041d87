// Package sys owns sysfs as the sandbox shows it at /sys: the CPUs
// (devices/system/cpu: online, possible, present and per-CPU topology),
// the top-level directories Linux has (kernel/, class/, bus/, ...), and
// fs/cgroup, a read-only view of the resource limits the sandbox runs
// under (memory.max, cpu.max, pids.max as the runtime found them, and the
// sandbox's own current use).
//
// Everything is read-only and generated on open; nothing here reaches a
// host file.
package sys

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// SYSFS_MAGIC is statfs's f_type for sysfs.
const SYSFS_MAGIC = 0x62656572

// Limits are the cgroup limits of the sandbox, as the host's cgroup v2
// files show them ("max" or a number; cpu.max is "QUOTA PERIOD"). The
// runtime reads them before the sandbox starts and passes them in; an
// empty field shows as "max" (for cpu.max, "max 100000").
type Limits struct {
	MemoryMax string
	CPUMax    string
	PidsMax   string
}

// Filesystem is one sysfs instance.
type Filesystem struct {
	k      *kernel.Kernel
	limits Limits
	root   *dirInode
	nextNo uint64
}

// New returns the sysfs of k, showing limits under fs/cgroup.
func New(k *kernel.Kernel, limits Limits) *Filesystem {
	fs := &Filesystem{k: k, limits: limits}
	fs.root = fs.build()
	return fs
}

func (fs *Filesystem) Name() string                            { return "sysfs" }
func (fs *Filesystem) Root(context.Context) (vfs.Inode, error) { return fs.root, nil }
func (fs *Filesystem) Sync(context.Context) error              { return nil }
func (fs *Filesystem) Release(context.Context)                 {}
func (fs *Filesystem) StatFS(context.Context) (vfs.Statfs, error) {
	return vfs.Statfs{Type: SYSFS_MAGIC, BlockSize: 4096, FragSize: 4096, NameLength: 255}, nil
}

func (fs *Filesystem) ino() uint64 {
	fs.nextNo++
	return fs.nextNo
}

// cpuList is "0-N" (or "0") for n CPUs.
func cpuList(n int) string {
	if n <= 1 {
		return "0"
	}
	return fmt.Sprintf("0-%d", n-1)
}

func orMax(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (fs *Filesystem) build() *dirInode {
	n := fs.k.NumCPU
	all := cpuList(n)
	cpu := fs.dir()
	cpu.add("online", fs.text(all))
	cpu.add("possible", fs.text(all))
	cpu.add("present", fs.text(all))
	cpu.add("offline", fs.text(""))
	cpu.add("kernel_max", fs.text(strconv.Itoa(max(n-1, 0))))
	for i := 0; i < n; i++ {
		c := fs.dir()
		if i != 0 {
			// cpu0 cannot be taken offline, so Linux gives it no switch.
			c.add("online", fs.text("1"))
		}
		topo := fs.dir()
		topo.add("core_id", fs.text(strconv.Itoa(i)))
		topo.add("physical_package_id", fs.text("0"))
		topo.add("die_id", fs.text("0"))
		topo.add("thread_siblings_list", fs.text(strconv.Itoa(i)))
		topo.add("core_siblings_list", fs.text(all))
		topo.add("package_cpus_list", fs.text(all))
		topo.add("core_cpus_list", fs.text(strconv.Itoa(i)))
		c.add("topology", topo)
		cpu.add(fmt.Sprintf("cpu%d", i), c)
	}
	system := fs.dir()
	system.add("cpu", cpu)
	node := fs.dir()
	node.add("online", fs.text("0"))
	node.add("possible", fs.text("0"))
	system.add("node", node)
	devices := fs.dir()
	devices.add("system", system)
	devices.add("virtual", fs.dir())

	cg := fs.dir()
	cg.add("cgroup.controllers", fs.text("cpu memory pids"))
	cg.add("cgroup.subtree_control", fs.text(""))
	cg.add("cgroup.type", fs.text("domain"))
	cg.add("cgroup.procs", fs.gen(fs.procs))
	cg.add("memory.max", fs.text(orMax(fs.limits.MemoryMax, "max")))
	cg.add("memory.current", fs.gen(func() string { return strconv.FormatUint(fs.k.MemoryFile.TotalUsage(), 10) + "\n" }))
	cg.add("cpu.max", fs.text(orMax(fs.limits.CPUMax, "max 100000")))
	cg.add("cpu.stat", fs.gen(fs.cpuStat))
	cg.add("pids.max", fs.text(orMax(fs.limits.PidsMax, "max")))
	cg.add("pids.current", fs.gen(func() string { return strconv.Itoa(fs.k.SchedStats().Tasks) + "\n" }))
	fsd := fs.dir()
	fsd.add("cgroup", cg)

	kern := fs.dir()
	kern.add("mm", fs.dir())
	kern.add("security", fs.dir())

	root := fs.dir()
	root.ino = 1
	for _, name := range []string{"block", "bus", "class", "dev", "firmware", "module", "power"} {
		root.add(name, fs.dir())
	}
	root.add("devices", devices)
	root.add("fs", fsd)
	root.add("kernel", kern)
	return root
}

// procs lists the sandbox's processes, one PID a line: every process is
// in the sandbox's one cgroup.
func (fs *Filesystem) procs() string {
	var b strings.Builder
	for _, tg := range fs.k.ProcessList() {
		if !tg.Zombie() {
			fmt.Fprintf(&b, "%d\n", tg.ID())
		}
	}
	return b.String()
}

func (fs *Filesystem) cpuStat() string {
	var u, s time.Duration
	for _, tg := range fs.k.ProcessList() {
		tu, ts := tg.CPUTimes()
		cu, cs := tg.ChildCPUTimes()
		u += tu + cu
		s += ts + cs
	}
	return fmt.Sprintf("usage_usec %d\nuser_usec %d\nsystem_usec %d\n", (u + s).Microseconds(), u.Microseconds(), s.Microseconds())
}

// Inodes.

type dirInode struct {
	vfs.NotSymlink
	ino      uint64
	children map[string]vfs.Inode
}

func (fs *Filesystem) dir() *dirInode {
	return &dirInode{ino: fs.ino(), children: map[string]vfs.Inode{}}
}

func (d *dirInode) add(name string, ino vfs.Inode) { d.children[name] = ino }

func stat(mode uint32, ino uint64, nlink uint32) vfs.Statx {
	now := time.Now()
	ts := vfs.StatxTimestamp{Sec: now.Unix(), Nsec: uint32(now.Nanosecond())}
	return vfs.Statx{Mask: unix.STATX_BASIC_STATS, Blksize: 4096, Nlink: nlink, Mode: uint16(mode), Ino: ino,
		Size: 4096, Atime: ts, Mtime: ts, Ctime: ts}
}

func (d *dirInode) Perms() vfs.Perms { return vfs.Perms{Mode: unix.S_IFDIR | 0555} }
func (d *dirInode) Stat(context.Context) (vfs.Statx, error) {
	return stat(unix.S_IFDIR|0555, d.ino, 2), nil
}
func (d *dirInode) SetStat(context.Context, vfs.SetStatOptions) error { return unix.EPERM }
func (d *dirInode) Lookup(_ context.Context, name string) (vfs.Inode, error) {
	if c, ok := d.children[name]; ok {
		return c, nil
	}
	return nil, unix.ENOENT
}
func (d *dirInode) ReadDir(ctx context.Context) ([]vfs.Dirent, error) {
	names := make([]string, 0, len(d.children))
	for n := range d.children {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]vfs.Dirent, 0, len(names))
	for _, n := range names {
		c := d.children[n]
		st, _ := c.Stat(ctx)
		out = append(out, vfs.Dirent{Name: n, Ino: st.Ino, Type: vfs.DirentType(c.Perms().Mode)})
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

// fileInode is a read-only attribute file; sysfs reports a page as the
// size of every attribute.
type fileInode struct {
	vfs.NotDir
	vfs.NotSymlink
	ino uint64
	gen func() string
}

func (fs *Filesystem) text(s string) *fileInode {
	return &fileInode{ino: fs.ino(), gen: func() string { return s + "\n" }}
}

func (fs *Filesystem) gen(g func() string) *fileInode { return &fileInode{ino: fs.ino(), gen: g} }

func (f *fileInode) Perms() vfs.Perms { return vfs.Perms{Mode: unix.S_IFREG | 0444} }
func (f *fileInode) Stat(context.Context) (vfs.Statx, error) {
	return stat(unix.S_IFREG|0444, f.ino, 1), nil
}
func (f *fileInode) SetStat(context.Context, vfs.SetStatOptions) error { return unix.EPERM }
func (f *fileInode) Open(_ context.Context, flags uint32) (vfs.FileDescriptionImpl, error) {
	if flags&unix.O_ACCMODE != unix.O_RDONLY {
		return nil, unix.EACCES
	}
	return &attrFile{ino: f, data: []byte(f.gen())}, nil
}

// attrFile is an open attribute: a snapshot taken at open, as sysfs
// reads an attribute once per open.
type attrFile struct {
	vfs.FileDescriptionDefaultImpl
	ino  *fileInode
	data []byte
}

func (a *attrFile) Read(_ context.Context, dst usermem.IOSequence, off int64) (int64, error) {
	if off >= int64(len(a.data)) {
		return 0, nil
	}
	n, err := dst.CopyOut(a.data[off:])
	return int64(n), err
}

func (a *attrFile) Stat(ctx context.Context) (vfs.Statx, error) { return a.ino.Stat(ctx) }
