package gofer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func roundTrips(c *Client) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// Reopening a file takes the FD its inode keeps: no gofer round trip, and
// each description still reads at its own offset.
func TestReopenUsesCachedFD(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newVFSEnv(t, dir, true, 64)
	c := e.fs.Impl().(*Filesystem).client
	first, err := e.open(e.root, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer first.DecRef(ctx)
	before := roundTrips(c)
	var fds []*vfs.FileDescription
	for range 50 {
		fd, err := e.open(e.root, "f")
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
	}
	if n := roundTrips(c) - before; n != 0 {
		t.Errorf("50 reopens made %d gofer round trips, want 0", n)
	}
	buf := make([]byte, 3)
	if _, err := fds[0].Read(ctx, usermem.BytesSequence(buf)); err != nil || string(buf) != "012" {
		t.Fatalf("read: %q %v", buf, err)
	}
	if _, err := fds[1].Read(ctx, usermem.BytesSequence(buf)); err != nil || string(buf) != "012" {
		t.Fatalf("second description shares an offset: %q %v", buf, err)
	}
	for _, fd := range fds {
		fd.DecRef(ctx)
	}
	// The kept FD outlives every description but the inode's.
	if got := readAll(t, first); got != "0123456789" {
		t.Errorf("after closing the others: %q", got)
	}
}

// A file created read-write is opened with the FD the create returned,
// and a write-only open may use it too.
func TestCreateKeepsFD(t *testing.T) {
	ctx := context.Background()
	e := newVFSEnv(t, t.TempDir(), false, 64)
	c := e.fs.Impl().(*Filesystem).client
	before := roundTrips(c)
	fd, err := e.vfs.OpenAt(ctx, e.pop(e.root, "new"), vfs.OpenOptions{Flags: unix.O_WRONLY | unix.O_CREAT, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	defer fd.DecRef(ctx)
	if n := roundTrips(c) - before; n > 2 {
		t.Errorf("create+open made %d round trips, want at most 2 (walk, create)", n)
	}
	if _, err := fd.Write(ctx, usermem.BytesSequence([]byte("hi"))); err != nil {
		t.Fatal(err)
	}
	if _, err := fd.Read(ctx, usermem.BytesSequence(make([]byte, 1))); err != unix.EBADF {
		t.Errorf("read of a write-only description: %v, want EBADF", err)
	}
}

// On a writable mount, a stat by path of a file whose inode keeps an FD
// reads the host file through it: fresh attributes, no round trip.
func TestStatThroughKeptFD(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := newVFSEnv(t, dir, false, 64)
	c := e.fs.Impl().(*Filesystem).client
	fd, err := e.vfs.OpenAt(ctx, e.pop(e.root, "f"), vfs.OpenOptions{Flags: unix.O_RDWR | unix.O_CREAT, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	defer fd.DecRef(ctx)
	written := uint64(0)
	for _, size := range []uint64{5, 11} {
		if _, err := fd.Write(ctx, usermem.BytesSequence(make([]byte, size-written))); err != nil {
			t.Fatal(err)
		}
		written = size
		before := roundTrips(c)
		st, err := e.vfs.StatAt(ctx, e.pop(e.root, "f"))
		if err != nil || st.Size != size {
			t.Fatalf("stat: size %d, %v; want %d", st.Size, err, size)
		}
		if n := roundTrips(c) - before; n != 0 {
			t.Errorf("stat made %d round trips, want 0", n)
		}
	}
	// Changed from elsewhere (here, the host): still the file's own.
	if err := os.Truncate(filepath.Join(dir, "f"), 2); err != nil {
		t.Fatal(err)
	}
	if st, err := e.vfs.StatAt(ctx, e.pop(e.root, "f")); err != nil || st.Size != 2 {
		t.Errorf("stat after a host truncate: size %d, %v", st.Size, err)
	}
}
