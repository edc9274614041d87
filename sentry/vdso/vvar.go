package vdso

import (
	"math/bits"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// Modes of the vvar page (src/vvar.h): whether the vDSO may compute the
// time itself.
const (
	// ModeSyscall makes every clock call of the vDSO a syscall.
	ModeSyscall = 0
	// ModeTSC lets the vDSO compute clocks from the TSC and Params.
	ModeTSC = 1
)

// vvarData is struct veil_vvar of src/vvar.h, field for field. The test
// checks that its offsets are the ones the header asserts.
type vvarData struct {
	seq            uint32
	mode           uint32
	tscBase        uint64
	monoBase       uint64
	mult           uint64
	shift          uint32
	_              uint32
	realtimeOffset int64
	boottimeOffset int64
	taiOffset      int64
	cpu            uint32
	node           uint32
}

// Params are the clock parameters of the vvar page.
//
// CLOCK_MONOTONIC at TSC value tsc is MonoAt(tsc): MonoBase nanoseconds at
// TSCBase, advancing Mult/2^Shift nanoseconds per TSC tick after it (a TSC
// below TSCBase counts as TSCBase). The other clocks are offsets from it.
type Params struct {
	Mode           uint32
	TSCBase        uint64
	MonoBase       uint64
	Mult           uint64
	Shift          uint32
	RealtimeOffset int64 // CLOCK_REALTIME - CLOCK_MONOTONIC
	BoottimeOffset int64 // CLOCK_BOOTTIME - CLOCK_MONOTONIC
	TAIOffset      int64 // CLOCK_TAI - CLOCK_REALTIME
}

// MonoAt is CLOCK_MONOTONIC, in nanoseconds, at TSC value tsc, computed
// exactly as the vDSO computes it (a 128-bit product, shifted, truncated
// to 64 bits).
func (p *Params) MonoAt(tsc uint64) uint64 {
	var delta uint64
	if tsc > p.TSCBase {
		delta = tsc - p.TSCBase
	}
	return p.MonoBase + mulShift(delta, p.Mult, p.Shift)
}

// mulShift is (a*b) >> shift over 128 bits, truncated to 64.
func mulShift(a, b uint64, shift uint32) uint64 {
	hi, lo := bits.Mul64(a, b)
	s := shift & 63
	if s == 0 {
		return lo
	}
	return lo>>s | hi<<(64-s)
}

// VVar is the sentry's writable view of a vvar page. Updates follow the
// writer half of the seqlock in src/vdso.c: BeginUpdate makes the sequence
// odd, Store writes the parameters, EndUpdate makes it even again. Only one
// goroutine may update a page at a time (the caller serialises them).
type VVar struct {
	d *vvarData
}

// NewVVar returns a view of b, which must be at least a page, page
// aligned and stay mapped while the VVar is used. The page starts with
// every clock left to the syscall.
func NewVVar(b []byte) *VVar {
	if len(b) < int(unsafe.Sizeof(vvarData{})) || uintptr(unsafe.Pointer(&b[0]))%8 != 0 {
		panic("vdso: vvar page too small or misaligned")
	}
	v := &VVar{d: (*vvarData)(unsafe.Pointer(&b[0]))}
	v.BeginUpdate()
	v.Store(Params{Mode: ModeSyscall})
	v.EndUpdate()
	return v
}

// BeginUpdate starts an update: readers that see the odd sequence wait,
// and readers that started earlier retry. The atomic add is a full barrier
// on x86, so the caller may read the TSC for the new anchor after it.
func (v *VVar) BeginUpdate() {
	if atomic.AddUint32(&v.d.seq, 1)&1 == 0 {
		panic("vdso: BeginUpdate inside an update")
	}
}

// EndUpdate publishes what Store wrote.
func (v *VVar) EndUpdate() {
	if atomic.AddUint32(&v.d.seq, 1)&1 != 0 {
		panic("vdso: EndUpdate outside an update")
	}
}

// Store writes p. It must be called between BeginUpdate and EndUpdate.
func (v *VVar) Store(p Params) {
	d := v.d
	atomic.StoreUint32(&d.mode, p.Mode)
	atomic.StoreUint64(&d.tscBase, p.TSCBase)
	atomic.StoreUint64(&d.monoBase, p.MonoBase)
	atomic.StoreUint64(&d.mult, p.Mult)
	atomic.StoreUint32(&d.shift, p.Shift)
	atomic.StoreInt64(&d.realtimeOffset, p.RealtimeOffset)
	atomic.StoreInt64(&d.boottimeOffset, p.BoottimeOffset)
	atomic.StoreInt64(&d.taiOffset, p.TAIOffset)
}

// Load reads the parameters as a vDSO reader would (retrying while an
// update is in progress or happened meanwhile).
func (v *VVar) Load() Params {
	d := v.d
	for {
		s := atomic.LoadUint32(&d.seq)
		if s&1 != 0 {
			runtime.Gosched()
			continue
		}
		p := Params{
			Mode:           atomic.LoadUint32(&d.mode),
			TSCBase:        atomic.LoadUint64(&d.tscBase),
			MonoBase:       atomic.LoadUint64(&d.monoBase),
			Mult:           atomic.LoadUint64(&d.mult),
			Shift:          atomic.LoadUint32(&d.shift),
			RealtimeOffset: atomic.LoadInt64(&d.realtimeOffset),
			BoottimeOffset: atomic.LoadInt64(&d.boottimeOffset),
			TAIOffset:      atomic.LoadInt64(&d.taiOffset),
		}
		if atomic.LoadUint32(&d.seq) == s {
			return p
		}
	}
}

// ReadMonotonic reads CLOCK_MONOTONIC from the page exactly as the vDSO
// does (the TSC read inside the read section); ok is false when the page
// leaves the clock to the syscall.
func (v *VVar) ReadMonotonic() (mono uint64, ok bool) {
	d := v.d
	for {
		s := atomic.LoadUint32(&d.seq)
		if s&1 != 0 {
			runtime.Gosched()
			continue
		}
		if atomic.LoadUint32(&d.mode) != ModeTSC {
			return 0, false
		}
		p := Params{
			TSCBase:  atomic.LoadUint64(&d.tscBase),
			MonoBase: atomic.LoadUint64(&d.monoBase),
			Mult:     atomic.LoadUint64(&d.mult),
			Shift:    atomic.LoadUint32(&d.shift),
		}
		tsc := ReadTSC()
		if atomic.LoadUint32(&d.seq) == s {
			return p.MonoAt(tsc), true
		}
	}
}

// SetCPU sets what getcpu reports through the vDSO.
func (v *VVar) SetCPU(cpu, node uint32) {
	atomic.StoreUint32(&v.d.cpu, cpu)
	atomic.StoreUint32(&v.d.node, node)
}
