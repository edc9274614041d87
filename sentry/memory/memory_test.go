package memory

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

const pg = 4096

func newFile(t *testing.T, size uint64) *File {
	t.Helper()
	f, err := NewSized(size)
	if err != nil {
		t.Fatalf("NewSized: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// allocatedBlocks returns how many 512-byte blocks the host has backing the
// memfd: the real memory cost of the file.
func allocatedBlocks(t *testing.T, f *File) int64 {
	var st unix.Stat_t
	if err := unix.Fstat(f.FD(), &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks
}

func TestAllocateContiguousAndZeroed(t *testing.T) {
	f := newFile(t, 2*ChunkSize)
	a, err := f.Allocate(4 * pg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Allocate(2 * pg)
	if err != nil {
		t.Fatal(err)
	}
	if b != a+4*pg {
		t.Errorf("second allocation at %#x, want bump %#x", b, a+4*pg)
	}
	if got := f.TotalUsage(); got != 6*pg {
		t.Errorf("TotalUsage = %d, want %d", got, 6*pg)
	}
	m, err := f.MapInternal(a, 4*pg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m, make([]byte, 4*pg)) {
		t.Error("new allocation not zero")
	}
	for _, bad := range []uint64{0, 1, pg + 1} {
		if _, err := f.Allocate(bad); !errors.Is(err, unix.EINVAL) {
			t.Errorf("Allocate(%d) = %v, want EINVAL", bad, err)
		}
	}
}

func TestFreeZeroesAndReleasesMemory(t *testing.T) {
	f := newFile(t, ChunkSize)
	off, err := f.Allocate(64 * pg)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := f.MapInternal(off, 64*pg)
	for i := range m {
		m[i] = 0xab
	}
	before := allocatedBlocks(t, f)
	if before < 64*pg/512 {
		t.Fatalf("memfd has %d blocks after writing 64 pages", before)
	}
	f.DecRef(off, 64*pg)
	if got := f.TotalUsage(); got != 0 {
		t.Errorf("TotalUsage after free = %d", got)
	}
	if after := allocatedBlocks(t, f); after >= before {
		t.Errorf("blocks %d -> %d: hole not punched", before, after)
	}
	// The range is reused and reads back zero.
	again, err := f.Allocate(64 * pg)
	if err != nil {
		t.Fatal(err)
	}
	if again != off {
		t.Errorf("reallocated at %#x, want reuse of %#x", again, off)
	}
	m, _ = f.MapInternal(again, 64*pg)
	if !bytes.Equal(m, make([]byte, 64*pg)) {
		t.Error("reused memory not zero")
	}
}

func TestRefCountsPartialRanges(t *testing.T) {
	f := newFile(t, ChunkSize)
	off, _ := f.Allocate(8 * pg)
	f.IncRef(off+2*pg, 3*pg) // pages 2,3,4 now at 2
	if c := f.RefCount(off + 3*pg); c != 2 {
		t.Errorf("RefCount(page 3) = %d, want 2", c)
	}
	if c := f.RefCount(off + 5*pg); c != 1 {
		t.Errorf("RefCount(page 5) = %d, want 1", c)
	}
	if f.Exclusive(off, 8*pg) {
		t.Error("Exclusive over shared pages")
	}
	if !f.Exclusive(off+5*pg, 3*pg) {
		t.Error("not Exclusive over pages with count 1")
	}
	// Free everything but the shared middle: usage drops to 3 pages.
	f.DecRef(off, 8*pg)
	if got := f.TotalUsage(); got != 3*pg {
		t.Errorf("TotalUsage = %d, want %d", got, 3*pg)
	}
	if c := f.RefCount(off); c != 0 {
		t.Errorf("freed page has count %d", c)
	}
	f.DecRef(off+2*pg, 3*pg)
	if got := f.TotalUsage(); got != 0 {
		t.Errorf("TotalUsage = %d, want 0", got)
	}
	if f.refs.Len() != 0 {
		t.Errorf("refs not empty: %d spans", f.refs.Len())
	}
	// Everything is free again, so the bump pointer is back at the start.
	if f.bump != 0 || f.free.Len() != 0 {
		t.Errorf("bump=%#x free=%d after freeing all", f.bump, f.free.Len())
	}
}

func TestRefSpansMerge(t *testing.T) {
	f := newFile(t, ChunkSize)
	off, _ := f.Allocate(16 * pg)
	for i := uint64(0); i < 16; i++ {
		f.IncRef(off+i*pg, pg)
	}
	if n := f.refs.Len(); n != 1 {
		t.Errorf("16 pages with equal counts use %d spans, want 1", n)
	}
}

func TestMapInternalAcrossChunks(t *testing.T) {
	f := newFile(t, 2*ChunkSize)
	// Force the bump pointer near the end of chunk 0.
	first, err := f.Allocate(ChunkSize - 2*pg)
	if err != nil {
		t.Fatal(err)
	}
	off, err := f.Allocate(4 * pg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.MapInternal(off, 4*pg)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 4*pg {
		t.Fatalf("len %d", len(m))
	}
	for i := range m {
		m[i] = byte(i)
	}
	// Read it back through the host file to check it really is the file.
	buf := make([]byte, 4*pg)
	if _, err := unix.Pread(f.FD(), buf, int64(off)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, m) {
		t.Error("view across chunk boundary does not alias the file")
	}
	f.DecRef(first, ChunkSize-2*pg)
	f.DecRef(off, 4*pg)
	if _, err := f.MapInternal(2*ChunkSize-pg, 2*pg); !errors.Is(err, unix.EFAULT) {
		t.Errorf("MapInternal past end = %v, want EFAULT", err)
	}
}

func TestExhaustion(t *testing.T) {
	f := newFile(t, ChunkSize)
	if _, err := f.Allocate(2 * ChunkSize); !errors.Is(err, unix.ENOMEM) {
		t.Errorf("Allocate beyond size = %v, want ENOMEM", err)
	}
}

func TestConcurrentAllocFree(t *testing.T) {
	f := newFile(t, ChunkSize)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				n := uint64(1+(i+g)%5) * pg
				off, err := f.Allocate(n)
				if err != nil {
					t.Error(err)
					return
				}
				m, _ := f.MapInternal(off, n)
				m[0] = byte(g)
				f.IncRef(off, n)
				f.DecRef(off, n)
				if m[0] != byte(g) {
					t.Error("page changed under its owner")
				}
				f.DecRef(off, n)
			}
		}(g)
	}
	wg.Wait()
	if got := f.TotalUsage(); got != 0 {
		t.Errorf("TotalUsage = %d after all freed", got)
	}
}
