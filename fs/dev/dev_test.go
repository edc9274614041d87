package dev

import (
	"bytes"
	"context"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/memory"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func TestDevices(t *testing.T) {
	ctx := context.Background()
	mf, err := memory.NewSized(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	v := vfs.New()
	dfs, err := New(ctx, mf)
	if err != nil {
		t.Fatal(err)
	}
	fs, _ := v.NewFilesystem(ctx, dfs)
	root, _ := v.MountRoot(ctx, fs, 0)
	open := func(path string, flags uint32) (*vfs.FileDescription, error) {
		return v.OpenAt(ctx, &vfs.PathOperation{Root: root, Start: root, Path: path, FollowFinalSymlink: true}, vfs.OpenOptions{Flags: flags})
	}
	buf := bytes.Repeat([]byte{0xff}, 100)

	null, err := open("/null", unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := null.Read(ctx, usermem.BytesSequence(buf)); n != 0 {
		t.Errorf("/dev/null read %d", n)
	}
	if n, _ := null.Write(ctx, usermem.BytesSequence(buf)); n != 100 {
		t.Errorf("/dev/null write %d", n)
	}
	st, _ := null.Stat(ctx)
	if st.Mode != unix.S_IFCHR|0666 || st.RdevMajor != 1 || st.RdevMinor != 3 {
		t.Errorf("/dev/null stat %+v", st)
	}
	null.DecRef(ctx)

	zero, _ := open("/zero", unix.O_RDONLY)
	if n, _ := zero.Read(ctx, usermem.BytesSequence(buf)); n != 100 || !bytes.Equal(buf, make([]byte, 100)) {
		t.Errorf("/dev/zero read %d %v", n, buf[:4])
	}
	zero.DecRef(ctx)

	full, _ := open("/full", unix.O_WRONLY)
	if _, err := full.Write(ctx, usermem.BytesSequence(buf)); err != unix.ENOSPC {
		t.Errorf("/dev/full write: %v", err)
	}
	full.DecRef(ctx)

	ur, _ := open("/urandom", unix.O_RDONLY)
	a, b := make([]byte, 32), make([]byte, 32)
	ur.Read(ctx, usermem.BytesSequence(a))
	ur.Read(ctx, usermem.BytesSequence(b))
	if bytes.Equal(a, b) || bytes.Equal(a, make([]byte, 32)) {
		t.Errorf("urandom not random")
	}
	ur.DecRef(ctx)

	if _, err := open("/tty", unix.O_RDWR); err != unix.ENXIO {
		t.Errorf("/dev/tty without ctty: %v", err)
	}
	target, err := v.ReadlinkAt(ctx, &vfs.PathOperation{Root: root, Start: root, Path: "/stdout"})
	if err != nil || target != "/proc/self/fd/1" {
		t.Errorf("stdout link %q %v", target, err)
	}
	sst, err := v.StatAt(ctx, &vfs.PathOperation{Root: root, Start: root, Path: "/shm"})
	if err != nil || sst.Mode != unix.S_IFDIR|01777 {
		t.Errorf("shm %o %v", sst.Mode, err)
	}
}
