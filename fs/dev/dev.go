// Package dev owns the sandbox's /dev: a tmpfs populated with the memory
// devices (null, zero, full, random, urandom), tty and console, the
// /proc/self/fd symlinks, ptmx (a symlink to pts/ptmx, as container
// runtimes make it), and the shm and pts directories (where boot mounts a
// tmpfs and a devpts), and the implementations of those character
// devices. /dev/tty is the opener's controlling terminal and
// /dev/console the kernel's console terminal, both fs/devpts pairs.
package dev

import (
	"context"
	"crypto/rand"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/devpts"
	"github.com/veil-sandbox/veil/fs/tmpfs"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// Device numbers (Documentation/admin-guide/devices.txt).
var (
	Null    = unix.Mkdev(1, 3)
	Zero    = unix.Mkdev(1, 5)
	Full    = unix.Mkdev(1, 7)
	Random  = unix.Mkdev(1, 8)
	URandom = unix.Mkdev(1, 9)
	TTY     = unix.Mkdev(5, 0)
	Console = unix.Mkdev(5, 1)
)

// New returns a /dev filesystem whose regular files (if any are created)
// live in mf.
func New(ctx context.Context, mf tmpfs.MemoryFile) (*tmpfs.Filesystem, error) {
	fs := tmpfs.New(mf, tmpfs.Options{Mode: 0755, OpenDevice: Open})
	root, _ := fs.Root(ctx)
	for _, d := range []struct {
		name string
		rdev uint64
	}{{"null", Null}, {"zero", Zero}, {"full", Full}, {"random", Random}, {"urandom", URandom}, {"tty", TTY}} {
		opts := vfs.CreateOptions{Mode: unix.S_IFCHR | 0666, Rdev: d.rdev}
		if d.rdev == TTY {
			opts.GID = 5 // group tty, as udev makes it
		}
		if _, err := root.Create(ctx, d.name, opts); err != nil {
			return nil, err
		}
	}
	if _, err := root.Create(ctx, "console", vfs.CreateOptions{Mode: unix.S_IFCHR | 0620, GID: 5, Rdev: Console}); err != nil {
		return nil, err
	}
	for name, target := range map[string]string{
		"ptmx": "pts/ptmx",
		"fd":   "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
	} {
		if _, err := root.Symlink(ctx, name, target, vfs.CreateOptions{Mode: unix.S_IFLNK | 0777}); err != nil {
			return nil, err
		}
	}
	for name, mode := range map[string]uint32{"shm": 01777, "pts": 0755} {
		if _, err := root.Mkdir(ctx, name, vfs.CreateOptions{Mode: mode}); err != nil {
			return nil, err
		}
	}
	return fs, nil
}

// Open opens the character device rdev: ENXIO for unknown devices and for
// /dev/tty without a controlling terminal, ENODEV for /dev/console
// without a console.
func Open(ctx context.Context, rdev uint64, flags uint32) (vfs.FileDescriptionImpl, error) {
	switch rdev {
	case TTY:
		t, ok := ctx.(*kernel.Task)
		if !ok {
			return nil, unix.ENXIO
		}
		tty := t.ThreadGroup().ControllingTTY()
		if tty == nil {
			return nil, unix.ENXIO
		}
		return devpts.OpenTTY(ctx, tty, flags, rdev)
	case Console:
		t, ok := ctx.(*kernel.Task)
		if !ok {
			return nil, unix.ENODEV
		}
		tty := t.Kernel().Console()
		if tty == nil {
			return nil, unix.ENODEV
		}
		return devpts.OpenTTY(ctx, tty, flags, rdev)
	case Null:
		return &nullFD{dev: dev{rdev}}, nil
	case Zero:
		return &zeroFD{dev: dev{rdev}}, nil
	case Full:
		return &fullFD{dev: dev{rdev}}, nil
	case Random, URandom:
		return &randomFD{dev: dev{rdev}}, nil
	}
	return nil, unix.ENXIO
}

// dev is what every device description shares.
type dev struct{ rdev uint64 }

func (d dev) Stat(context.Context) (vfs.Statx, error) {
	now := vfs.Now()
	return vfs.Statx{
		Mask: unix.STATX_BASIC_STATS, Blksize: 4096, Nlink: 1, Mode: unix.S_IFCHR | 0666,
		RdevMajor: unix.Major(d.rdev), RdevMinor: unix.Minor(d.rdev), Atime: now, Mtime: now, Ctime: now,
	}, nil
}

// Seek succeeds and pins the offset at 0, as the memory devices do.
func (d dev) Seek(context.Context, int64, int32, int64) (int64, error) { return 0, nil }

// discard consumes src as /dev/null and /dev/zero writes do.
func discard(src usermem.IOSequence, off int64) (int64, int64, error) {
	n := src.NumBytes()
	return n, off + n, nil
}

type nullFD struct {
	vfs.FileDescriptionDefaultImpl
	dev
}

func (*nullFD) Sync(context.Context) error { return nil }

func (*nullFD) Read(context.Context, usermem.IOSequence, int64) (int64, error) { return 0, nil }
func (*nullFD) Write(_ context.Context, src usermem.IOSequence, off int64, _ bool) (int64, int64, error) {
	return discard(src, off)
}

// zeroPage is only ever read: a buffer on fillZero's stack escapes through
// the CopyOut interface and cost an allocation and a 4 KiB clear per read.
var zeroPage [4096]byte

// interruptible is what the calling task offers long loops: whether a
// signal or exit needs it (kernel.Task.Interrupted).
type interruptible interface{ Interrupted() bool }

// stop reports whether a read that has made progress should end there
// for a signal, as Linux's read_zero and urandom_read do: a read into
// gigabytes of a sparse mapping must not outlive a SIGKILL.
func stop(ctx context.Context, total int64) bool {
	t, ok := ctx.(interruptible)
	return ok && total > 0 && t.Interrupted()
}

// fillZero copies zeros to dst.
func fillZero(ctx context.Context, dst usermem.IOSequence) (int64, error) {
	zeros := &zeroPage
	var total int64
	for dst.NumBytes() > 0 && !stop(ctx, total) {
		n, err := dst.CopyOut(zeros[:min(dst.NumBytes(), int64(len(zeros)))])
		total += int64(n)
		if err != nil {
			if total > 0 {
				return total, nil
			}
			return 0, err
		}
		dst = dst.DropFirst(int64(n))
	}
	return total, nil
}

type zeroFD struct {
	vfs.FileDescriptionDefaultImpl
	dev
}

func (*zeroFD) Sync(context.Context) error { return nil }

func (*zeroFD) Read(ctx context.Context, dst usermem.IOSequence, _ int64) (int64, error) {
	return fillZero(ctx, dst)
}
func (*zeroFD) Write(_ context.Context, src usermem.IOSequence, off int64, _ bool) (int64, int64, error) {
	return discard(src, off)
}

// ConfigureMMap makes a mapping of /dev/zero anonymous memory (shared
// anonymous memory for MAP_SHARED), as Linux does.
func (*zeroFD) ConfigureMMap(_ context.Context, opts *memmap.MMapOpts) error {
	opts.Mappable = nil
	opts.Name = ""
	return nil
}

type fullFD struct {
	vfs.FileDescriptionDefaultImpl
	dev
}

func (*fullFD) Sync(context.Context) error { return nil }

func (*fullFD) Read(ctx context.Context, dst usermem.IOSequence, _ int64) (int64, error) {
	return fillZero(ctx, dst)
}
func (*fullFD) Write(context.Context, usermem.IOSequence, int64, bool) (int64, int64, error) {
	return 0, 0, unix.ENOSPC
}

type randomFD struct {
	vfs.FileDescriptionDefaultImpl
	dev
}

func (*randomFD) Sync(context.Context) error { return nil }

func (*randomFD) Read(ctx context.Context, dst usermem.IOSequence, _ int64) (int64, error) {
	var buf [4096]byte
	var total int64
	for dst.NumBytes() > 0 && !stop(ctx, total) {
		b := buf[:min(dst.NumBytes(), int64(len(buf)))]
		rand.Read(b)
		n, err := dst.CopyOut(b)
		total += int64(n)
		if err != nil {
			if total > 0 {
				return total, nil
			}
			return 0, err
		}
		dst = dst.DropFirst(int64(n))
	}
	return total, nil
}

// Write accepts entropy and ignores it, as an unprivileged write does.
func (*randomFD) Write(_ context.Context, src usermem.IOSequence, off int64, _ bool) (int64, int64, error) {
	return discard(src, off)
}
