package mm

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
)

// testSeg is a segment-like Mappable over SharedMemory that counts the
// vmas referring to it.
type testSeg struct {
	*SharedMemory
	size uint64
	refs int
}

func (s *testSeg) AddMapping(memmap.MappingSpace, hostarch.AddrRange, uint64, bool)    {}
func (s *testSeg) RemoveMapping(memmap.MappingSpace, hostarch.AddrRange, uint64, bool) {}
func (s *testSeg) IncRef()                                                             { s.refs++ }
func (s *testSeg) DecRef()                                                             { s.refs-- }

func TestDetachSegment(t *testing.T) {
	m, mf := newMM(t)
	seg := &testSeg{SharedMemory: NewSharedMemory(mf, 3*pageSize), size: 3*pageSize - 100}
	defer seg.Release()
	isSeg := func(mp memmap.Mappable) (uint64, bool) {
		s, ok := mp.(*testSeg)
		if !ok {
			return 0, false
		}
		return s.size, true
	}
	attach := func(at hostarch.Addr) hostarch.Addr {
		return mustMMap(t, m, memmap.MMapOpts{Length: seg.size, Addr: at, Fixed: true, Perms: hostarch.ReadWrite, MaxPerms: hostarch.AnyAccess, Mappable: seg})
	}
	a := attach(0x100000000)
	b := attach(0x200000000)
	if seg.refs != 2 {
		t.Fatalf("two attachments hold %d references", seg.refs)
	}
	if err := m.MProtect(a+pageSize, pageSize, hostarch.Read, false); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []hostarch.Addr{a + pageSize, a - pageSize, a + 1} {
		if _, err := m.DetachSegment(bad, isSeg); err != unix.EINVAL {
			t.Errorf("DetachSegment(%#x): %v, want EINVAL", bad, err)
		}
	}
	// A split attachment goes as a whole, and only it.
	got, err := m.DetachSegment(a, isSeg)
	if err != nil || got != memmap.Mappable(seg) {
		t.Fatalf("DetachSegment(a) = %v, %v", got, err)
	}
	for _, at := range []hostarch.Addr{a, a + pageSize, a + 2*pageSize} {
		if m.findVMALocked(at) != nil {
			t.Errorf("a piece of the attachment is left at %#x", at)
		}
	}
	if seg.refs != 1 || m.findVMALocked(b) == nil {
		t.Errorf("the other attachment: refs %d", seg.refs)
	}
	if _, err := m.DetachSegment(a, isSeg); err != unix.EINVAL {
		t.Errorf("second detach: %v", err)
	}
	if _, err := m.DetachSegment(b, isSeg); err != nil || seg.refs != 0 {
		t.Errorf("DetachSegment(b): %v, refs %d", err, seg.refs)
	}
	// Other memory is never detached.
	p := mustMMap(t, m, anon(pageSize, hostarch.ReadWrite))
	if _, err := m.DetachSegment(p, isSeg); err != unix.EINVAL || m.findVMALocked(p) == nil {
		t.Errorf("DetachSegment of anonymous memory: %v", err)
	}
}
