package loader

// HWCAP2_FSGSBASE (arch/x86/include/uapi/asm/hwcap2.h).
const (
	hwcap2FSGSBase = 1 << 1
)

// HostHWCap returns the AT_HWCAP and AT_HWCAP2 values Linux reports on this
// CPU: AT_HWCAP is EDX of CPUID leaf 1, and AT_HWCAP2 has HWCAP2_FSGSBASE
// when the CPU has the FSGSBASE instructions (leaf 7, EBX bit 0), which every
// kernel since 5.9 enables for user space. HWCAP2_RING3MWAIT, which Linux
// sets only on a few Xeon Phi models, is never reported.
//
// It issues CPUID directly rather than reading the host's auxv, which the
// sentry cannot open once it is confined.
func HostHWCap() (hwcap, hwcap2 uint64) {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 1 {
		return 0, 0
	}
	_, _, _, edx := cpuid(1, 0)
	hwcap = uint64(edx)
	if maxLeaf >= 7 {
		if _, ebx, _, _ := cpuid(7, 0); ebx&1 != 0 {
			hwcap2 |= hwcap2FSGSBase
		}
	}
	return hwcap, hwcap2
}
