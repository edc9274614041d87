package boot

import (
	"context"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/dev"
	"github.com/veil-sandbox/veil/fs/devpts"
	"github.com/veil-sandbox/veil/fs/gofer"
	"github.com/veil-sandbox/veil/fs/mqueue"
	"github.com/veil-sandbox/veil/fs/overlay"
	"github.com/veil-sandbox/veil/fs/proc"
	"github.com/veil-sandbox/veil/fs/sys"
	"github.com/veil-sandbox/veil/fs/tmpfs"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/memory"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// buildMounts makes the sandbox's mount namespace: the root (by default an
// overlay of a memory tmpfs over the gofer-served rootfs), the container's
// mounts in order, and /proc, /sys (read-only), /dev, /dev/shm, /dev/pts,
// /dev/mqueue and /tmp where the container gave none (each before the container's mounts below
// it, after one it is itself below), then linux.maskedPaths and
// linux.readonlyPaths. Missing mount points are made in the root, which
// becomes read-only only afterwards when root.readonly asks for it.
func buildMounts(ctx context.Context, args *Args, mf *memory.File, k *kernel.Kernel) (*vfs.VirtualFilesystem, vfs.VirtualDentry, error) {
	b := &mountBuilder{ctx: ctx, args: args, mf: mf, k: k, v: vfs.New()}
	root, err := b.buildRoot()
	if err != nil {
		return nil, vfs.VirtualDentry{}, err
	}
	b.root = root
	defaults := []defaultMount{
		{"/proc", func() error { return b.mountAt("/proc", proc.New(k), true, 0) }},
		// Read-only, as container runtimes mount it by default.
		{"/sys", func() error {
			return b.mountAt("/sys", sys.New(k, sys.Limits{}), true, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
		}},
		{"/dev", func() error { return b.mountDev(0) }},
		{"/dev/shm", func() error {
			return b.mountAt("/dev/shm", b.tmpfs(tmpfs.Options{Mode: 01777}), true, unix.MS_NOSUID|unix.MS_NODEV)
		}},
		{"/dev/pts", func() error {
			return b.mountAt("/dev/pts", devpts.New(devpts.DefaultOptions()), true, unix.MS_NOSUID|unix.MS_NOEXEC)
		}},
		// As runc's default spec has it, so mq_open's queues show there.
		{"/dev/mqueue", func() error {
			return b.mountAt("/dev/mqueue", mqueue.NewFilesystem(mqueue.RegistryOf(k)), true, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
		}},
		{"/tmp", func() error { return b.mountAt("/tmp", b.tmpfs(tmpfs.Options{Mode: 01777}), true, 0) }},
	}
	var early, late []defaultMount
	for _, d := range defaults {
		given, below := false, false
		for _, m := range args.Mounts {
			dest := path.Clean(m.Destination)
			given = given || dest == d.path
			below = below || strings.HasPrefix(d.path, dest+"/")
		}
		switch {
		case given:
		case below:
			late = append(late, d)
		default:
			early = append(early, d)
		}
	}
	for _, d := range early {
		if err := d.mount(); err != nil {
			return nil, vfs.VirtualDentry{}, err
		}
	}
	for _, m := range args.Mounts {
		if err := b.specMount(m); err != nil {
			return nil, vfs.VirtualDentry{}, fmt.Errorf("mount %s: %w", m.Destination, err)
		}
	}
	for _, d := range late {
		if err := d.mount(); err != nil {
			return nil, vfs.VirtualDentry{}, err
		}
	}
	for _, p := range args.MaskedPaths {
		if err := b.mask(p); err != nil {
			return nil, vfs.VirtualDentry{}, fmt.Errorf("linux.maskedPaths %s: %w", p, err)
		}
	}
	for _, p := range args.ReadonlyPaths {
		if err := b.readOnly(p); err != nil {
			return nil, vfs.VirtualDentry{}, fmt.Errorf("linux.readonlyPaths %s: %w", p, err)
		}
	}
	if args.RootReadOnly {
		b.v.Remount(root.Mount, root.Mount.Flags()|vfs.MountReadOnly)
	}
	return b.v, root, nil
}

// defaultMount is a mount the sandbox gets unless the container mounts
// something at its path.
type defaultMount struct {
	path  string
	mount func() error
}

type mountBuilder struct {
	ctx  context.Context
	args *Args
	mf   *memory.File
	k    *kernel.Kernel
	v    *vfs.VirtualFilesystem
	root vfs.VirtualDentry
	// lostOnce: one stop for however many mounts lose the gofer.
	lostOnce sync.Once
}

// goferFS connects to the gofer socket of index i.
func (b *mountBuilder) goferFS(i int) (*gofer.Filesystem, error) {
	if i < 0 || i >= len(b.args.GoferFDs) {
		return nil, fmt.Errorf("no gofer connection %d", i)
	}
	client, err := gofer.NewClient(b.args.GoferFDs[i])
	if err != nil {
		return nil, fmt.Errorf("connecting to the gofer: %w", err)
	}
	client.OnLost(b.goferLost)
	return gofer.NewFilesystem(client, b.mf), nil
}

// goferLostGrace is how long the application has, once the gofer is gone
// and its file calls fail with EIO, before the sandbox is ended.
const goferLostGrace = time.Second

// goferLost ends the sandbox when the gofer is gone: no file of its
// mounts can be reached any more, and the gofer is not restarted.
func (b *mountBuilder) goferLost(why error) {
	b.lostOnce.Do(func() {
		fmt.Fprintf(os.Stderr, "veil: the gofer is gone (%v): file calls fail with EIO; stopping the sandbox in %v\n", why, goferLostGrace)
		time.AfterFunc(goferLostGrace, func() { b.k.SignalAll(int(unix.SIGKILL)) })
	})
}

// buildRoot mounts the root. With an overlay the root stays writable
// (in memory) even for root.readonly until the mount points are made.
func (b *mountBuilder) buildRoot() (vfs.VirtualDentry, error) {
	lower, err := b.goferFS(0)
	if err != nil {
		return vfs.VirtualDentry{}, fmt.Errorf("root: %w", err)
	}
	var impl vfs.FilesystemImpl = lower
	switch b.args.Overlay {
	case "none":
		// The container's own root, written by the sandbox alone.
		lower.SetExclusive()
	case "memory", "":
		lower.SetExclusive() // the image: nothing changes it meanwhile
		upper := b.tmpfs(tmpfs.Options{MaxBytes: b.mf.Size(), InoBase: overlay.UpperInoBase})
		if impl, err = overlay.New(b.ctx, upper, lower); err != nil {
			return vfs.VirtualDentry{}, fmt.Errorf("root overlay: %w", err)
		}
	case "self":
		// The upper layer would have to live in a host file in the
		// rootfs, and tmpfs pages must come from the memory file that
		// the platforms map.
		return vfs.VirtualDentry{}, fmt.Errorf("--overlay=self is not supported yet (use memory or none)")
	default:
		return vfs.VirtualDentry{}, fmt.Errorf("--overlay=%q: want memory, none or self", b.args.Overlay)
	}
	fs, err := b.v.NewFilesystem(b.ctx, impl)
	if err != nil {
		return vfs.VirtualDentry{}, fmt.Errorf("root filesystem: %w", err)
	}
	return b.v.MountRoot(b.ctx, fs, 0)
}

func (b *mountBuilder) tmpfs(opts tmpfs.Options) *tmpfs.Filesystem {
	opts.OpenDevice = dev.Open
	return tmpfs.New(b.mf, opts)
}

// mountPoint finds target, making it (a directory, or an empty file when
// dir is false) with its missing parents if it does not exist. Paths are
// resolved inside the sandbox, so a symlink in the rootfs cannot point a
// mount outside it.
func (b *mountBuilder) mountPoint(target string, dir bool) (vfs.VirtualDentry, error) {
	pop := func(p string) *vfs.PathOperation {
		return &vfs.PathOperation{Root: b.root, Start: b.root, Path: p, FollowFinalSymlink: true}
	}
	vd, err := b.v.GetDentryAt(b.ctx, pop(target))
	if err != unix.ENOENT {
		return vd, err
	}
	p := ""
	comps := strings.Split(strings.Trim(path.Clean(target), "/"), "/")
	for i, c := range comps {
		p += "/" + c
		last := i == len(comps)-1
		var err error
		switch {
		case !last || dir:
			err = b.v.MkdirAt(b.ctx, pop(p), 0o755)
		default:
			var fd *vfs.FileDescription
			fd, err = b.v.OpenAt(b.ctx, pop(p), vfs.OpenOptions{Flags: unix.O_CREAT | unix.O_WRONLY, Mode: 0o644})
			if err == nil {
				fd.DecRef(b.ctx)
			}
		}
		if err != nil && err != unix.EEXIST {
			if err == unix.EROFS {
				return vfs.VirtualDentry{}, fmt.Errorf("mount point does not exist and the root is read-only")
			}
			return vfs.VirtualDentry{}, fmt.Errorf("making mount point %s: %w", p, err)
		}
	}
	return b.v.GetDentryAt(b.ctx, pop(target))
}

// mountAt mounts impl at target.
func (b *mountBuilder) mountAt(target string, impl vfs.FilesystemImpl, dir bool, flags uint32) error {
	fs, err := b.v.NewFilesystem(b.ctx, impl)
	if err != nil {
		return err
	}
	vd, err := b.mountPoint(target, dir)
	if err != nil {
		return err
	}
	if _, err := b.v.MountAt(b.ctx, fs, vd, flags); err != nil {
		return fmt.Errorf("mounting %s: %w", target, err)
	}
	return nil
}

// mountDev mounts the sandbox's /dev (device nodes, /dev/fd links, shm
// and pts directories); a container's tmpfs at /dev gets it too, as runc
// would fill that tmpfs with the same nodes.
func (b *mountBuilder) mountDev(flags uint32) error {
	devFS, err := dev.New(b.ctx, b.mf)
	if err != nil {
		return err
	}
	return b.mountAt("/dev", devFS, true, flags)
}

// specMount mounts one of the container's mounts.
func (b *mountBuilder) specMount(m Mount) error {
	flags, data, bind, err := parseMountOptions(m.Options)
	if err != nil {
		return err
	}
	if m.ReadOnly {
		flags |= vfs.MountReadOnly
	}
	if bind || m.Type == "bind" || m.Type == "rbind" {
		if len(data) > 0 {
			return fmt.Errorf("bind mount option %q is not supported", data[0])
		}
		fs, err := b.goferFS(m.GoferIndex)
		if err != nil {
			return err
		}
		root, _ := fs.Root(b.ctx)
		return b.mountAt(m.Destination, fs, root.Perms().IsDir(), flags)
	}
	switch m.Type {
	case "tmpfs":
		data, copyUp := withoutOption(data, "tmpcopyup")
		opts, err := tmpfsOptions(data, b.mf.Size())
		if err != nil {
			return err
		}
		if path.Clean(m.Destination) == "/dev" {
			return b.mountDev(flags)
		}
		if copyUp {
			return b.mountCopyUp(m.Destination, b.tmpfs(opts), data, flags)
		}
		return b.mountAt(m.Destination, b.tmpfs(opts), true, flags)
	case "proc":
		if len(data) > 0 {
			return fmt.Errorf("proc option %q is not supported", data[0])
		}
		return b.mountAt(m.Destination, proc.New(b.k), true, flags)
	case "sysfs":
		return b.mountAt(m.Destination, sys.New(b.k, sys.Limits{}), true, flags)
	case "devpts":
		opts, err := devpts.ParseOptions(data)
		if err != nil {
			return err
		}
		return b.mountAt(m.Destination, devpts.New(opts), true, flags)
	case "cgroup", "cgroup2":
		cg, err := cgroupFS(b.ctx, b.k)
		if err != nil {
			return err
		}
		// The view is of limits the sandbox cannot change.
		return b.mountAt(m.Destination, cg, true, flags|vfs.MountReadOnly)
	case "mqueue":
		// Every mqueue mount shows the sandbox's one set of queues.
		return b.mountAt(m.Destination, mqueue.NewFilesystem(mqueue.RegistryOf(b.k)), true, flags)
	default:
		// Leaving the mount out would hand the container a directory
		// it did not ask for.
		return fmt.Errorf("filesystem type %q is not supported yet", m.Type)
	}
}

// parseMountOptions splits mount(8)-style options into MS_* flags the VFS
// enforces, filesystem data options, and whether it is a bind mount.
// Options about access times, sync and propagation are accepted and have
// no effect: the sandbox keeps its own times, writes through at once, and
// has a single mount namespace with no peers.
func parseMountOptions(opts []string) (flags uint32, data []string, bind bool, err error) {
	for _, o := range opts {
		switch o {
		case "ro":
			flags |= vfs.MountReadOnly
		case "rw":
			flags &^= vfs.MountReadOnly
		case "nosuid":
			flags |= vfs.MountNoSUID
		case "suid":
			flags &^= vfs.MountNoSUID
		case "nodev":
			flags |= vfs.MountNoDev
		case "dev":
			flags &^= vfs.MountNoDev
		case "noexec":
			flags |= vfs.MountNoExec
		case "exec":
			flags &^= vfs.MountNoExec
		case "bind", "rbind":
			bind = true
		case "defaults", "atime", "noatime", "relatime", "norelatime", "strictatime", "nostrictatime",
			"diratime", "nodiratime", "lazytime", "nolazytime", "sync", "async", "dirsync",
			"mand", "nomand", "private", "rprivate", "shared", "rshared", "slave", "rslave",
			"unbindable", "runbindable", "silent", "loud":
		default:
			data = append(data, o)
		}
	}
	return flags, data, bind, nil
}

// tmpfsOptions parses tmpfs's size=, mode=, uid=, gid= (and accepts
// nr_inodes= and nr_blocks=, which bound nothing here beyond size).
func tmpfsOptions(data []string, memSize uint64) (tmpfs.Options, error) {
	opts := tmpfs.Options{Mode: 01777}
	for _, o := range data {
		k, val, _ := strings.Cut(o, "=")
		var err error
		switch k {
		case "size":
			opts.MaxBytes, err = parseSize(val, memSize)
			if err == nil && opts.MaxBytes == 0 {
				opts.MaxBytes = memSize // size=0: unlimited
			}
		case "mode":
			var m uint64
			m, err = strconv.ParseUint(val, 8, 32)
			opts.Mode = uint32(m) & 07777
		case "uid":
			var u uint64
			u, err = strconv.ParseUint(val, 10, 32)
			opts.UID = auth.KUID(u)
		case "gid":
			var g uint64
			g, err = strconv.ParseUint(val, 10, 32)
			opts.GID = auth.KGID(g)
		case "nr_inodes", "nr_blocks", "huge", "mpol":
		default:
			return opts, fmt.Errorf("tmpfs option %q is not supported", o)
		}
		if err != nil {
			return opts, fmt.Errorf("tmpfs option %q: bad value", o)
		}
	}
	return opts, nil
}

// parseSize reads a tmpfs size: bytes with an optional k, m, g, t suffix,
// or a percentage of the memory available to the sandbox.
func parseSize(s string, memSize uint64) (uint64, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil || n > 100 {
			return 0, unix.EINVAL
		}
		return memSize / 100 * n, nil
	}
	shift := 0
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		case 't', 'T':
			shift = 40
		}
		if shift != 0 {
			s = s[:n-1]
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > (1<<63)>>shift {
		return 0, unix.EINVAL
	}
	return n << shift, nil
}

// mask hides path as runc does: a directory under an empty read-only
// tmpfs, anything else under a node reading as /dev/null. A path that
// does not exist is left alone.
func (b *mountBuilder) mask(p string) error {
	vd, err := b.v.GetDentryAt(b.ctx, &vfs.PathOperation{Root: b.root, Start: b.root, Path: p, FollowFinalSymlink: true})
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return nil
	}
	if err != nil {
		return err
	}
	var impl vfs.FilesystemImpl = newMaskFS()
	flags := uint32(vfs.MountReadOnly)
	if vd.Inode().Perms().IsDir() {
		impl = b.tmpfs(tmpfs.Options{Mode: 0o755})
		flags |= vfs.MountNoSUID | vfs.MountNoDev | vfs.MountNoExec
	}
	fs, err := b.v.NewFilesystem(b.ctx, impl)
	if err != nil {
		return err
	}
	_, err = b.v.MountAt(b.ctx, fs, vd, flags)
	return err
}

// readOnly bind-mounts path read-only onto itself. A path that does not
// exist is left alone.
func (b *mountBuilder) readOnly(p string) error {
	vd, err := b.v.GetDentryAt(b.ctx, &vfs.PathOperation{Root: b.root, Start: b.root, Path: p, FollowFinalSymlink: true})
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = b.v.BindMount(b.ctx, vd, vd, vd.Mount.Flags()|vfs.MountReadOnly)
	return err
}

// CGROUP2_SUPER_MAGIC is statfs's f_type for cgroup2.
const CGROUP2_SUPER_MAGIC = 0x63677270

// subtreeFS presents a directory of another filesystem as a filesystem of
// its own.
type subtreeFS struct {
	vfs.FilesystemImpl
	root  vfs.Inode
	name  string
	magic uint64
}

func (s *subtreeFS) Name() string                            { return s.name }
func (s *subtreeFS) Root(context.Context) (vfs.Inode, error) { return s.root, nil }
func (s *subtreeFS) StatFS(ctx context.Context) (vfs.Statfs, error) {
	st, err := s.FilesystemImpl.StatFS(ctx)
	st.Type = s.magic
	return st, err
}

// cgroupFS is what a container's cgroup (v1 or v2) mount shows: sysfs's
// read-only cgroup2 view of the sandbox's limits (fs/cgroup), as a
// filesystem of type cgroup2.
func cgroupFS(ctx context.Context, k *kernel.Kernel) (vfs.FilesystemImpl, error) {
	sysfs := sys.New(k, sys.Limits{})
	dir, err := sysfs.Root(ctx)
	for _, name := range []string{"fs", "cgroup"} {
		if err != nil {
			break
		}
		dir, err = dir.Lookup(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("the cgroup view of sysfs: %w", err)
	}
	return &subtreeFS{FilesystemImpl: sysfs, root: dir, name: "cgroup2", magic: CGROUP2_SUPER_MAGIC}, nil
}
