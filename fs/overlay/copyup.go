package overlay

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// copyChunk is the unit of data copy-up; all-zero chunks are skipped and
// left as holes.
const copyChunk = 1 << 20

// copyUp makes sure i is in the upper layer at its name.
func (fs *Filesystem) copyUp(ctx context.Context, i *inode) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.copyUpLocked(ctx, i)
}

func (fs *Filesystem) copyUpLocked(ctx context.Context, i *inode) error {
	ls := i.ls.Load()
	upper, placed, lower := ls.upper, ls.placed, ls.lower
	if upper != nil && placed {
		return nil
	}
	p := i.parent
	if p == nil {
		return nil // the root is always in the upper layer
	}
	if err := fs.copyUpLocked(ctx, p); err != nil {
		return err
	}
	pu, _ := p.layers()
	// Someone else's inode for this path (an evicted and re-looked-up
	// one) may have copied it up already; a whiteout means the file is
	// gone.
	if c, err := pu.Lookup(ctx, i.name); err == nil {
		if fs.whiteouts[c] {
			return unix.ENOENT
		}
		i.setUpper(c)
		return nil
	} else if err != unix.ENOENT {
		return err
	}
	if upper != nil {
		// A copy made through another hard link: link it here too.
		if err := pu.Link(ctx, i.name, upper); err != nil {
			return err
		}
		i.setUpper(upper)
		return nil
	}
	st, err := lower.Stat(ctx)
	if err != nil {
		return err
	}
	co := vfs.CreateOptions{Mode: uint32(st.Mode), UID: kuid(st.UID), GID: kgid(st.GID)}
	var c vfs.Inode
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		c, err = pu.Mkdir(ctx, i.name, co)
	case unix.S_IFLNK:
		var target string
		if target, err = lower.Readlink(ctx); err == nil {
			c, err = pu.Symlink(ctx, i.name, target, co)
		}
	case unix.S_IFREG:
		if c, err = pu.Create(ctx, i.name, co); err == nil {
			if err = copyData(ctx, lower, c, st.Size); err != nil {
				pu.Unlink(ctx, i.name, c)
			}
		}
	default:
		co.Rdev = unix.Mkdev(st.RdevMajor, st.RdevMinor)
		c, err = pu.Create(ctx, i.name, co)
	}
	if err != nil {
		return err
	}
	if err := copyXattrs(ctx, lower, c); err != nil {
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			pu.Rmdir(ctx, i.name, c)
		} else {
			pu.Unlink(ctx, i.name, c)
		}
		return err
	}
	// Create took the mode through the upper layer's own rules (a set-ID
	// bit can be dropped); set everything exactly, times last.
	if err := c.SetStat(ctx, copiedAttrs(st)); err != nil {
		return err
	}
	if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		fs.links[st.Ino] = c
	}
	i.setUpper(c)
	return nil
}

// setUpper places c as i's upper file. fs.mu is held.
func (i *inode) setUpper(c vfs.Inode) {
	i.setLayers(func(s *layerSet) { s.upper, s.placed = c, true })
}

// copyData copies size bytes of regular file from into to.
func copyData(ctx context.Context, from, to vfs.Inode, size uint64) error {
	if size == 0 {
		return nil
	}
	// Holes first: the size is set, then only chunks holding data are
	// written.
	if err := to.SetStat(ctx, vfs.SetStatOptions{Mask: unix.STATX_SIZE, Size: size}); err != nil {
		return err
	}
	src, err := from.Open(ctx, unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer src.Release(ctx)
	dst, err := to.Open(ctx, unix.O_WRONLY)
	if err != nil {
		return err
	}
	defer dst.Release(ctx)
	buf := make([]byte, min(size, copyChunk))
	for off := int64(0); uint64(off) < size; {
		n, err := src.Read(ctx, usermem.BytesSequence(buf), off)
		if err != nil {
			return err
		}
		if n == 0 {
			break // the lower file shrank meanwhile
		}
		if !allZero(buf[:n]) {
			for w := int64(0); w < n; {
				m, _, err := dst.Write(ctx, usermem.BytesSequence(buf[w:n]), off+w, false)
				if err != nil {
					return err
				}
				w += m
			}
		}
		off += n
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
