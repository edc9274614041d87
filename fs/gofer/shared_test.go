package gofer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// invalidations records what a Mappable asked an address space to forget.
type invalidations []hostarch.AddrRange

func (v *invalidations) Invalidate(ar hostarch.AddrRange) { *v = append(*v, ar) }

// TestSharedWritableMapping: a shared writable mapping of a gofer file
// writes into the page cache; FD reads see those bytes before they reach
// the host, FD writes land in the mapped page without undoing them, fsync
// and the last writable mapping's removal write them back, and truncation
// drops them.
func TestSharedWritableMapping(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	host := filepath.Join(dir, "f")
	if err := os.WriteFile(host, []byte(strings.Repeat("a", 2*pageSize)), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := newFS(t, dir, false)
	root, _ := fs.Root(ctx)
	n, err := root.Lookup(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	impl, err := n.Open(ctx, unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer impl.Release(ctx)

	opts := memmap.MMapOpts{Length: 2 * pageSize, Perms: hostarch.ReadWrite, MaxPerms: hostarch.AnyAccess}
	if err := impl.ConfigureMMap(ctx, &opts); err != nil {
		t.Fatalf("shared writable mmap: %v", err)
	}
	m := opts.Mappable
	m.IncRef()
	var space invalidations
	ar := hostarch.AddrRange{Start: 0x10000, End: 0x10000 + 2*pageSize}
	m.AddMapping(&space, ar, 0, true)

	// A read fault gives a read-only page; a write fault a writable one.
	ts, err := m.Translate(0, 1, hostarch.Read)
	if err != nil || ts[0].Perms.Write {
		t.Fatalf("read translation: %+v %v", ts, err)
	}
	ts, err = m.Translate(0, 1, hostarch.Write)
	if err != nil || !ts[0].Perms.Write {
		t.Fatalf("write translation: %+v %v", ts, err)
	}
	page, _ := fs.mf.MapInternal(ts[0].FileOffset, pageSize)
	copy(page[10:], "MAPPED")

	read := func(off int64, n int) string {
		buf := make([]byte, n)
		got, err := impl.Read(ctx, usermem.BytesSequence(buf), off)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return string(buf[:got])
	}
	if got := read(8, 10); got != "aaMAPPEDaa" {
		t.Errorf("FD read of a dirty page: %q", got)
	}
	// An FD write to the dirty page keeps the mapped bytes around it.
	if _, _, err := impl.Write(ctx, usermem.BytesSequence([]byte("fd")), 20, false); err != nil {
		t.Fatal(err)
	}
	if string(page[8:24]) != "aaMAPPEDaaaafdaa" {
		t.Errorf("page after FD write: %q", page[8:24])
	}
	if err := impl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(host); string(b[8:24]) != "aaMAPPEDaaaafdaa" {
		t.Errorf("host after fsync: %q", b[8:24])
	}

	// msync of the second page writes back only what it covers.
	ts, _ = m.Translate(pageSize, 1, hostarch.Write)
	page2, _ := fs.mf.MapInternal(ts[0].FileOffset, pageSize)
	copy(page2, "SECOND")
	copy(page[0:], "FIRST")
	if err := m.(memmap.Syncer).SyncRange(pageSize, pageSize); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(host)
	if string(b[pageSize:pageSize+6]) != "SECOND" || string(b[:5]) != "aaaaa" {
		t.Errorf("host after msync of page 2: %q / %q", b[:5], b[pageSize:pageSize+6])
	}
	// The last writable mapping going writes the rest back.
	m.RemoveMapping(&space, ar, 0, true)
	if b, _ := os.ReadFile(host); string(b[:5]) != "FIRST" {
		t.Errorf("host after unmapping: %q", b[:5])
	}
	if _, err := m.Translate(0, 1, hostarch.Write); err != unix.EACCES {
		t.Errorf("write translation with no writable mapping: %v", err)
	}

	// Truncation drops the dirty second page; it never comes back.
	m.AddMapping(&space, ar, 0, true)
	ts, _ = m.Translate(pageSize, 1, hostarch.Write)
	page2, _ = fs.mf.MapInternal(ts[0].FileOffset, pageSize)
	copy(page2, "LOST")
	if err := n.SetStat(ctx, setSize(pageSize)); err != nil {
		t.Fatal(err)
	}
	if len(space) == 0 {
		t.Error("truncation invalidated nothing")
	}
	m.RemoveMapping(&space, ar, 0, true)
	if st, _ := os.Stat(host); st.Size() != pageSize {
		t.Errorf("host size after truncate and unmap: %d", st.Size())
	}
	m.DecRef()
}

func setSize(size uint64) vfs.SetStatOptions {
	return vfs.SetStatOptions{Mask: unix.STATX_SIZE, Size: size}
}

// TestSharedMappingOutlivesInode: a file mapped shared and writable keeps
// one page cache for as long as it is mapped, even when its inode is
// evicted or another inode is made for it: an FD of the new inode reads
// the dirty pages, and a new mapping maps the same pages.
func TestSharedMappingOutlivesInode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	host := filepath.Join(dir, "f")
	if err := os.WriteFile(host, []byte(strings.Repeat("a", pageSize)), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := newFS(t, dir, false)
	root, _ := fs.Root(ctx)
	n, err := root.Lookup(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	impl, err := n.Open(ctx, unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	opts := memmap.MMapOpts{Length: pageSize, Perms: hostarch.ReadWrite, MaxPerms: hostarch.AnyAccess}
	if err := impl.ConfigureMMap(ctx, &opts); err != nil {
		t.Fatal(err)
	}
	m := opts.Mappable
	m.IncRef()
	var space invalidations
	ar := hostarch.AddrRange{Start: 0x10000, End: 0x10000 + pageSize}
	m.AddMapping(&space, ar, 0, true)
	ts, err := m.Translate(0, 1, hostarch.Write)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := fs.mf.MapInternal(ts[0].FileOffset, pageSize)
	copy(page, "DIRTY")
	// The application closes its FD and the dentry is evicted; the
	// mapping stays. Another description of the evicted inode (which now
	// holds no handle, so cannot keep a cache) maps the same cache.
	other, err := n.Open(ctx, unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	impl.Release(ctx)
	n.(*inode).Evict(ctx)
	o := memmap.MMapOpts{Length: pageSize, Perms: hostarch.ReadWrite, MaxPerms: hostarch.AnyAccess}
	if err := other.ConfigureMMap(ctx, &o); err != nil || o.Mappable != m {
		t.Errorf("mapping through the evicted inode: %v, same cache %v", err, o.Mappable == m)
	}
	other.Release(ctx)

	n2, err := root.Lookup(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	impl2, err := n2.Open(ctx, unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer impl2.Release(ctx)
	buf := make([]byte, 5)
	if r, err := impl2.Read(ctx, usermem.BytesSequence(buf), 0); err != nil || string(buf[:r]) != "DIRTY" {
		t.Errorf("read through another inode: %q %v", buf[:r], err)
	}
	opts2 := memmap.MMapOpts{Length: pageSize, Perms: hostarch.ReadWrite, MaxPerms: hostarch.AnyAccess}
	if err := impl2.ConfigureMMap(ctx, &opts2); err != nil {
		t.Fatal(err)
	}
	if opts2.Mappable != m {
		t.Errorf("a new mapping of the file got a page cache of its own")
	}
	opts2.Mappable.IncRef()
	opts2.Mappable.DecRef()
	m.RemoveMapping(&space, ar, 0, true)
	m.DecRef()
	if b, _ := os.ReadFile(host); string(b[:5]) != "DIRTY" {
		t.Errorf("host after unmapping: %q", b[:5])
	}
}
