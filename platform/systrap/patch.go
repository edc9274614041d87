package systrap

import (
	"bytes"
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/platform"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// Syscall-site rewriting. A SECCOMP_RET_TRAP and its SIGSYS cost more than
// everything else on a syscall's way to the sentry, so a site that keeps
// trapping is rewritten to jump into the stub instead, where the fast path
// (testdata/stub.S) stores the registers as a signal frame in the thread's
// slot and hands it over exactly as the handler does; the sentry sees the
// same syscall stop, and the thread returns through the same rt_sigreturn.
//
// What is rewritten, and why it is safe:
//
//   - Only a syscall instruction whose five bytes before are one known,
//     position-independent instruction: `mov $nr, %eax` (b8 imm32, with
//     the number the trap reported), which glibc's and Go's wrappers use,
//     or `mov 8(%rsp), %r9` (4c 8b 4c 24 08), the last instruction of
//     glibc's syscall(3) before its syscall (the number is then rax's).
//     Those five bytes become `jmp rel32` to a trampoline record, which
//     does what they did. The syscall instruction stays: code that jumps
//     to it (or a thread stopped just before it) still runs a real,
//     trapping syscall, and a restarted syscall (rip moved back two bytes)
//     runs it too. No instruction boundary of the original code moves.
//   - glibc's read(2), whose number is set by `xor %eax,%eax` (two bytes,
//     too few for a jump), when it is glibc's single-threaded fast path:
//     `cmpb $0, X(%rip); je L; xor %eax,%eax; syscall` (80 3d d32 00, 74
//     rel8, 31 c0, 0f 05). The cmpb, one whole instruction of seven bytes,
//     becomes `jmp rel32` and two int3s nothing can reach (they were the
//     inside of an instruction); the je, the xor and the syscall stay, so
//     code that jumps to any of them runs exactly what it did. The record
//     does the cmpb (its displacement re-aimed at X), the je to L (as a
//     je rel32), the xor, and then hands over syscall 0.
//   - Only in a private, executable, non-writable file mapping, and the
//     bytes are written by the sentry's memory manager into the address
//     space's own copy of the page (copy-on-write), never into the file
//     or a page another address space maps.
//   - Only while every other thread of the address space is parked in the
//     stub (the rewriting thread is too): patchMu holds back any resume,
//     so no thread can be executing, or half-way through fetching, the
//     bytes being replaced; a thread resumes through rt_sigreturn, which
//     serializes.
//
// A record, 32 bytes in a trampoline page the stub maps read+execute, sets
// r11 to the number (the constant, or rax after the relocated load) and
// rcx to the address after the original syscall (what the syscall
// instruction would have left there) and jumps to the fast path. Records must be within 2 GiB of their site: sites in the top
// 2 GiB of the application's range (where shared libraries are mapped) use
// the high region just above it; sites in the low 2 GiB (non-PIE
// executables) use the pages below the memory manager's lowest address,
// where the host allows a mapping there (vm.mmap_min_addr). Record
// addresses are allocated once per (site, number) for the whole platform,
// so a forked child, whose text carries the parent's rewritten bytes,
// jumps to the same address: its stub installs the record when the jump
// faults there (recordFault), after checking that the child's own code at
// the site jumps to that record, so no address space learns of another's
// sites.
//
// The fast path needs the GS base to find its slot: a thread whose
// application GS base is 0 (nearly all) runs with it pointing at its slot,
// and reports 0 to the sentry; one that sets its own GS base falls back to
// the syscall instruction, which traps.

const (
	recordSize = 32
	// patchAfter is how many traps a site takes before it is rewritten:
	// code that runs once (start-up) is not worth a page copy.
	patchAfter = 2
	// maxRecords bounds the registry (and the sentry memory it takes).
	maxRecords = 1 << 16
	// maxCounted bounds the sites an address space counts traps for.
	maxCounted = 4096
	// unpatchable marks a site that will not be rewritten.
	unpatchable = -1 << 30
)

// siteKey names a rewritten site: its address and the number its `mov`
// loads, or dynamicNR for the syscall(3) pattern.
type siteKey struct {
	site uint64
	nr   uint32
	// disp and rel8 are the read pattern's (readNR only).
	disp int32
	rel8 int8
}

const dynamicNR = ^uint32(0)

// readNR marks a record for glibc's read pattern (readCode); its site
// field is the address of the cmpb, and disp/rel8 are that cmpb's
// displacement and the je's, so the record can be rebuilt from the key.
const readNR = ^uint32(0) - 1

// readCode is the read pattern with its cmpb displacement and je offset
// zeroed (they vary), 13 bytes ending with the syscall.
var readCode = []byte{0x80, 0x3d, 0, 0, 0, 0, 0x00, 0x74, 0, 0x31, 0xc0, 0x0f, 0x05}

// matchRead reports whether b (13 bytes) is the read pattern, and its
// displacement and je offset.
func matchRead(b []byte) (disp int32, rel8 int8, ok bool) {
	if len(b) != len(readCode) || b[0] != 0x80 || b[1] != 0x3d || b[6] != 0 || b[7] != 0x74 ||
		!bytes.Equal(b[9:], readCode[9:]) {
		return 0, 0, false
	}
	return int32(binary.LittleEndian.Uint32(b[2:])), int8(b[8]), true
}

// recordLen is how many bytes of the trampoline region a record takes.
func recordLen(nr uint32) uint64 {
	if nr == readNR {
		return 2 * recordSize
	}
	return recordSize
}

// syscall3Code is the syscall(3) pattern: mov 8(%rsp), %r9; syscall.
var syscall3Code = []byte{0x4c, 0x8b, 0x4c, 0x24, 0x08, 0x0f, 0x05}

// patchState is the platform's registry of trampoline records.
type patchState struct {
	// enabled says the fast path may be used (set once by init).
	enabled bool
	// lowStart..minAppAddr is the low region, if the host allows it.
	lowStart uint64

	mu       sync.Mutex
	bySite   map[siteKey]uint64
	byRecord map[uint64]siteKey
	lowNext  uint64
	highNext uint64
}

func (ps *patchState) init() {
	ps.bySite = make(map[siteKey]uint64)
	ps.byRecord = make(map[uint64]siteKey)
	ps.highNext = trampHighBase
	if v := os.Getenv("VEIL_SYSTRAP_NOPATCH"); v != "" && v != "0" {
		return
	}
	ps.enabled = true
	// Pages below minAppAddr that the host lets a process map: the
	// memory manager never maps there.
	if b, err := os.ReadFile("/proc/sys/vm/mmap_min_addr"); err == nil {
		if min, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			start := max((min+0xfff)&^0xfff, 0x1000)
			if start < minAppAddr {
				ps.lowStart = start
				ps.lowNext = start
			}
		}
	}
}

// recordFor returns the record address for (site, nr), allocating one
// within reach of the site; ok is false if there is none.
func (ps *patchState) recordFor(k siteKey) (uint64, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	site := k.site
	if r, ok := ps.bySite[k]; ok {
		return r, true
	}
	if len(ps.bySite) >= maxRecords {
		return 0, false
	}
	size := recordLen(k.nr)
	// A record never straddles a page: each page is installed alone.
	fit := func(next uint64) uint64 {
		if next&0xfff+size > 0x1000 {
			return (next + 0xfff) &^ 0xfff
		}
		return next
	}
	var r uint64
	switch {
	case fit(ps.highNext)+size <= trampHighBase+trampHighSize && reachable(site, fit(ps.highNext)):
		r = fit(ps.highNext)
		ps.highNext = r + size
	case ps.lowStart != 0 && fit(ps.lowNext)+size <= minAppAddr && reachable(site, fit(ps.lowNext)):
		r = fit(ps.lowNext)
		ps.lowNext = r + size
	default:
		return 0, false
	}
	ps.bySite[k] = r
	ps.byRecord[r] = k
	return r, true
}

func (ps *patchState) siteOf(record uint64) (siteKey, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	k, ok := ps.byRecord[record]
	return k, ok
}

// reachable says a jmp rel32 at site and the record's lea of site+7 both
// reach: the record lies within (a little less than) 2 GiB of the site.
func reachable(site, record uint64) bool {
	d := int64(record) - int64(site)
	return d > -(1<<31)+64 && d < (1<<31)-64
}

// originalCode is a site's pattern: mov $nr, %eax; syscall, syscall3Code
// for dynamicNR, or the read pattern for readNR.
func originalCode(k siteKey) []byte {
	nr := k.nr
	switch nr {
	case dynamicNR:
		return syscall3Code
	case readNR:
		b := bytes.Clone(readCode)
		binary.LittleEndian.PutUint32(b[2:], uint32(k.disp))
		b[8] = byte(k.rel8)
		return b
	}
	b := []byte{0xb8, 0, 0, 0, 0, 0x0f, 0x05}
	binary.LittleEndian.PutUint32(b[1:], nr)
	return b
}

// patchedCode is what the site's first five bytes become (seven for the
// read pattern's cmpb: the jump and two int3s).
func patchedCode(k siteKey, record uint64) []byte {
	b := []byte{0xe9, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[1:], uint32(int32(int64(record)-int64(k.site+5))))
	if k.nr == readNR {
		b = append(b, 0xcc, 0xcc)
	}
	return b
}

// rel32 is the displacement from next (the address after an instruction)
// to target, and whether it fits.
func rel32(target, next uint64) (uint32, bool) {
	d := int64(target) - int64(next)
	return uint32(int32(d)), d >= -(1<<31) && d < 1<<31
}

// recordCode is the record at r for k, or nil if a target of the read
// pattern is out of the record's reach:
//
//	mov $nr, %r11d                 or   mov 8(%rsp), %r9; mov %rax, %r11
//	                               or   cmpb $0, X(%rip); je L; xor %r11d, %r11d; xor %eax, %eax
//	lea <after the syscall>(%rip), %rcx
//	jmp *fastEntry
func recordCode(r uint64, k siteKey) []byte {
	size := recordLen(k.nr)
	b := make([]byte, size)
	for i := range b {
		b[i] = 0xcc
	}
	le := binary.LittleEndian
	n := 0
	after := k.site + 7 // the address after the syscall instruction
	switch k.nr {
	case dynamicNR:
		n += copy(b, syscall3Code[:5])
		n += copy(b[n:], []byte{0x49, 0x89, 0xc3}) // mov r11, rax
	case readNR:
		after = k.site + uint64(len(readCode))
		x := k.site + 7 + uint64(int64(k.disp))
		l := k.site + 9 + uint64(int64(k.rel8))
		n += copy(b, []byte{0x80, 0x3d}) // cmpb [rip+disp32], imm8
		d, ok := rel32(x, r+7)
		if !ok {
			return nil
		}
		le.PutUint32(b[n:], d)
		n += 4
		b[n] = 0
		n++
		n += copy(b[n:], []byte{0x0f, 0x84}) // je rel32
		if d, ok = rel32(l, r+uint64(n)+4); !ok {
			return nil
		}
		le.PutUint32(b[n:], d)
		n += 4
		// The xor of eax last, so the flags are the ones the original
		// xor left for the syscall instruction.
		n += copy(b[n:], []byte{0x45, 0x31, 0xdb, 0x31, 0xc0}) // xor r11d, r11d; xor eax, eax
	default:
		n += copy(b, []byte{0x41, 0xbb}) // mov r11d, imm32
		le.PutUint32(b[n:], k.nr)
		n += 4
	}
	n += copy(b[n:], []byte{0x48, 0x8d, 0x0d}) // lea rcx, [rip+disp32]
	le.PutUint32(b[n:], uint32(int32(int64(after)-int64(r+uint64(n)+4))))
	n += 4
	ptr := int(size) - 8
	n += copy(b[n:], []byte{0xff, 0x25}) // jmp [rip+disp32]
	le.PutUint32(b[n:], uint32(ptr-(n+4)))
	le.PutUint64(b[ptr:], fastEntry)
	return b
}

// inTrampRegion says whether addr lies in a trampoline region.
func (ps *patchState) inTrampRegion(addr uint64) bool {
	return addr >= trampHighBase && addr < trampHighBase+trampHighSize ||
		ps.lowStart != 0 && addr >= ps.lowStart && addr < minAppAddr
}

// SetCodeMemory implements platform.CodePatcher.
func (s *subprocess) SetCodeMemory(cm platform.CodeMemory) {
	s.mu.Lock()
	s.code = cm
	s.mu.Unlock()
}

// trapped is told of a syscall that trapped (not through the fast path)
// and rewrites its site once it has trapped patchAfter times.
func (ps *patchState) trapped(th *stubThread, r *arch.Registers) {
	if !th.fast || r.Gs_base != 0 || r.Rip < minAppAddr+7 || r.Rip >= MaxUserAddress {
		return
	}
	s := th.s
	// The counted site is the syscall's address less 7, for every
	// pattern: patch looks at the bytes before it.
	site := r.Rip - 7
	s.mu.Lock()
	cm := s.code
	if s.trapCount == nil {
		s.trapCount = make(map[uint64]int)
	}
	n, counted := s.trapCount[site]
	if !counted && len(s.trapCount) >= maxCounted {
		s.mu.Unlock()
		return
	}
	n++
	s.trapCount[site] = n
	s.mu.Unlock()
	if n < patchAfter || cm == nil {
		return
	}
	ok := ps.patch(th, cm, site, r.Orig_rax)
	s.mu.Lock()
	if ok {
		delete(s.trapCount, site)
	} else if n >= patchAfter+8 {
		// Not rewritable (not a private text mapping, another pattern,
		// no record within reach, or never a moment with the other
		// threads parked): stop trying.
		s.trapCount[site] = unpatchable
	}
	s.mu.Unlock()
}

// patch rewrites site, which trapped for syscall number trappedNR, in
// th's address space.
func (ps *patchState) patch(th *stubThread, cm platform.CodeMemory, site uint64, trappedNR uint64) bool {
	got := make([]byte, 7)
	if cm.ReadCode(uintptrAddr(site), got) != nil {
		return false
	}
	var k siteKey
	switch {
	case bytes.Equal(got, syscall3Code):
		k = siteKey{site: site, nr: dynamicNR}
	case trappedNR < 1024 && bytes.Equal(got, originalCode(siteKey{nr: uint32(trappedNR)})):
		k = siteKey{site: site, nr: uint32(trappedNR)}
	case trappedNR == 0 && site >= minAppAddr+6:
		long := make([]byte, len(readCode))
		start := site + 7 - uint64(len(readCode))
		if cm.ReadCode(uintptrAddr(start), long) != nil {
			return false
		}
		disp, rel8, ok := matchRead(long)
		if !ok {
			return false
		}
		k = siteKey{site: start, nr: readNR, disp: disp, rel8: rel8}
	default:
		return false
	}
	orig := originalCode(k)
	rec, ok := ps.recordFor(k)
	if !ok {
		return false
	}
	s := th.s
	if err := s.installRecord(rec, k); err != nil {
		return false
	}
	s.patchMu.Lock()
	defer s.patchMu.Unlock()
	s.mu.Lock()
	for other := range s.threads {
		if other != th && atomic.LoadUint32(other.word(slotState)) == stateResume {
			// Running application code: it could be at the site.
			s.mu.Unlock()
			return false
		}
	}
	s.mu.Unlock()
	patched := patchedCode(k, rec)
	return cm.PatchCode(uintptrAddr(k.site), orig[:len(patched)], patched) == nil
}

// recordFault handles a jump to a trampoline record that is not (yet)
// installed in this stub: a fetch fault on an unmapped trampoline page or
// an int3 of an empty record. If the address space's code at the record's
// site does jump there, the record is installed and r set to run it.
//
// A read record's cmpb also faults at the record's start when the page it
// reads is not mapped in the stub yet (after a fork made it copy-on-write,
// say): that is the application's fault, reported at the cmpb's original
// address, as the application would have taken it there.
func (ps *patchState) recordFault(th *stubThread, sig unix.Signal, info *arch.SignalInfo, r *arch.Registers) bool {
	var rec uint64
	switch sig {
	case unix.SIGSEGV:
		rec = r.Rip
	case unix.SIGTRAP:
		rec = r.Rip - 1
	default:
		return false
	}
	if !ps.inTrampRegion(rec) {
		return false
	}
	k, ok := ps.siteOf(rec)
	if !ok {
		return false
	}
	if sig == unix.SIGSEGV && uint64(info.Addr()) != rec {
		if k.nr == readNR {
			r.Rip = k.site
		}
		return false
	}
	s := th.s
	s.mu.Lock()
	cm := s.code
	s.mu.Unlock()
	if cm == nil {
		return false
	}
	orig := originalCode(k)
	patched := patchedCode(k, rec)
	want := append(patched, orig[len(patched):]...)
	got := make([]byte, len(want))
	if cm.ReadCode(uintptrAddr(k.site), got) != nil || !bytes.Equal(got, want) {
		return false
	}
	if s.installRecord(rec, k) != nil {
		return false
	}
	r.Rip = rec
	return true
}

// installRecord writes the record at rec into this stub's trampoline page,
// mapping the page first if the stub has none there yet.
func (s *subprocess) installRecord(rec uint64, k siteKey) error {
	code := recordCode(rec, k)
	if code == nil {
		return unix.ERANGE
	}
	s.trampMu.Lock()
	defer s.trampMu.Unlock()
	page := rec &^ 0xfff
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return platform.ErrContextDead
	}
	idx, ok := s.tramps[page]
	s.mu.Unlock()
	if !ok {
		var err error
		if idx, err = s.p.alloc(&s.p.freeTramp, &s.p.nextTramp, maxTramps, "trampoline pages"); err != nil {
			return err
		}
		mem := s.p.ctxMem[trampOff(idx) : trampOff(idx)+0x1000]
		for i := range mem {
			mem[i] = 0xcc
		}
		ops := []execOp{{nr: unix.SYS_MMAP, args: [6]uintptr{uintptr(page), 0x1000, unix.PROT_READ | unix.PROT_EXEC,
			unix.MAP_SHARED | unix.MAP_FIXED, stubCtxFD, uintptr(trampOff(idx))}}}
		err = s.exec.run(ops)
		if e := int64(ops[0].res); err == nil && e < 0 && e > -4096 {
			err = unix.Errno(-e)
		}
		s.mu.Lock()
		if err == nil && !s.dead {
			if s.tramps == nil {
				s.tramps = make(map[uint64]int)
			}
			s.tramps[page] = idx
		} else {
			s.p.release(&s.p.freeTramp, idx)
			if err == nil {
				err = platform.ErrContextDead
			}
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
	copy(s.p.ctxMem[trampOff(idx)+int(rec-page):], code)
	return nil
}

func uintptrAddr(a uint64) hostarch.Addr { return hostarch.Addr(a) }
