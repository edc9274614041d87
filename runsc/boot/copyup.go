package boot

import (
	"fmt"
	"io"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// tmpcopyup is the tmpfs mount option (podman's --read-only, crun and
// runc accept it) that fills a new tmpfs with what the directory it
// covers held, so that a read-only image keeps e.g. /run's contents
// while making it writable.

// withoutOption removes every opt from data and reports whether there
// was one.
func withoutOption(data []string, opt string) ([]string, bool) {
	var out []string
	found := false
	for _, o := range data {
		if o == opt {
			found = true
			continue
		}
		out = append(out, o)
	}
	return out, found
}

// mountCopyUp mounts impl, a new tmpfs, at target and copies into it the
// tree of the directory it covers: files with their contents, modes,
// owners and times, directories, symlinks and special files. The copy
// runs with the mount writable; flags apply afterwards. Without a mode=
// option the tmpfs root takes the covered directory's mode, as runc
// gives its tmpfs mounts.
func (b *mountBuilder) mountCopyUp(target string, impl vfs.FilesystemImpl, data []string, flags uint32) error {
	fs, err := b.v.NewFilesystem(b.ctx, impl)
	if err != nil {
		return err
	}
	under, err := b.mountPoint(target, true)
	if err != nil {
		return err
	}
	st, err := b.v.StatDentry(b.ctx, under)
	if err != nil {
		return err
	}
	m, err := b.v.MountAt(b.ctx, fs, under, 0)
	if err != nil {
		return fmt.Errorf("mounting %s: %w", target, err)
	}
	top := m.Root()
	hasMode := false
	for _, o := range data {
		hasMode = hasMode || strings.HasPrefix(o, "mode=")
	}
	if !hasMode {
		if err := b.v.SetStatDentry(b.ctx, top, vfs.SetStatOptions{Mask: unix.STATX_MODE, Mode: uint32(st.Mode) & 07777}); err != nil {
			return fmt.Errorf("tmpcopyup %s: %w", target, err)
		}
	}
	if err := b.copyTree(under, top, 0); err != nil {
		return fmt.Errorf("tmpcopyup %s: %w", target, err)
	}
	b.v.Remount(m, flags)
	return nil
}

// copyTreeMaxDepth bounds the recursion on a hostile image's deep tree.
const copyTreeMaxDepth = 256

// copyTree copies the entries of directory src into directory dst.
// Lookups start at src itself, so they see what is under the new mount
// at src, not the mount.
func (b *mountBuilder) copyTree(src, dst vfs.VirtualDentry, depth int) error {
	if depth > copyTreeMaxDepth {
		return unix.ELOOP
	}
	ctx := b.ctx
	dir, err := b.v.OpenDentry(ctx, src, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	var names []string
	err = dir.IterDirents(ctx, func(d vfs.Dirent, _ int64) bool {
		if d.Name != "." && d.Name != ".." {
			names = append(names, d.Name)
		}
		return true
	})
	dir.DecRef(ctx)
	if err != nil {
		return err
	}
	in := func(vd vfs.VirtualDentry, name string) *vfs.PathOperation {
		return &vfs.PathOperation{Root: b.root, Start: vd, Path: name}
	}
	for _, name := range names {
		st, err := b.v.StatAt(ctx, in(src, name))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		perm := uint32(st.Mode) & 07777
		switch uint32(st.Mode) & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := b.v.MkdirAt(ctx, in(dst, name), perm); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			s, err := b.v.GetDentryAt(ctx, in(src, name))
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			d, err := b.v.GetDentryAt(ctx, in(dst, name))
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := b.copyTree(s, d, depth+1); err != nil {
				return fmt.Errorf("%s/%w", name, err)
			}
		case unix.S_IFREG:
			if err := b.copyFile(in(src, name), in(dst, name), perm); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case unix.S_IFLNK:
			link, err := b.v.ReadlinkAt(ctx, in(src, name))
			if err == nil {
				err = b.v.SymlinkAt(ctx, in(dst, name), link)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		default:
			rdev := unix.Mkdev(st.RdevMajor, st.RdevMinor)
			if err := b.v.MknodAt(ctx, in(dst, name), uint32(st.Mode), rdev); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		// Owner, then mode (a chown clears set-ID bits), then times.
		set := []vfs.SetStatOptions{
			{Mask: unix.STATX_UID | unix.STATX_GID, UID: auth.KUID(st.UID), GID: auth.KGID(st.GID)},
		}
		if uint32(st.Mode)&unix.S_IFMT != unix.S_IFLNK {
			set = append(set,
				vfs.SetStatOptions{Mask: unix.STATX_MODE, Mode: perm},
				vfs.SetStatOptions{Mask: unix.STATX_ATIME | unix.STATX_MTIME, Atime: st.Atime, Mtime: st.Mtime})
		}
		for _, o := range set {
			if err := b.v.SetStatAt(ctx, in(dst, name), o); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return nil
}

// copyFile copies a regular file's contents into a new file.
func (b *mountBuilder) copyFile(src, dst *vfs.PathOperation, perm uint32) error {
	ctx := b.ctx
	r, err := b.v.OpenAt(ctx, src, vfs.OpenOptions{Flags: unix.O_RDONLY | unix.O_NOFOLLOW})
	if err != nil {
		return err
	}
	defer r.DecRef(ctx)
	w, err := b.v.OpenAt(ctx, dst, vfs.OpenOptions{Flags: unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW, Mode: perm})
	if err != nil {
		return err
	}
	defer w.DecRef(ctx)
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(ctx, usermem.BytesSequence(buf))
		for data := buf[:n]; len(data) > 0; {
			m, werr := w.Write(ctx, usermem.BytesSequence(data))
			if werr != nil {
				return werr
			}
			data = data[m:]
		}
		if err == io.EOF || (err == nil && n == 0) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
