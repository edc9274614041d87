package mm

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/memory"
)

const maxUser = hostarch.Addr(0x7ffffffff000)

// fakeAS records what the memory manager maps into the platform.
type fakeAS struct {
	mu       sync.Mutex
	maps     []mapCall
	unmaps   []hostarch.AddrRange
	released bool
}

type mapCall struct {
	addr   hostarch.Addr
	off    uint64
	length uint64
	at     hostarch.AccessType
}

func (f *fakeAS) MapFile(addr hostarch.Addr, off, length uint64, at hostarch.AccessType) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maps = append(f.maps, mapCall{addr, off, length, at})
	return nil
}

func (f *fakeAS) Unmap(addr hostarch.Addr, length uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unmaps = append(f.unmaps, hostarch.AddrRange{Start: addr, End: addr + hostarch.Addr(length)})
}

func (f *fakeAS) Release() {
	f.mu.Lock()
	f.released = true
	f.mu.Unlock()
}

func (f *fakeAS) lastMap(t *testing.T) mapCall {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.maps) == 0 {
		t.Fatal("no MapFile call")
	}
	return f.maps[len(f.maps)-1]
}

func (f *fakeAS) unmapped(a hostarch.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.unmaps {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

func newMF(t *testing.T) *memory.File {
	t.Helper()
	mf, err := memory.NewSized(4 << 30)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mf.Close() })
	return mf
}

func newMM(t *testing.T) (*MemoryManager, *memory.File) {
	t.Helper()
	mf := newMF(t)
	return NewMemoryManager(mf, maxUser), mf
}

func anon(length uint64, perms hostarch.AccessType) memmap.MMapOpts {
	return memmap.MMapOpts{Length: length, Private: true, Perms: perms, MaxPerms: hostarch.AnyAccess}
}

func mustMMap(t *testing.T, m *MemoryManager, opts memmap.MMapOpts) hostarch.Addr {
	t.Helper()
	a, err := m.MMap(opts)
	if err != nil {
		t.Fatalf("MMap(%+v): %v", opts, err)
	}
	return a
}

func vmaCount(m *MemoryManager) int {
	m.mappingMu.RLock()
	defer m.mappingMu.RUnlock()
	return m.vmas.Len()
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

func TestMMapPlacementAndMerge(t *testing.T) {
	m, mf := newMM(t)
	a := mustMMap(t, m, anon(4*pageSize, hostarch.ReadWrite))
	if a+4*pageSize != m.MMapBase() {
		t.Errorf("first mapping at %v, want just below mmap base %v", a, m.MMapBase())
	}
	b := mustMMap(t, m, anon(2*pageSize, hostarch.ReadWrite))
	if b+2*pageSize != a {
		t.Errorf("second mapping at %v, want below the first (%v)", b, a)
	}
	if n := vmaCount(m); n != 1 {
		t.Errorf("adjacent equal anonymous mappings: %d vmas, want 1 (merged)", n)
	}
	if err := m.MUnmap(a+pageSize, pageSize); err != nil {
		t.Fatal(err)
	}
	if n := vmaCount(m); n != 2 {
		t.Errorf("after punching a page: %d vmas, want 2", n)
	}
	opts := anon(pageSize, hostarch.ReadWrite)
	opts.Fixed, opts.Unmap, opts.Addr = true, true, a+pageSize
	mustMMap(t, m, opts)
	if n := vmaCount(m); n != 1 {
		t.Errorf("after refilling the hole: %d vmas, want 1", n)
	}
	if got := m.VirtualSize(); got != 6*pageSize {
		t.Errorf("VirtualSize = %d, want %d", got, 6*pageSize)
	}
	// Hints are honoured when free.
	h := mustMMap(t, m, memmap.MMapOpts{Length: pageSize, Addr: 0x10000000, Private: true, Perms: hostarch.Read, MaxPerms: hostarch.AnyAccess})
	if h != 0x10000000 {
		t.Errorf("hinted mapping at %v", h)
	}
	if mf.TotalUsage() != 0 {
		t.Errorf("mmap alone allocated %d bytes", mf.TotalUsage())
	}
}

func TestMMapErrors(t *testing.T) {
	m, _ := newMM(t)
	_, err := m.MMap(anon(0, hostarch.ReadWrite))
	wantErr(t, "zero length", err, unix.EINVAL)

	o := anon(pageSize, hostarch.ReadWrite)
	o.Fixed, o.Unmap, o.Addr = true, true, 0x10000001
	_, err = m.MMap(o)
	wantErr(t, "misaligned fixed", err, unix.EINVAL)

	o.Addr = maxUser - pageSize
	o.Length = 2 * pageSize
	_, err = m.MMap(o)
	wantErr(t, "fixed beyond max", err, unix.ENOMEM)

	_, err = m.MMap(anon(uint64(maxUser)+pageSize, hostarch.ReadWrite))
	wantErr(t, "huge length", err, unix.ENOMEM)
	_, err = m.MMap(anon(^uint64(0), hostarch.ReadWrite))
	wantErr(t, "overflowing length", err, unix.ENOMEM)

	o = anon(pageSize, hostarch.ReadWrite)
	o.Offset = 123
	_, err = m.MMap(o)
	wantErr(t, "misaligned offset", err, unix.EINVAL)

	o = anon(pageSize, hostarch.ReadWrite)
	o.MaxPerms = hostarch.Read
	_, err = m.MMap(o)
	wantErr(t, "perms beyond max", err, unix.EACCES)
}

func TestFixedNoReplace(t *testing.T) {
	m, _ := newMM(t)
	a := mustMMap(t, m, anon(4*pageSize, hostarch.ReadWrite))
	if _, err := m.CopyOut(a, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	o := anon(pageSize, hostarch.ReadWrite)
	o.Fixed, o.Addr = true, a+2*pageSize
	_, err := m.MMap(o)
	wantErr(t, "NOREPLACE over a mapping", err, unix.EEXIST)

	o.Addr = a + 4*pageSize
	if got := mustMMap(t, m, o); got != a+4*pageSize {
		t.Errorf("NOREPLACE in a free range at %v", got)
	}

	// MAP_FIXED replaces: the old contents are gone.
	o = anon(pageSize, hostarch.ReadWrite)
	o.Fixed, o.Unmap, o.Addr = true, true, a
	mustMMap(t, m, o)
	buf := make([]byte, 5)
	if _, err := m.CopyIn(a, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, make([]byte, 5)) {
		t.Errorf("MAP_FIXED over data reads %q, want zeros", buf)
	}
}

func TestMProtect(t *testing.T) {
	m, _ := newMM(t)
	a := mustMMap(t, m, anon(4*pageSize, hostarch.ReadWrite))
	if err := m.MProtect(a+pageSize, pageSize, hostarch.Read, false); err != nil {
		t.Fatal(err)
	}
	if n := vmaCount(m); n != 3 {
		t.Errorf("mprotect of a middle page: %d vmas, want 3", n)
	}
	if _, err := m.CopyOut(a+pageSize, []byte{1}); !errors.Is(err, unix.EFAULT) {
		t.Errorf("CopyOut to read-only page: %v, want EFAULT", err)
	}
	if _, err := m.CopyOut(a, []byte{1}); err != nil {
		t.Errorf("CopyOut to writable page: %v", err)
	}
	if err := m.MProtect(a+pageSize, pageSize, hostarch.ReadWrite, false); err != nil {
		t.Fatal(err)
	}
	if n := vmaCount(m); n != 1 {
		t.Errorf("after restoring: %d vmas, want 1 (merged)", n)
	}

	// Beyond max perms.
	o := anon(pageSize, hostarch.Read)
	o.MaxPerms = hostarch.Read
	r := mustMMap(t, m, o)
	wantErr(t, "mprotect beyond max perms", m.MProtect(r, pageSize, hostarch.ReadWrite, false), unix.EACCES)

	// A hole in the range.
	wantErr(t, "mprotect over a hole", m.MProtect(a, 6*pageSize, hostarch.Read, false), unix.ENOMEM)
	wantErr(t, "mprotect unaligned", m.MProtect(a+1, pageSize, hostarch.Read, false), unix.EINVAL)
	wantErr(t, "mprotect of nothing", m.MProtect(0x20000000, pageSize, hostarch.Read, false), unix.ENOMEM)
	if err := m.MProtect(a, 0, hostarch.Read, false); err != nil {
		t.Errorf("zero-length mprotect: %v", err)
	}
}

func TestMProtectReduceUnmapsPlatform(t *testing.T) {
	m, _ := newMM(t)
	as := &fakeAS{}
	m.SetAddressSpace(as)
	a := mustMMap(t, m, anon(pageSize, hostarch.ReadWrite))
	if err := m.HandleFault(a, hostarch.Write, false); err != nil {
		t.Fatal(err)
	}
	if err := m.MProtect(a, pageSize, hostarch.Read, false); err != nil {
		t.Fatal(err)
	}
	if !as.unmapped(a) {
		t.Error("removing write did not unmap the page from the platform")
	}
	wantErr(t, "write fault on read-only page", m.HandleFault(a, hostarch.Write, true), unix.EFAULT)
}

func TestMRemap(t *testing.T) {
	m, _ := newMM(t)
	a := mustMMap(t, m, anon(2*pageSize, hostarch.ReadWrite))
	data := bytes.Repeat([]byte("veil"), pageSize/2) // two pages
	if _, err := m.CopyOut(a, data); err != nil {
		t.Fatal(err)
	}
	// Block growth in place with a mapping right after.
	o := anon(pageSize, hostarch.Read)
	o.Fixed, o.Addr = true, a+2*pageSize
	mustMMap(t, m, o)

	_, err := m.MRemap(a, 2*pageSize, 4*pageSize, 0, 0)
	wantErr(t, "grow without room or MAYMOVE", err, unix.ENOMEM)

	b, err := m.MRemap(a, 2*pageSize, 4*pageSize, MREMAP_MAYMOVE, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b == a {
		t.Fatal("did not move")
	}
	got := make([]byte, len(data))
	if _, err := m.CopyIn(b, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Error("contents not preserved by move")
	}
	if _, err := m.CopyIn(a, got[:1]); !errors.Is(err, unix.EFAULT) {
		t.Errorf("old range still readable after move: %v", err)
	}
	tail := make([]byte, 2*pageSize)
	if _, err := m.CopyIn(b+2*pageSize, tail); err != nil || !bytes.Equal(tail, make([]byte, len(tail))) {
		t.Errorf("grown tail: err %v or not zero", err)
	}

	// Shrink in place.
	if c, err := m.MRemap(b, 4*pageSize, pageSize, 0, 0); err != nil || c != b {
		t.Errorf("shrink = %v, %v", c, err)
	}
	if _, err := m.CopyIn(b+pageSize, got[:1]); !errors.Is(err, unix.EFAULT) {
		t.Errorf("shrunk-off page readable: %v", err)
	}

	// Grow in place when there is room.
	if c, err := m.MRemap(b, pageSize, 3*pageSize, 0, 0); err != nil || c != b {
		t.Errorf("grow in place = %v, %v", c, err)
	}

	// MREMAP_FIXED moves to the given address, replacing what is there.
	dst := hostarch.Addr(0x40000000)
	if c, err := m.MRemap(b, pageSize, pageSize, MREMAP_MAYMOVE|MREMAP_FIXED, dst); err != nil || c != dst {
		t.Fatalf("MREMAP_FIXED = %v, %v", c, err)
	}
	if _, err := m.CopyIn(dst, got[:4]); err != nil || string(got[:4]) != "veil" {
		t.Errorf("MREMAP_FIXED contents %q, %v", got[:4], err)
	}

	_, err = m.MRemap(dst, pageSize, pageSize, MREMAP_FIXED, 0x50000000)
	wantErr(t, "FIXED without MAYMOVE", err, unix.EINVAL)
	_, err = m.MRemap(dst, pageSize, pageSize, 0x80, 0)
	wantErr(t, "bad flags", err, unix.EINVAL)
	_, err = m.MRemap(0x60000000, pageSize, 2*pageSize, MREMAP_MAYMOVE, 0)
	wantErr(t, "unmapped old address", err, unix.EFAULT)
	_, err = m.MRemap(dst, 8*pageSize, 9*pageSize, MREMAP_MAYMOVE, 0)
	wantErr(t, "old range beyond vma", err, unix.EFAULT)
	_, err = m.MRemap(dst, pageSize, 0, MREMAP_MAYMOVE, 0)
	wantErr(t, "zero new size", err, unix.EINVAL)
	_, err = m.MRemap(dst, pageSize, 2*pageSize, MREMAP_MAYMOVE|MREMAP_FIXED, dst+pageSize/2)
	wantErr(t, "misaligned new address", err, unix.EINVAL)
}

func TestMRemapDontUnmap(t *testing.T) {
	m, _ := newMM(t)
	a := mustMMap(t, m, anon(pageSize, hostarch.ReadWrite))
	m.CopyOut(a, []byte("x"))
	b, err := m.MRemap(a, pageSize, pageSize, MREMAP_MAYMOVE|MREMAP_DONTUNMAP, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := []byte{0}
	if _, err := m.CopyIn(b, buf); err != nil || buf[0] != 'x' {
		t.Errorf("moved page %q, %v", buf, err)
	}
	if _, err := m.CopyIn(a, buf); err != nil || buf[0] != 0 {
		t.Errorf("old range after DONTUNMAP: %q, %v; want mapped and empty", buf, err)
	}
}

func TestForkCOWCopy(t *testing.T) {
	m, mf := newMM(t)
	a := mustMMap(t, m, anon(4*pageSize, hostarch.ReadWrite))
	m.CopyOut(a, []byte("parent"))
	before := mf.TotalUsage()
	c, err := m.Fork()
	if err != nil {
		t.Fatal(err)
	}
	if got := mf.TotalUsage(); got != before {
		t.Errorf("fork copied memory: usage %d, want %d", got, before)
	}
	if _, err := c.CopyOut(a, []byte("child!")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	m.CopyIn(a, buf)
	if string(buf) != "parent" {
		t.Errorf("parent sees %q after child wrote", buf)
	}
	c.CopyIn(a, buf)
	if string(buf) != "child!" {
		t.Errorf("child sees %q", buf)
	}
	if got := mf.TotalUsage(); got != 2*before {
		t.Errorf("usage %d after one COW break, want %d", got, 2*before)
	}
	c.DecUsers()
	m.DecUsers()
	if got := mf.TotalUsage(); got != 0 {
		t.Errorf("leaked %d bytes after releasing both", got)
	}
}

func TestForkCOWFault(t *testing.T) {
	m, mf := newMM(t)
	pas := &fakeAS{}
	m.SetAddressSpace(pas)
	a := mustMMap(t, m, anon(pageSize, hostarch.ReadWrite))
	if err := m.HandleFault(a, hostarch.Write, false); err != nil {
		t.Fatal(err)
	}
	first := pas.lastMap(t)
	if first.addr != a || !first.at.Write {
		t.Fatalf("first fault mapped %+v", first)
	}
	m.CopyOut(a, []byte("before"))

	c, err := m.Fork()
	if err != nil {
		t.Fatal(err)
	}
	cas := &fakeAS{}
	c.SetAddressSpace(cas)
	if !pas.unmapped(a) {
		t.Error("fork left the parent's writable mapping in place")
	}
	// Child read fault: the shared page, mapped read-only.
	if err := c.HandleFault(a, hostarch.Read, false); err != nil {
		t.Fatal(err)
	}
	cr := cas.lastMap(t)
	if cr.off != first.off || cr.at.Write {
		t.Errorf("child read fault mapped %+v, want shared page %#x read-only", cr, first.off)
	}
	// Child write on the present read-only page (platform unsure of the
	// access type): copy-on-write to a new page, mapped writable.
	if err := c.HandleFault(a, hostarch.NoAccess, true); err != nil {
		t.Fatal(err)
	}
	cw := cas.lastMap(t)
	if cw.off == first.off || !cw.at.Write || cw.addr != a {
		t.Errorf("child COW fault mapped %+v", cw)
	}
	dst, _ := mf.MapInternal(cw.off, 6)
	if string(dst) != "before" {
		t.Errorf("COW copy holds %q", dst)
	}
	copy(dst, "after!") // the child's write, through the platform mapping
	buf := make([]byte, 6)
	m.CopyIn(a, buf)
	if string(buf) != "before" {
		t.Errorf("parent sees the child's write: %q", buf)
	}
	// The parent is now the only holder: its write fault reuses the page.
	if err := m.HandleFault(a, hostarch.Write, false); err != nil {
		t.Fatal(err)
	}
	if pw := pas.lastMap(t); pw.off != first.off || !pw.at.Write {
		t.Errorf("parent write after child's copy mapped %+v, want original page writable", pw)
	}
	c.DecUsers()
	if !cas.released {
		t.Error("child's platform address space not released")
	}
	m.DecUsers()
	if got := mf.TotalUsage(); got != 0 {
		t.Errorf("leaked %d bytes", got)
	}
}

func TestForkSharedAndDontFork(t *testing.T) {
	m, mf := newMM(t)
	sh := mustMMap(t, m, memmap.MMapOpts{Length: pageSize, Perms: hostarch.ReadWrite, MaxPerms: hostarch.AnyAccess})
	df := mustMMap(t, m, anon(pageSize, hostarch.ReadWrite))
	wipe := mustMMap(t, m, anon(pageSize, hostarch.Read))
	m.CopyOut(df, []byte("x"))
	if err := m.MAdvise(df, pageSize, unix.MADV_DONTFORK); err != nil {
		t.Fatal(err)
	}
	if err := m.MProtect(wipe, pageSize, hostarch.ReadWrite, false); err != nil {
		t.Fatal(err)
	}
	m.CopyOut(wipe, []byte("w"))
	if err := m.MAdvise(wipe, pageSize, unix.MADV_WIPEONFORK); err != nil {
		t.Fatal(err)
	}
	c, err := m.Fork()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CopyOut(sh, []byte("shared")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	m.CopyIn(sh, buf)
	if string(buf) != "shared" {
		t.Errorf("MAP_SHARED anonymous memory not shared across fork: %q", buf)
	}
	if _, err := c.CopyIn(df, buf[:1]); !errors.Is(err, unix.EFAULT) {
		t.Errorf("MADV_DONTFORK range present in child: %v", err)
	}
	if _, err := c.CopyIn(wipe, buf[:1]); err != nil || buf[0] != 0 {
		t.Errorf("MADV_WIPEONFORK range in child: %q, %v; want zero", buf[:1], err)
	}
	c.DecUsers()
	m.DecUsers()
	if got := mf.TotalUsage(); got != 0 {
		t.Errorf("leaked %d bytes", got)
	}
}

func TestMAdviseDontNeed(t *testing.T) {
	m, mf := newMM(t)
	a := mustMMap(t, m, anon(8*pageSize, hostarch.ReadWrite))
	m.CopyOut(a, bytes.Repeat([]byte{7}, 8*pageSize))
	before := mf.TotalUsage()
	if err := m.MAdvise(a, 8*pageSize, unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if mf.TotalUsage() >= before {
		t.Errorf("DONTNEED freed nothing: %d -> %d", before, mf.TotalUsage())
	}
	buf := make([]byte, 8*pageSize)
	m.CopyIn(a, buf)
	if !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Error("DONTNEED memory not zero")
	}
	wantErr(t, "bad advice", m.MAdvise(a, pageSize, 999), unix.EINVAL)
	wantErr(t, "unaligned", m.MAdvise(a+1, pageSize, unix.MADV_NORMAL), unix.EINVAL)
	wantErr(t, "unmapped", m.MAdvise(0x30000000, pageSize, unix.MADV_WILLNEED), unix.ENOMEM)
	if err := m.MAdvise(a, pageSize, unix.MADV_SEQUENTIAL); err != nil {
		t.Errorf("hint: %v", err)
	}
}

func TestReservationCommitsNothing(t *testing.T) {
	m, mf := newMM(t)
	as := &fakeAS{}
	m.SetAddressSpace(as)
	o := memmap.MMapOpts{Length: 64 << 30, Private: true, Perms: hostarch.NoAccess, MaxPerms: hostarch.AnyAccess}
	a := mustMMap(t, m, o)
	if got := mf.TotalUsage(); got != 0 {
		t.Errorf("64 GiB PROT_NONE reservation uses %d bytes", got)
	}
	wantErr(t, "fault in PROT_NONE", m.HandleFault(a+12345, hostarch.Read, false), unix.EFAULT)
	if _, err := m.CopyIn(a, make([]byte, 10)); !errors.Is(err, unix.EFAULT) {
		t.Errorf("CopyIn from PROT_NONE: %v", err)
	}
	if err := m.MProtect(a+(32<<30), pageSize, hostarch.ReadWrite, false); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CopyOut(a+(32<<30), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := mf.TotalUsage(); got == 0 || got > maxAllocChunk {
		t.Errorf("after touching one page usage is %d", got)
	}
	if len(as.maps) != 0 {
		t.Errorf("copy mapped into the platform: %+v", as.maps)
	}
}

func TestCopyFaults(t *testing.T) {
	m, _ := newMM(t)
	a := mustMMap(t, m, anon(2*pageSize, hostarch.ReadWrite))
	r := mustMMap(t, m, anon(pageSize, hostarch.Read))
	if r+pageSize != a {
		t.Fatalf("layout: r=%v a=%v", r, a)
	}
	wantErr(t, "write to read-only", func() error { _, err := m.CopyOut(r, []byte{1}); return err }(), unix.EFAULT)
	// A copy running off the end of the mapping copies the good prefix.
	n, err := m.CopyOut(a+2*pageSize-3, []byte("abcdef"))
	if n != 3 || !errors.Is(err, unix.EFAULT) {
		t.Errorf("partial CopyOut = %d, %v; want 3, EFAULT", n, err)
	}
	n, err = m.CopyIn(a+2*pageSize-3, make([]byte, 6))
	if n != 3 || !errors.Is(err, unix.EFAULT) {
		t.Errorf("partial CopyIn = %d, %v", n, err)
	}
	for _, addr := range []hostarch.Addr{0, 0x1000, maxUser, ^hostarch.Addr(0) - 2} {
		if _, err := m.CopyIn(addr, make([]byte, 8)); !errors.Is(err, unix.EFAULT) {
			t.Errorf("CopyIn(%v) = %v, want EFAULT", addr, err)
		}
	}
	// Read-only memory is readable.
	if _, err := m.CopyIn(r, make([]byte, 8)); err != nil {
		t.Errorf("CopyIn of read-only page: %v", err)
	}
	m.CopyOut(a, []byte("name\x00rest"))
	if s, err := m.CopyInString(a, 64); err != nil || s != "name" {
		t.Errorf("CopyInString = %q, %v", s, err)
	}
	if _, err := m.CopyInString(a+5, 3); !errors.Is(err, unix.ENAMETOOLONG) {
		t.Errorf("CopyInString without NUL: %v", err)
	}
	if n, err := m.ZeroOut(a, 4); n != 4 || err != nil {
		t.Errorf("ZeroOut = %d, %v", n, err)
	}
}

func TestBlocksPinOutlivesMunmap(t *testing.T) {
	m, mf := newMM(t)
	a := mustMMap(t, m, anon(2*pageSize, hostarch.ReadWrite))
	bs, release, err := m.Blocks(hostarch.AddrRange{Start: a, End: a + 2*pageSize}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || len(bs[0]) != 2*pageSize {
		t.Fatalf("blocks %d", len(bs))
	}
	if err := m.MUnmap(a, 2*pageSize); err != nil {
		t.Fatal(err)
	}
	if mf.TotalUsage() == 0 {
		t.Fatal("pinned pages freed by munmap")
	}
	bs[0][0] = 1 // still ours to touch
	release()
	release() // idempotent
	if got := mf.TotalUsage(); got != 0 {
		t.Errorf("usage %d after release", got)
	}
}

func TestConcurrentCopyAndMunmap(t *testing.T) {
	m, mf := newMM(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	addr := mustMMap(t, m, anon(16*pageSize, hostarch.ReadWrite))
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 3*pageSize)
			for {
				select {
				case <-stop:
					return
				default:
				}
				m.CopyOut(addr+pageSize/2, buf)
				m.CopyIn(addr, buf)
				m.HandleFault(addr+5*pageSize, hostarch.Write, false)
			}
		}()
	}
	for i := 0; i < 200; i++ {
		m.MUnmap(addr, 16*pageSize)
		o := anon(16*pageSize, hostarch.ReadWrite)
		o.Fixed, o.Unmap, o.Addr = true, true, addr
		mustMMap(t, m, o)
		m.MAdvise(addr, 8*pageSize, unix.MADV_DONTNEED)
		if c, err := m.Fork(); err == nil {
			c.DecUsers()
		}
	}
	close(stop)
	wg.Wait()
	m.DecUsers()
	if got := mf.TotalUsage(); got != 0 {
		t.Errorf("leaked %d bytes", got)
	}
}

func TestBrk(t *testing.T) {
	m, _ := newMM(t)
	start := hostarch.Addr(0x600000)
	m.BrkSetup(start)
	if got := m.Brk(0); got != start {
		t.Errorf("brk(0) = %v", got)
	}
	if got := m.Brk(start + 3*pageSize + 5); got != start+3*pageSize+5 {
		t.Fatalf("brk grow = %v", got)
	}
	if _, err := m.CopyOut(start+3*pageSize, []byte("heap")); err != nil {
		t.Errorf("heap not writable: %v", err)
	}
	if got := m.Brk(start - pageSize); got != start+3*pageSize+5 {
		t.Errorf("brk below start = %v, want unchanged", got)
	}
	if got := m.Brk(start + pageSize); got != start+pageSize {
		t.Errorf("brk shrink = %v", got)
	}
	if _, err := m.CopyOut(start+2*pageSize, []byte("x")); !errors.Is(err, unix.EFAULT) {
		t.Errorf("shrunk heap still writable: %v", err)
	}
	// A mapping in the way stops growth.
	o := anon(pageSize, hostarch.Read)
	o.Fixed, o.Addr = true, start+8*pageSize
	mustMMap(t, m, o)
	if got := m.Brk(start + 10*pageSize); got != start+pageSize {
		t.Errorf("brk into a mapping = %v, want unchanged", got)
	}
	if !strings.Contains(m.MapsText(), "[heap]") {
		t.Errorf("no [heap] in maps:\n%s", m.MapsText())
	}
}

func TestStackGrowsOnFault(t *testing.T) {
	m, _ := newMM(t)
	as := &fakeAS{}
	m.SetAddressSpace(as)
	top := m.StackTop()
	o := anon(32*pageSize, hostarch.ReadWrite)
	o.Fixed, o.Addr, o.GrowsDown, o.Hint = true, top-32*pageSize, true, "[stack]"
	base := mustMMap(t, m, o)
	below := base - 10*pageSize + 8
	if err := m.HandleFault(below, hostarch.Write, false); err != nil {
		t.Fatalf("fault below stack: %v", err)
	}
	if _, err := m.CopyOut(below, []byte("grown")); err != nil {
		t.Errorf("grown stack not writable: %v", err)
	}
	// Too far: beyond the 8 MiB stack limit.
	wantErr(t, "fault far below stack", m.HandleFault(top-(9<<20), hostarch.Write, false), ErrNoVMA)
	// The guard gap: a mapping just below stops growth.
	o = anon(pageSize, hostarch.ReadWrite)
	o.Fixed, o.Addr = true, below.RoundDown()-guardGap
	mustMMap(t, m, o)
	wantErr(t, "fault into guard gap", m.HandleFault(below.RoundDown()-pageSize, hostarch.Write, false), ErrNoVMA)
	// Copies do not grow stacks.
	if _, err := m.CopyOut(below.RoundDown()-2*pageSize, []byte{1}); !errors.Is(err, unix.EFAULT) {
		t.Errorf("CopyOut below stack: %v", err)
	}
	if sig, code := FaultSignal(ErrNoVMA); sig != SIGSEGV || code != SEGV_MAPERR {
		t.Errorf("FaultSignal(ErrNoVMA) = %d, %d", sig, code)
	}
	if sig, code := FaultSignal(unix.EFAULT); sig != SIGSEGV || code != SEGV_ACCERR {
		t.Errorf("FaultSignal(EFAULT) = %d, %d", sig, code)
	}
}

func TestFaultWindow(t *testing.T) {
	m, _ := newMM(t)
	as := &fakeAS{}
	m.SetAddressSpace(as)
	a := mustMMap(t, m, anon(64*pageSize, hostarch.ReadWrite))
	if err := m.HandleFault(a+20*pageSize+3, hostarch.Read, false); err != nil {
		t.Fatal(err)
	}
	mc := as.lastMap(t)
	if mc.length != faultWindowPages*pageSize || mc.addr > a+20*pageSize || mc.addr+hostarch.Addr(mc.length) <= a+20*pageSize {
		t.Errorf("fault mapped %+v, want a %d-page window around the fault", mc, faultWindowPages)
	}
	if len(as.maps) != 1 {
		t.Errorf("%d MapFile calls for one fault", len(as.maps))
	}
	wantErr(t, "fault with no vma", m.HandleFault(0x1000, hostarch.Read, false), ErrNoVMA)
	wantErr(t, "fault above user range", m.HandleFault(maxUser+pageSize, hostarch.Read, false), ErrNoVMA)
}

// fileMappable is a Mappable of size bytes of memory-file pages.
type fileMappable struct {
	mf   *memory.File
	off  uint64
	size uint64
	refs int
	mu   sync.Mutex
	maps int
}

func newFileMappable(t *testing.T, mf *memory.File, content []byte) *fileMappable {
	n := (uint64(len(content)) + pageMask) &^ uint64(pageMask)
	off, err := mf.Allocate(n)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := mf.MapInternal(off, n)
	copy(b, content)
	return &fileMappable{mf: mf, off: off, size: n, refs: 1}
}

func (f *fileMappable) Translate(off, length uint64, at hostarch.AccessType) ([]memmap.Translation, error) {
	if off >= f.size {
		return nil, unix.EFAULT
	}
	end := min(off+length, f.size)
	var err error
	if off+length > f.size {
		err = unix.EFAULT
	}
	return []memmap.Translation{{Offset: off, Length: end - off, FileOffset: f.off + off, Perms: hostarch.AnyAccess}}, err
}
func (f *fileMappable) AddMapping(memmap.MappingSpace, hostarch.AddrRange, uint64, bool) {
	f.mu.Lock()
	f.maps++
	f.mu.Unlock()
}
func (f *fileMappable) RemoveMapping(memmap.MappingSpace, hostarch.AddrRange, uint64, bool) {
	f.mu.Lock()
	f.maps--
	f.mu.Unlock()
}
func (f *fileMappable) IncRef() { f.mu.Lock(); f.refs++; f.mu.Unlock() }
func (f *fileMappable) DecRef() {
	f.mu.Lock()
	f.refs--
	dead := f.refs == 0
	f.mu.Unlock()
	if dead {
		f.mf.DecRef(f.off, f.size)
	}
}

func TestPrivateFileMapping(t *testing.T) {
	m, mf := newMM(t)
	as := &fakeAS{}
	m.SetAddressSpace(as)
	fm := newFileMappable(t, mf, []byte("file contents"))
	a := mustMMap(t, m, memmap.MMapOpts{Length: 2 * pageSize, Private: true, Perms: hostarch.ReadWrite,
		MaxPerms: hostarch.AnyAccess, Mappable: fm, Name: "/bin/thing", Dev: unix.Mkdev(8, 1), Ino: 42})
	fm.DecRef() // the vma holds its own reference

	if err := m.HandleFault(a, hostarch.Read, false); err != nil {
		t.Fatal(err)
	}
	if mc := as.lastMap(t); mc.off != fm.off || mc.at.Write {
		t.Errorf("read fault on private file page mapped %+v, want the file's page read-only", mc)
	}
	if _, err := m.CopyOut(a, []byte("FILE")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 13)
	m.CopyIn(a, buf)
	if string(buf) != "FILE contents" {
		t.Errorf("private mapping reads %q", buf)
	}
	orig, _ := mf.MapInternal(fm.off, 13)
	if string(orig) != "file contents" {
		t.Errorf("private write reached the file: %q", orig)
	}
	// The second page is past the end of the one-page file: SIGBUS.
	wantErr(t, "fault past EOF", m.HandleFault(a+pageSize, hostarch.Read, false), ErrBusError)
	if sig, _ := FaultSignal(ErrBusError); sig != SIGBUS {
		t.Errorf("FaultSignal(ErrBusError) = %d", sig)
	}
	if _, err := m.CopyIn(a+pageSize, buf); !errors.Is(err, unix.EFAULT) {
		t.Errorf("CopyIn past EOF: %v", err)
	}
	// MADV_DONTNEED drops the private copy: the file shows through again.
	if err := m.MAdvise(a, pageSize, unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	m.CopyIn(a, buf)
	if string(buf) != "file contents" {
		t.Errorf("after DONTNEED reads %q", buf)
	}
	maps := m.MapsText()
	want := "08:01 42"
	if !strings.Contains(maps, want) || !strings.Contains(maps, "/bin/thing") {
		t.Errorf("maps lacks file identity:\n%s", maps)
	}
	m.DecUsers()
	if fm.refs != 0 || fm.maps != 0 {
		t.Errorf("after release: refs %d, mappings %d", fm.refs, fm.maps)
	}
	if got := mf.TotalUsage(); got != 0 {
		t.Errorf("leaked %d bytes", got)
	}
}

func TestMapsTextFormat(t *testing.T) {
	m, _ := newMM(t)
	o := anon(pageSize, hostarch.ReadWrite)
	o.Fixed, o.Addr, o.Hint = true, 0x7ffe331a0000, "[stack]"
	mustMMap(t, m, o)
	o = anon(2*pageSize, hostarch.AccessType{Read: true, Execute: true})
	o.Fixed, o.Addr = true, 0x400000
	mustMMap(t, m, o)
	want := "00400000-00402000 r-xp 00000000 00:00 0 \n" +
		"7ffe331a0000-7ffe331a1000 rw-p 00000000 00:00 0                          [stack]\n"
	if got := m.MapsText(); got != want {
		t.Errorf("MapsText:\n%q\nwant\n%q", got, want)
	}
}

func TestMSyncMLock(t *testing.T) {
	m, _ := newMM(t)
	a := mustMMap(t, m, anon(2*pageSize, hostarch.ReadWrite))
	if err := m.MSync(a, 2*pageSize, MS_SYNC); err != nil {
		t.Error(err)
	}
	wantErr(t, "msync ASYNC|SYNC", m.MSync(a, pageSize, MS_SYNC|MS_ASYNC), unix.EINVAL)
	wantErr(t, "msync unaligned", m.MSync(a+1, pageSize, MS_SYNC), unix.EINVAL)
	wantErr(t, "msync unmapped", m.MSync(a, 3*pageSize, MS_SYNC), unix.ENOMEM)
	if err := m.MLock(a+5, pageSize, true); err != nil {
		t.Error(err)
	}
	wantErr(t, "msync invalidate locked", m.MSync(a, pageSize, MS_INVALIDATE), unix.EBUSY)
	wantErr(t, "DONTNEED on locked", m.MAdvise(a, pageSize, unix.MADV_DONTNEED), unix.EINVAL)
	wantErr(t, "mlock unmapped", m.MLock(a+2*pageSize, 1, true), unix.ENOMEM)
	wantErr(t, "mlockall 0", m.MLockAll(0), unix.EINVAL)
	if err := m.MLockAll(MCL_CURRENT | MCL_FUTURE); err != nil {
		t.Error(err)
	}
	m.MUnlockAll()
}

func TestUsers(t *testing.T) {
	m, _ := newMM(t)
	as := &fakeAS{}
	m.SetAddressSpace(as)
	if !m.IncUsers() {
		t.Fatal("IncUsers on a live mm")
	}
	m.DecUsers()
	if as.released {
		t.Fatal("released with a user left")
	}
	m.DecUsers()
	if !as.released {
		t.Error("last user did not release the address space")
	}
	if m.IncUsers() {
		t.Error("IncUsers revived a released mm")
	}
}

func TestSharedAnonRemap(t *testing.T) {
	m, mf := newMM(t)
	as := &fakeAS{}
	m.SetAddressSpace(as)
	sh := mustMMap(t, m, memmap.MMapOpts{Length: pageSize, Perms: hostarch.ReadWrite, MaxPerms: hostarch.AnyAccess})
	m.CopyOut(sh, []byte("dup"))
	// old_size 0 duplicates a shared mapping.
	d, err := m.MRemap(sh, 0, pageSize, MREMAP_MAYMOVE, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := m.CopyIn(d, buf); err != nil || string(buf) != "dup" {
		t.Errorf("duplicate reads %q, %v", buf, err)
	}
	priv := mustMMap(t, m, anon(pageSize, hostarch.ReadWrite))
	_, err = m.MRemap(priv, 0, pageSize, MREMAP_MAYMOVE, 0)
	wantErr(t, "old_size 0 of a private mapping", err, unix.EINVAL)
	// Growing shared anonymous memory past its object: SIGBUS there.
	g, err := m.MRemap(d, pageSize, 2*pageSize, MREMAP_MAYMOVE, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "fault past shared object", m.HandleFault(g+pageSize, hostarch.Read, false), ErrBusError)
	if !strings.Contains(m.MapsText(), "/dev/zero (deleted)") {
		t.Errorf("maps:\n%s", m.MapsText())
	}
	m.DecUsers()
	if got := mf.TotalUsage(); got != 0 {
		t.Errorf("leaked %d bytes", got)
	}
}

func TestMProtectGrowsDown(t *testing.T) {
	m, _ := newMM(t)
	o := anon(4*pageSize, hostarch.ReadWrite)
	o.GrowsDown = true
	s := mustMMap(t, m, o)
	if err := m.MProtect(s+2*pageSize, pageSize, hostarch.Read, true); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CopyOut(s, []byte{1}); !errors.Is(err, unix.EFAULT) {
		t.Errorf("PROT_GROWSDOWN did not extend to the vma start: %v", err)
	}
	p := mustMMap(t, m, anon(pageSize, hostarch.ReadWrite))
	wantErr(t, "PROT_GROWSDOWN on a plain vma", m.MProtect(p, pageSize, hostarch.Read, true), unix.EINVAL)
}
