package vdso

// ReadTSC reads the time-stamp counter after every earlier load of this
// thread and before every later one (LFENCE on both sides), as the vDSO
// reads it.
func ReadTSC() uint64

// ReadTSCAfterStores reads the time-stamp counter after every earlier load
// and store of this thread is globally visible (MFENCE; LFENCE): what a
// vvar writer reads between BeginUpdate and Store for the new anchor.
func ReadTSCAfterStores() uint64

// cpuid executes CPUID with the given leaf and subleaf.
//
//go:noescape
func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

// callC3 calls the C function at fn with three integer arguments; the
// tests use it to run the image's functions in the test process.
func callC3(fn, a0, a1, a2 uintptr) uintptr

// InvariantTSC reports whether the CPU says its TSC runs at a constant
// rate in every P-, C- and T-state (CPUID 80000007H EDX bit 8), the
// condition for timekeeping from it; Linux calls the flag nonstop_tsc.
func InvariantTSC() bool {
	if max, _, _, _ := cpuid(0x80000000, 0); max < 0x80000007 {
		return false
	}
	_, _, _, edx := cpuid(0x80000007, 0)
	return edx&(1<<8) != 0
}
