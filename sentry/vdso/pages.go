package vdso

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/memory"
)

// Pages are one memory file's copy of the vDSO: the image and a vvar page
// in memory-file pages, shared (read-only) by every address space that maps
// them. They live as long as the memory file.
type Pages struct {
	image *pagesMappable
	vvar  *pagesMappable
	// VVar is the sentry's writable view of the vvar page.
	VVar *VVar
}

// NewPages allocates the image and the vvar page in mf and copies the
// image in. The vvar page starts with every clock left to the syscall and
// getcpu reporting CPU 0 on node 0.
func NewPages(mf *memory.File) (*Pages, error) {
	imgLen := ImageSize()
	imgOff, err := mf.Allocate(imgLen)
	if err != nil {
		return nil, err
	}
	b, err := mf.MapInternal(imgOff, imgLen)
	if err != nil {
		mf.DecRef(imgOff, imgLen)
		return nil, err
	}
	n := copy(b, image)
	clear(b[n:])

	vvOff, err := mf.Allocate(VVarSize)
	if err != nil {
		mf.DecRef(imgOff, imgLen)
		return nil, err
	}
	vb, err := mf.MapInternal(vvOff, VVarSize)
	if err != nil {
		mf.DecRef(imgOff, imgLen)
		mf.DecRef(vvOff, VVarSize)
		return nil, err
	}
	clear(vb)
	return &Pages{
		image: &pagesMappable{mf: mf, off: imgOff, size: imgLen, perms: hostarch.AccessType{Read: true, Execute: true}},
		vvar:  &pagesMappable{mf: mf, off: vvOff, size: VVarSize, perms: hostarch.Read},
		VVar:  NewVVar(vb),
	}, nil
}

// Image is the Mappable of the image: ImageSize bytes, readable and
// executable. A private mapping of it may be made writable; writes then
// copy the page, as for any private file mapping.
func (p *Pages) Image() memmap.Mappable { return p.image }

// VVarMappable is the Mappable of the vvar page: VVarSize bytes that can
// only be read.
func (p *Pages) VVarMappable() memmap.Mappable { return p.vvar }

// pagesMappable is a fixed range of memory-file pages. The Pages own the
// pages' memory-file reference; mappings only count themselves, since the
// pages outlive every address space of the sandbox.
type pagesMappable struct {
	mf    *memory.File
	off   uint64
	size  uint64
	perms hostarch.AccessType

	mu   sync.Mutex
	refs int64 // mappings holding the Mappable, for tests and sanity
}

var _ memmap.Mappable = (*pagesMappable)(nil)

// Translate implements memmap.Mappable.
func (m *pagesMappable) Translate(off, length uint64, at hostarch.AccessType) ([]memmap.Translation, error) {
	if !m.perms.SupersetOf(at) {
		return nil, unix.EACCES
	}
	if off >= m.size {
		return nil, unix.EFAULT
	}
	end := m.size
	var err error
	if length <= m.size-off {
		end = off + length
	} else {
		err = unix.EFAULT
	}
	return []memmap.Translation{{Offset: off, Length: end - off, FileOffset: m.off + off, Perms: m.perms}}, err
}

// AddMapping implements memmap.Mappable. The pages never change, so there
// is nothing to invalidate and nobody to track.
func (m *pagesMappable) AddMapping(memmap.MappingSpace, hostarch.AddrRange, uint64, bool) {}

// RemoveMapping implements memmap.Mappable.
func (m *pagesMappable) RemoveMapping(memmap.MappingSpace, hostarch.AddrRange, uint64, bool) {}

// IncRef implements memmap.Mappable.
func (m *pagesMappable) IncRef() {
	m.mu.Lock()
	m.refs++
	m.mu.Unlock()
}

// DecRef implements memmap.Mappable.
func (m *pagesMappable) DecRef() {
	m.mu.Lock()
	m.refs--
	if m.refs < 0 {
		m.mu.Unlock()
		panic("vdso: DecRef without IncRef")
	}
	m.mu.Unlock()
}
