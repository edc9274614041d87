// Package mm owns one application address space: its VMAs, its page table
// of private pages (copy-on-write shared with forked children by memory-file
// reference counts), brk, the mmap family of calls with Linux's semantics
// and errnos, page faults reported by the platform, and copying to and from
// application memory through the sentry's own view of the memory file.
//
// It does not know what files contain: file-backed memory comes from a
// memmap.Mappable's Translate.
//
// Lock order (outermost first):
//
//	MemoryManager.mappingMu (VMAs, brk; RWMutex: faults and copies read it)
//	  → memmap.Mappable mapping-tracking locks (AddMapping/RemoveMapping)
//	  → MemoryManager.pagesMu (page table; held across Translate and
//	    AddressSpace.MapFile so a fault never maps a stale translation)
//	    → memmap.Mappable data locks (Translate)
//	    → memory.File's locks
//	MemoryManager.asMu and MemoryManager.metaMu are leaves.
//
// Contract for Mappables, which follows from that order: Invalidate takes
// pagesMu, so a Mappable must not call it while holding a lock Translate
// takes, and must call it before it drops its references to the memory-file
// pages it had translated (so no address space maps a freed page).
package mm

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/google/btree"
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/platform"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/memory"
)

const (
	pageSize = hostarch.PageSize
	pageMask = pageSize - 1

	// faultWindowPages bounds how much one fault maps, so that sequential
	// access costs one platform call per window rather than per page.
	faultWindowPages = 16

	// guardGap is Linux's stack_guard_gap: a growsdown VMA keeps this
	// much unmapped space below it.
	guardGap = 256 * pageSize

	// minMmapAddr is vm.mmap_min_addr's default: nothing maps below it.
	minMmapAddr = 0x10000

	// mmapGap is the space between the stack top and the mmap base
	// (Linux's MIN_GAP: 128 MiB, used with the default 8 MiB stack limit).
	mmapGap = 128 << 20

	// defaultStackLimit is RLIMIT_STACK's usual soft limit; a growsdown
	// VMA does not grow past it.
	defaultStackLimit = 8 << 20

	// maxMapCount is vm.max_map_count's default.
	maxMapCount = 65530

	// maxAllocChunk bounds one contiguous allocation when filling a hole,
	// so a fragmented memory file still serves large ranges.
	maxAllocChunk = 2 << 20
)

// Fault errors returned by HandleFault. A fault on an address with no VMA
// is ErrNoVMA (SIGSEGV, SEGV_MAPERR); an access the VMA does not allow is
// unix.EFAULT (SIGSEGV, SEGV_ACCERR); a file page beyond the end of its file
// is ErrBusError (SIGBUS, BUS_ADRERR). FaultSignal maps them.
var (
	ErrNoVMA    = errors.New("mm: no mapping at fault address")
	ErrBusError = errors.New("mm: access beyond the end of a mapped file")
)

// Signal numbers and si_code values FaultSignal returns (asm-generic).
const (
	SIGBUS      = int(unix.SIGBUS)
	SIGSEGV     = int(unix.SIGSEGV)
	SEGV_MAPERR = 1
	SEGV_ACCERR = 2
	BUS_ADRERR  = 2
)

// FaultSignal returns the signal and si_code a fault error from HandleFault
// stands for. Any error not listed (for example ENOMEM when the memory file
// is full) is delivered as SIGBUS, as Linux does for a fault that cannot be
// satisfied.
func FaultSignal(err error) (signo, code int) {
	switch {
	case errors.Is(err, ErrNoVMA):
		return SIGSEGV, SEGV_MAPERR
	case errors.Is(err, unix.EFAULT):
		return SIGSEGV, SEGV_ACCERR
	default:
		return SIGBUS, BUS_ADRERR
	}
}

// MemoryManager is one application address space. It is shared by the
// threads of a process (CLONE_VM) and safe for concurrent use.
type MemoryManager struct {
	mf      *memory.File
	maxAddr hostarch.Addr
	// mmapBase is where top-down placement starts.
	mmapBase hostarch.Addr
	stackTop hostarch.Addr

	users atomic.Int32

	mappingMu sync.RWMutex
	// vmas are ordered by start address. Guarded by mappingMu.
	vmas *btree.BTreeG[*vma]
	// brkStart and brk are the program break's start and current value.
	// Guarded by mappingMu.
	brkStart, brk hostarch.Addr
	// stackLimit bounds growsdown growth. Guarded by mappingMu.
	stackLimit uint64

	pagesMu sync.Mutex
	// pages maps application pages of private VMAs to memory-file pages,
	// each holding one reference. Guarded by pagesMu; changes also need
	// mappingMu for reading (faults) or writing (munmap, fork).
	pages pageSet

	asMu sync.Mutex
	as   platform.AddressSpace

	metaMu     sync.Mutex
	argv, envv hostarch.AddrRange
	auxv       []byte
	executable string
}

var _ memmap.MappingSpace = (*MemoryManager)(nil)

// NewMemoryManager returns an empty address space whose user range ends at
// maxAddr (the platform's MaxUserAddress), with one user.
func NewMemoryManager(mf *memory.File, maxAddr hostarch.Addr) *MemoryManager {
	maxAddr = maxAddr.RoundDown()
	base := hostarch.Addr(minMmapAddr)
	if maxAddr > mmapGap+minMmapAddr {
		base = maxAddr - mmapGap
	}
	m := &MemoryManager{
		mf:         mf,
		maxAddr:    maxAddr,
		mmapBase:   base,
		stackTop:   maxAddr,
		vmas:       btree.NewG(8, vmaLess),
		pages:      newPageSet(),
		stackLimit: defaultStackLimit,
	}
	m.users.Store(1)
	return m
}

// MemoryFile is the memory file this address space's memory lives in.
func (m *MemoryManager) MemoryFile() *memory.File { return m.mf }

// MaxAddress is the end of the user range.
func (m *MemoryManager) MaxAddress() hostarch.Addr { return m.maxAddr }

// StackTop is the address the initial stack ends at.
func (m *MemoryManager) StackTop() hostarch.Addr { return m.stackTop }

// MMapBase is where top-down mmap placement starts.
func (m *MemoryManager) MMapBase() hostarch.Addr { return m.mmapBase }

// SetStackLimit sets RLIMIT_STACK as far as stack growth is concerned.
func (m *MemoryManager) SetStackLimit(limit uint64) {
	m.mappingMu.Lock()
	m.stackLimit = limit
	m.mappingMu.Unlock()
}

// SetArgvRange records where argv strings are, for /proc/pid/cmdline.
func (m *MemoryManager) SetArgvRange(ar hostarch.AddrRange) {
	m.metaMu.Lock()
	m.argv = ar
	m.metaMu.Unlock()
}

// ArgvRange returns the range SetArgvRange recorded.
func (m *MemoryManager) ArgvRange() hostarch.AddrRange {
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	return m.argv
}

// SetEnvvRange records where the environment strings are, for
// /proc/pid/environ.
func (m *MemoryManager) SetEnvvRange(ar hostarch.AddrRange) {
	m.metaMu.Lock()
	m.envv = ar
	m.metaMu.Unlock()
}

// EnvvRange returns the range SetEnvvRange recorded.
func (m *MemoryManager) EnvvRange() hostarch.AddrRange {
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	return m.envv
}

// SetAuxv records the auxiliary vector as laid out on the stack, for
// /proc/pid/auxv.
func (m *MemoryManager) SetAuxv(auxv []byte) {
	m.metaMu.Lock()
	m.auxv = append([]byte(nil), auxv...)
	m.metaMu.Unlock()
}

// Auxv returns a copy of what SetAuxv recorded.
func (m *MemoryManager) Auxv() []byte {
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	return append([]byte(nil), m.auxv...)
}

// SetExecutable records the path of the executable, for /proc/pid/exe.
func (m *MemoryManager) SetExecutable(path string) {
	m.metaMu.Lock()
	m.executable = path
	m.metaMu.Unlock()
}

// Executable returns what SetExecutable recorded.
func (m *MemoryManager) Executable() string {
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	return m.executable
}

// SetAddressSpace installs the platform address space pages are mapped
// into. With none, faults still fill the page table but map nothing.
func (m *MemoryManager) SetAddressSpace(as platform.AddressSpace) {
	m.asMu.Lock()
	m.as = as
	m.asMu.Unlock()
	if cp, ok := as.(platform.CodePatcher); ok {
		cp.SetCodeMemory(m)
	}
}

// AddressSpace returns the platform address space, or nil.
func (m *MemoryManager) AddressSpace() platform.AddressSpace {
	m.asMu.Lock()
	defer m.asMu.Unlock()
	return m.as
}

// unmapAS removes [start, end) from the platform address space, if any.
func (m *MemoryManager) unmapAS(start, end hostarch.Addr) {
	if end <= start {
		return
	}
	if as := m.AddressSpace(); as != nil {
		as.Unmap(start, uint64(end-start))
	}
}

// Invalidate implements memmap.MappingSpace: a Mappable's translations for
// ar are no longer valid, so the platform must fault them in again.
func (m *MemoryManager) Invalidate(ar hostarch.AddrRange) {
	m.pagesMu.Lock()
	defer m.pagesMu.Unlock()
	m.unmapAS(ar.Start.RoundDown(), roundUpClamp(ar.End))
}

// IncUsers adds a user (a thread sharing the address space). It returns
// false if the address space has already been released.
func (m *MemoryManager) IncUsers() bool {
	for {
		n := m.users.Load()
		if n <= 0 {
			return false
		}
		if m.users.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// DecUsers drops a user; the last one releases every mapping, every page and
// the platform address space.
func (m *MemoryManager) DecUsers() {
	switch n := m.users.Add(-1); {
	case n == 0:
		m.release()
	case n < 0:
		panic("mm: DecUsers without a user")
	}
}

func (m *MemoryManager) release() {
	m.mappingMu.Lock()
	defer m.mappingMu.Unlock()
	var all []*vma
	m.vmas.Ascend(func(v *vma) bool {
		all = append(all, v)
		return true
	})
	m.vmas.Clear(false)
	for _, v := range all {
		v.dropMappable(m)
	}
	m.asMu.Lock()
	as := m.as
	m.as = nil
	m.asMu.Unlock()
	if as != nil {
		// Before the pages go: the application must not reach them.
		as.Release()
	}
	m.pagesMu.Lock()
	runs := m.pages.all()
	m.pages.t.Clear(false)
	m.pagesMu.Unlock()
	m.decRefRuns(runs)
}

// decRefRuns drops the page table's references to runs.
func (m *MemoryManager) decRefRuns(runs []pageRun) {
	for _, r := range runs {
		m.mf.DecRef(r.off, r.length())
	}
}

// VirtualSize is the total length of all VMAs (VmSize).
func (m *MemoryManager) VirtualSize() uint64 {
	m.mappingMu.RLock()
	defer m.mappingMu.RUnlock()
	var n uint64
	m.vmas.Ascend(func(v *vma) bool {
		n += v.length()
		return true
	})
	return n
}

// ResidentSize is the memory held by the page table (VmRSS, counting
// private pages; pages of shared and file mappings belong to their owners).
func (m *MemoryManager) ResidentSize() uint64 {
	m.pagesMu.Lock()
	defer m.pagesMu.Unlock()
	return m.pages.bytes()
}

// roundUpClamp rounds a up to a page, saturating at the top page.
func roundUpClamp(a hostarch.Addr) hostarch.Addr {
	if r, ok := a.RoundUp(); ok {
		return r
	}
	return ^hostarch.Addr(pageMask)
}
