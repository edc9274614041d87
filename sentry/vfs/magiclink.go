package vfs

import (
	"context"

	"golang.org/x/sys/unix"
)

// MagicLink is implemented by symlink inodes that stand for a file rather
// than for a path: procfs's /proc/PID/fd/N, cwd, root and exe. Following
// one moves the walk to the file itself (Linux's nd_jump_link), whatever
// its name is now and whether or not that name is reachable from the
// caller's root; the text Readlink returns is never resolved. The jump
// lands only on a position the VFS already holds, so it cannot name
// anything outside the sandbox's mounts.
type MagicLink interface {
	// Jump returns the file the link stands for, or an error (ENOENT when
	// it is gone, EACCES when the caller may not see it). link is where
	// the link itself is.
	Jump(ctx context.Context, link VirtualDentry) (VirtualDentry, error)
}

// jump follows the magic link at link: the walk continues from its
// target.
func (r *resolver) jump(ml MagicLink, link VirtualDentry) error {
	vd, err := ml.Jump(r.ctx, link)
	if err != nil {
		return err
	}
	if !vd.Ok() {
		return unix.ENOENT
	}
	r.cur = vd
	r.jumped = true
	return nil
}

// DetachedDentry returns a position for ino that no directory lists, in
// place of the magic link at link: what a MagicLink jumps to for a file
// that has no place in the mount tree (a pipe, a socket, a donated host
// FD), so that opening it through the link reaches the same object. Path
// names of the result are the link's. Magic links live in filesystems
// that never rename them, so link's name and parent are read without
// renameMu (which the walker calling Jump may hold for writing).
func DetachedDentry(link VirtualDentry, ino Inode) VirtualDentry {
	d := link.Dentry
	return VirtualDentry{link.Mount, newDentry(d.fs, d.parent, d.name, ino)}
}
