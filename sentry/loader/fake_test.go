package loader

import (
	"fmt"
	"os"
	"sort"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
)

// Test fakes: a sparse, byte-backed address space and in-memory files.

const (
	testMaxAddr  = hostarch.Addr(0x7ffffffff000) // x86-64 TASK_SIZE, 4-level paging
	testStackTop = hostarch.Addr(0x7ffffffde000)
	testMMapBase = hostarch.Addr(0x7ffff7fff000) // non-fixed mmaps grow down from here
)

// fakeMappable is the Mappable of a fakeFile: the fake MM reads a file
// mapping's unwritten pages from it.
type fakeMappable struct {
	data []byte
	refs int
}

func (*fakeMappable) Translate(off, length uint64, at hostarch.AccessType) ([]memmap.Translation, error) {
	return nil, unix.EFAULT
}
func (*fakeMappable) AddMapping(memmap.MappingSpace, hostarch.AddrRange, uint64, bool)    {}
func (*fakeMappable) RemoveMapping(memmap.MappingSpace, hostarch.AddrRange, uint64, bool) {}
func (m *fakeMappable) IncRef()                                                           { m.refs++ }
func (m *fakeMappable) DecRef()                                                           { m.refs-- }

type fakeVMA struct {
	start, end hostarch.Addr
	opts       memmap.MMapOpts // Offset is that of start
}

// fakeMM is a MemoryManager over a sparse page map. It behaves as mmap(2)
// does for the flags the loader uses: Fixed without Unmap fails with EEXIST
// on any overlap (MAP_FIXED_NOREPLACE), Fixed with Unmap replaces.
type fakeMM struct {
	vmas  []fakeVMA // sorted, disjoint
	pages map[hostarch.Addr][]byte
	// failAfter, when positive, makes the failAfter'th MMap call fail.
	failAfter int
	calls     int
}

func newFakeMM() *fakeMM { return &fakeMM{pages: map[hostarch.Addr][]byte{}} }

func (mm *fakeMM) overlaps(start, end hostarch.Addr) bool {
	for _, v := range mm.vmas {
		if v.start < end && start < v.end {
			return true
		}
	}
	return false
}

func (mm *fakeMM) MMap(opts memmap.MMapOpts) (hostarch.Addr, error) {
	mm.calls++
	if mm.failAfter > 0 && mm.calls >= mm.failAfter {
		return 0, unix.ENOMEM
	}
	if opts.Length == 0 || opts.Length%hostarch.PageSize != 0 || opts.Offset%hostarch.PageSize != 0 {
		return 0, unix.EINVAL
	}
	var start hostarch.Addr
	if opts.Fixed {
		start = opts.Addr
		if !start.IsPageAligned() {
			return 0, unix.EINVAL
		}
		end, ok := start.AddLength(opts.Length)
		if !ok || end > testMaxAddr || start < hostarch.PageSize {
			return 0, unix.ENOMEM
		}
		if opts.Unmap {
			mm.MUnmap(start, opts.Length)
		} else if mm.overlaps(start, end) {
			return 0, unix.EEXIST
		}
	} else {
		// Top-down first fit below testMMapBase.
		top := testMMapBase
		for {
			if uint64(top) < opts.Length {
				return 0, unix.ENOMEM
			}
			cand := top - hostarch.Addr(opts.Length)
			clash := false
			for _, v := range mm.vmas {
				if v.start < top && cand < v.end {
					top, clash = v.start, true
				}
			}
			if !clash {
				start = cand
				break
			}
		}
	}
	if opts.Mappable != nil {
		opts.Mappable.IncRef()
	}
	mm.vmas = append(mm.vmas, fakeVMA{start: start, end: start + hostarch.Addr(opts.Length), opts: opts})
	sort.Slice(mm.vmas, func(i, j int) bool { return mm.vmas[i].start < mm.vmas[j].start })
	return start, nil
}

func (mm *fakeMM) MUnmap(addr hostarch.Addr, length uint64) error {
	end := addr + hostarch.Addr(length)
	var out []fakeVMA
	for _, v := range mm.vmas {
		if v.end <= addr || end <= v.start {
			out = append(out, v)
			continue
		}
		if v.start < addr {
			l := v
			l.end = addr
			out = append(out, l)
			if v.opts.Mappable != nil {
				v.opts.Mappable.IncRef()
			}
		}
		if end < v.end {
			r := v
			r.opts.Offset += uint64(end - v.start)
			r.start = end
			out = append(out, r)
			if v.opts.Mappable != nil {
				v.opts.Mappable.IncRef()
			}
		}
		if v.opts.Mappable != nil {
			v.opts.Mappable.DecRef()
		}
	}
	mm.vmas = out
	for a := range mm.pages {
		if a >= addr && a < end {
			delete(mm.pages, a)
		}
	}
	return nil
}

func (mm *fakeMM) find(a hostarch.Addr) *fakeVMA {
	for i := range mm.vmas {
		if mm.vmas[i].start <= a && a < mm.vmas[i].end {
			return &mm.vmas[i]
		}
	}
	return nil
}

// page returns the contents of the page at a, materialising it from the
// mapping (file contents past EOF and anonymous memory read as zeros).
func (mm *fakeMM) page(a hostarch.Addr, create bool) ([]byte, error) {
	pa := a.RoundDown()
	if p, ok := mm.pages[pa]; ok {
		return p, nil
	}
	v := mm.find(pa)
	if v == nil {
		return nil, unix.EFAULT
	}
	p := make([]byte, hostarch.PageSize)
	if fm, ok := v.opts.Mappable.(*fakeMappable); ok {
		off := v.opts.Offset + uint64(pa-v.start)
		if off < uint64(len(fm.data)) {
			copy(p, fm.data[off:])
		}
	}
	if create {
		mm.pages[pa] = p
	}
	return p, nil
}

func (mm *fakeMM) CopyOut(addr hostarch.Addr, src []byte) (int, error) {
	done := 0
	for done < len(src) {
		a := addr + hostarch.Addr(done)
		p, err := mm.page(a, true)
		if err != nil {
			return done, err
		}
		done += copy(p[a-a.RoundDown():], src[done:])
	}
	return done, nil
}

func (mm *fakeMM) CopyIn(addr hostarch.Addr, dst []byte) (int, error) {
	done := 0
	for done < len(dst) {
		a := addr + hostarch.Addr(done)
		p, err := mm.page(a, false)
		if err != nil {
			return done, err
		}
		done += copy(dst[done:], p[a-a.RoundDown():])
	}
	return done, nil
}

func (mm *fakeMM) read(t *testing.T, addr hostarch.Addr, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := mm.CopyIn(addr, b); err != nil {
		t.Fatalf("reading %d bytes at %v: %v", n, addr, err)
	}
	return b
}

func (mm *fakeMM) word(t *testing.T, addr hostarch.Addr) uint64 {
	t.Helper()
	b := mm.read(t, addr, 8)
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func (mm *fakeMM) cstring(t *testing.T, addr hostarch.Addr) string {
	t.Helper()
	var s []byte
	for {
		b := mm.read(t, addr+hostarch.Addr(len(s)), 1)
		if b[0] == 0 {
			return string(s)
		}
		s = append(s, b[0])
		if len(s) > 1<<20 {
			t.Fatalf("unterminated string at %v", addr)
		}
	}
}

func (mm *fakeMM) String() string {
	s := ""
	for _, v := range mm.vmas {
		kind := "anon"
		if v.opts.Mappable != nil {
			kind = fmt.Sprintf("file %s+%#x", v.opts.Name, v.opts.Offset)
		}
		s += fmt.Sprintf("%v-%v %v %s %s\n", v.start, v.end, v.opts.Perms, kind, v.opts.Hint)
	}
	return s
}

// fakeFile is an executable held in memory.
type fakeFile struct {
	fs     *fakeFS
	name   string
	data   []byte
	closed bool
}

func (f *fakeFile) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, unix.EBADF
	}
	if off < 0 {
		return 0, unix.EINVAL
	}
	if off >= int64(len(f.data)) {
		return 0, errEOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, errEOF
	}
	return n, nil
}

func (f *fakeFile) ConfigureMMap(opts *memmap.MMapOpts) error {
	opts.Mappable = f.fs.mappable(f.name, f.data)
	opts.Name = f.name
	return nil
}

func (f *fakeFile) Size() (int64, error) { return int64(len(f.data)), nil }

func (f *fakeFile) Close() error {
	if f.closed {
		panic("double close of " + f.name)
	}
	f.closed = true
	f.fs.open--
	return nil
}

// fakeFS is an Opener over named byte slices; names absent give ENOENT,
// names in noExec give EACCES. host, when set, serves other absolute paths
// from the host file system (for real binaries such as /bin/true).
type fakeFS struct {
	files     map[string][]byte
	noExec    map[string]bool
	host      bool
	open      int
	mappables map[string]*fakeMappable
}

func newFakeFS() *fakeFS {
	return &fakeFS{files: map[string][]byte{}, noExec: map[string]bool{}, mappables: map[string]*fakeMappable{}}
}

func (fs *fakeFS) mappable(name string, data []byte) *fakeMappable {
	m, ok := fs.mappables[name]
	if !ok {
		m = &fakeMappable{data: data}
		fs.mappables[name] = m
	}
	return m
}

func (fs *fakeFS) Open(path string) (File, error) {
	if fs.noExec[path] {
		return nil, unix.EACCES
	}
	data, ok := fs.files[path]
	if !ok && fs.host {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, unix.ENOENT
		}
		fs.files[path] = b
		data, ok = b, true
	}
	if !ok {
		return nil, unix.ENOENT
	}
	fs.open++
	return &fakeFile{fs: fs, name: path, data: data}, nil
}
