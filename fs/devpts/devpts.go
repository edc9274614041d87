// Package devpts owns pseudo-terminals: the devpts filesystem (ptmx and
// pts/N), master/replica pairs, and the line discipline between them
// (termios, canonical and non-canonical input, echo, output processing,
// the ISIG characters). The kernel half of terminals — sessions,
// foreground process groups, SIGTTIN/SIGTTOU — is sentry/kernel's TTY,
// which each pair embeds.
//
// # Files
//
// Opening pts/ptmx (or /dev/ptmx, a symlink to it that fs/dev makes)
// creates a pair and returns its master, locked until TIOCSPTLCK(0)
// (unlockpt). pts/N opens the replica. Writes to the master are the
// replica's input: they go through the line discipline, and echoes come
// back on the master. The replica's writes are the master's input, after
// output processing. Termios and window size belong to the pair (both
// sides answer the same). When the master closes, pts/N disappears and
// every open replica is hung up (reads return 0, writes EIO, the session
// leader gets SIGHUP). When the last replica closes, master reads return
// EIO once drained.
//
// Reads never block inside the file: an empty terminal answers EAGAIN
// and the syscall layer waits on the pair's queues, except for replica
// reads through ReadWait, which the syscall layer uses for read(2) so
// that non-canonical VMIN/VTIME timing and O_NONBLOCK are exactly Linux's.
//
// fs/dev opens the caller's controlling terminal for /dev/tty, and
// kernel.Console() for /dev/console, with OpenTTY.
//
// # Host bridge
//
// NewHostBridge connects a host terminal (the replica of a host pty pair
// whose master a client such as a container runtime holds) to a new
// in-sandbox pair, so that an application gets a real /dev/pts/N with
// the sentry's line discipline and job control:
//
//	pts, err := devpts.Find(ctx, vfsys, root)      // the devpts at /dev/pts
//	replica, err := devpts.NewHostBridge(ctx, vfsys, pts, hostReplicaFD)
//	// install replica (IncRef per extra FD) as the process's 0, 1 and 2;
//	// once its task exists, make it the session's controlling terminal:
//	err = devpts.TTYOf(replica).SetControlling(task, false, true)
//	k.SetConsole(devpts.TTYOf(replica))           // for the container's init
//
// The bridge puts the host FD in raw mode and pumps bytes both ways; the
// host window size is polled and copied into the pair, so SIGWINCH
// reaches the application's foreground group after the client resizes.
// When the application closes every replica the bridge closes the host
// FD (the client sees EOF/EIO); when the client hangs up, the in-sandbox
// master closes, hanging up the session.
//
// # Locking
//
// Lock order: Kernel.mu (taken inside kernel.TTY methods) is never taken
// with a Terminal.mu held; Filesystem.mu before Terminal.mu; waiter.Queue
// locks are taken (by notifications) after Terminal.mu is released.
package devpts

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// DEVPTS_SUPER_MAGIC is statfs's f_type for devpts.
const DEVPTS_SUPER_MAGIC = 0x1cd1

// Device numbers: the master multiplexer and the first replica major
// (a replica N is major 136+N/256, minor N%256).
var (
	PTMX = unix.Mkdev(5, 2)
)

const replicaMajor = 136

// MaxPTYs is /proc/sys/kernel/pty/max: opening ptmx past it gives ENOSPC.
const MaxPTYs = 4096

// ttyGID is group "tty", which container runtimes give replicas.
const ttyGID = 5

// Options are devpts mount options.
type Options struct {
	// Mode is the permission of new replicas (mode=).
	Mode uint32
	// GID, if SetGID, owns new replicas (gid=); otherwise the opener's
	// group does.
	GID    auth.KGID
	SetGID bool
	// PtmxMode is the permission of pts/ptmx (ptmxmode=).
	PtmxMode uint32
}

// DefaultOptions are what container runtimes mount devpts with:
// mode=0620,gid=5,ptmxmode=0666.
func DefaultOptions() Options {
	return Options{Mode: 0620, GID: ttyGID, SetGID: true, PtmxMode: 0666}
}

// ParseOptions reads mount options (mode=, gid=, ptmxmode=; newinstance
// and the like are accepted: every devpts here is its own instance)
// over DefaultOptions.
func ParseOptions(opts []string) (Options, error) {
	o := DefaultOptions()
	for _, opt := range opts {
		k, v, _ := strings.Cut(opt, "=")
		var err error
		switch k {
		case "mode":
			var m uint64
			m, err = strconv.ParseUint(v, 8, 32)
			o.Mode = uint32(m) & 0777
		case "ptmxmode":
			var m uint64
			m, err = strconv.ParseUint(v, 8, 32)
			o.PtmxMode = uint32(m) & 0777
		case "gid":
			var g uint64
			g, err = strconv.ParseUint(v, 10, 32)
			o.GID, o.SetGID = auth.KGID(g), true
		case "uid":
			// Accepted; replicas belong to their opener.
			_, err = strconv.ParseUint(v, 10, 32)
		}
		if err != nil {
			return o, fmt.Errorf("devpts option %q: %w", opt, unix.EINVAL)
		}
	}
	return o, nil
}

// Filesystem is one devpts instance.
type Filesystem struct {
	opts    Options
	root    *rootInode
	ptmx    *ptmxInode
	created vfs.StatxTimestamp

	// mu protects ptys, the live pairs by index.
	mu   sync.Mutex
	ptys map[uint32]*Terminal
}

// New returns an empty devpts.
func New(opts Options) *Filesystem {
	fs := &Filesystem{opts: opts, ptys: make(map[uint32]*Terminal), created: vfs.Now()}
	fs.root = &rootInode{fs: fs}
	fs.ptmx = &ptmxInode{fs: fs}
	return fs
}

func (fs *Filesystem) Name() string                            { return "devpts" }
func (fs *Filesystem) Root(context.Context) (vfs.Inode, error) { return fs.root, nil }
func (fs *Filesystem) Sync(context.Context) error              { return nil }
func (fs *Filesystem) Release(context.Context)                 {}
func (fs *Filesystem) StatFS(context.Context) (vfs.Statfs, error) {
	return vfs.Statfs{Type: DEVPTS_SUPER_MAGIC, BlockSize: 4096, FragSize: 4096, NameLength: vfs.NameMax}, nil
}

// Find returns the root of the devpts mounted at /dev/pts under root.
func Find(ctx context.Context, v *vfs.VirtualFilesystem, root vfs.VirtualDentry) (vfs.VirtualDentry, error) {
	vd, err := v.GetDentryAt(ctx, &vfs.PathOperation{Root: root, Start: root, Path: "/dev/pts", FollowFinalSymlink: true})
	if err != nil {
		return vfs.VirtualDentry{}, err
	}
	if _, ok := vd.Mount.Filesystem().Impl().(*Filesystem); !ok || vd != vd.Mount.Root() {
		return vfs.VirtualDentry{}, fmt.Errorf("/dev/pts is not a devpts mount: %w", unix.ENODEV)
	}
	return vd, nil
}

// terminal returns the live pair with index i, or nil.
func (fs *Filesystem) terminal(i uint32) *Terminal {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.ptys[i]
}

// newTerminal allocates the lowest free index for a new pair owned by
// the caller in ctx.
func (fs *Filesystem) newTerminal(ctx context.Context) (*Terminal, error) {
	creds := auth.CredentialsFromContext(ctx)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.ptys) >= MaxPTYs {
		return nil, unix.ENOSPC
	}
	var i uint32
	for fs.ptys[i] != nil {
		i++
	}
	t := newTerminal(fs, i)
	t.uid, t.gid = creds.EffectiveKUID, creds.EffectiveKGID
	if fs.opts.SetGID {
		t.gid = fs.opts.GID
	}
	t.mode = fs.opts.Mode
	fs.ptys[i] = t
	return t, nil
}

// remove makes pts/N of t disappear (its master has closed).
func (fs *Filesystem) remove(t *Terminal) {
	fs.mu.Lock()
	if fs.ptys[t.index] == t {
		delete(fs.ptys, t.index)
	}
	fs.mu.Unlock()
}

// rootInode is the devpts directory. Its entries change without the VFS
// (pairs come and go), so replica inodes name a pair by index and find it
// again on every use, like procfs.
type rootInode struct {
	vfs.NotSymlink
	fs *Filesystem
}

func (r *rootInode) Perms() vfs.Perms { return vfs.Perms{Mode: unix.S_IFDIR | 0755} }

func (r *rootInode) Stat(context.Context) (vfs.Statx, error) {
	ts := r.fs.created
	return vfs.Statx{
		Mask: unix.STATX_BASIC_STATS, Blksize: 1024, Nlink: 2, Mode: unix.S_IFDIR | 0755, Ino: 1,
		Atime: ts, Mtime: ts, Ctime: ts,
	}, nil
}

func (r *rootInode) SetStat(context.Context, vfs.SetStatOptions) error { return unix.EPERM }

func (r *rootInode) Lookup(ctx context.Context, name string) (vfs.Inode, error) {
	if name == "ptmx" {
		return r.fs.ptmx, nil
	}
	i, ok := parseIndex(name)
	if !ok || r.fs.terminal(i) == nil {
		return nil, unix.ENOENT
	}
	return &replicaInode{fs: r.fs, index: i}, nil
}

// parseIndex accepts the decimal names pts/N has (no sign, no leading 0).
func parseIndex(name string) (uint32, bool) {
	if name == "" || len(name) > 1 && name[0] == '0' {
		return 0, false
	}
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	i, err := strconv.ParseUint(name, 10, 32)
	return uint32(i), err == nil
}

func (r *rootInode) ReadDir(context.Context) ([]vfs.Dirent, error) {
	r.fs.mu.Lock()
	idx := make([]uint32, 0, len(r.fs.ptys))
	for i := range r.fs.ptys {
		idx = append(idx, i)
	}
	r.fs.mu.Unlock()
	slices.Sort(idx)
	out := []vfs.Dirent{{Name: "ptmx", Ino: 2, Type: unix.DT_CHR}}
	for _, i := range idx {
		out = append(out, vfs.Dirent{Name: strconv.FormatUint(uint64(i), 10), Ino: uint64(i) + 3, Type: unix.DT_CHR})
	}
	return out, nil
}

func (r *rootInode) Open(context.Context, uint32) (vfs.FileDescriptionImpl, error) {
	return nil, unix.EISDIR
}

// devpts has no create operations: mknod, mkdir, link and the rest fail
// as on Linux (EACCES for a regular file, EPERM otherwise).
func (r *rootInode) Create(_ context.Context, _ string, opts vfs.CreateOptions) (vfs.Inode, error) {
	if opts.Mode&unix.S_IFMT == unix.S_IFREG {
		return nil, unix.EACCES
	}
	return nil, unix.EPERM
}
func (r *rootInode) Mkdir(context.Context, string, vfs.CreateOptions) (vfs.Inode, error) {
	return nil, unix.EPERM
}
func (r *rootInode) Symlink(context.Context, string, string, vfs.CreateOptions) (vfs.Inode, error) {
	return nil, unix.EPERM
}
func (r *rootInode) Link(context.Context, string, vfs.Inode) error   { return unix.EPERM }
func (r *rootInode) Unlink(context.Context, string, vfs.Inode) error { return unix.EPERM }
func (r *rootInode) Rmdir(context.Context, string, vfs.Inode) error  { return unix.EPERM }
func (r *rootInode) Rename(context.Context, string, vfs.Inode, vfs.Inode, string, vfs.Inode) error {
	return unix.EPERM
}

// ptmxInode is pts/ptmx: each open makes a new pair.
type ptmxInode struct {
	vfs.NotDir
	vfs.NotSymlink
	fs *Filesystem
}

func (p *ptmxInode) Perms() vfs.Perms { return vfs.Perms{Mode: unix.S_IFCHR | p.fs.opts.PtmxMode} }

func (p *ptmxInode) Stat(context.Context) (vfs.Statx, error) { return p.fs.ptmxStat(), nil }

func (fs *Filesystem) ptmxStat() vfs.Statx {
	ts := fs.created
	return vfs.Statx{
		Mask: unix.STATX_BASIC_STATS, Blksize: 1024, Nlink: 1, Mode: uint16(unix.S_IFCHR | fs.opts.PtmxMode), Ino: 2,
		RdevMajor: unix.Major(PTMX), RdevMinor: unix.Minor(PTMX), Atime: ts, Mtime: ts, Ctime: ts,
	}
}

func (p *ptmxInode) SetStat(context.Context, vfs.SetStatOptions) error { return unix.EPERM }

func (p *ptmxInode) Open(ctx context.Context, flags uint32) (vfs.FileDescriptionImpl, error) {
	t, err := p.fs.newTerminal(ctx)
	if err != nil {
		return nil, err
	}
	return t.openMaster(), nil
}

// replicaInode is pts/N.
type replicaInode struct {
	vfs.NotDir
	vfs.NotSymlink
	fs    *Filesystem
	index uint32
}

// Evict lets the VFS drop the dentry: nothing is held.
func (r *replicaInode) Evict(context.Context) {}

func (r *replicaInode) Perms() vfs.Perms {
	t := r.fs.terminal(r.index)
	if t == nil {
		return vfs.Perms{Mode: unix.S_IFCHR}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return vfs.Perms{Mode: unix.S_IFCHR | t.mode, UID: t.uid, GID: t.gid}
}

func (r *replicaInode) Stat(context.Context) (vfs.Statx, error) {
	t := r.fs.terminal(r.index)
	if t == nil {
		return vfs.Statx{}, unix.ENOENT
	}
	return t.replicaStat(), nil
}

func (r *replicaInode) SetStat(_ context.Context, opts vfs.SetStatOptions) error {
	t := r.fs.terminal(r.index)
	if t == nil {
		return unix.ENOENT
	}
	if opts.Mask&unix.STATX_SIZE != 0 {
		return unix.EINVAL
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if opts.Mask&unix.STATX_MODE != 0 {
		t.mode = opts.Mode & 07777
	}
	if opts.Mask&unix.STATX_UID != 0 {
		t.uid = opts.UID
	}
	if opts.Mask&unix.STATX_GID != 0 {
		t.gid = opts.GID
	}
	if opts.Mask&unix.STATX_ATIME != 0 {
		t.atime = opts.Atime
	}
	if opts.Mask&unix.STATX_MTIME != 0 {
		t.mtime = opts.Mtime
	}
	t.ctime = vfs.Now()
	return nil
}

func (r *replicaInode) Open(ctx context.Context, flags uint32) (vfs.FileDescriptionImpl, error) {
	t := r.fs.terminal(r.index)
	if t == nil {
		return nil, unix.ENOENT
	}
	return t.openReplica(ctx, flags, false)
}
