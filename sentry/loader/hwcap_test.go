package loader

import (
	"encoding/binary"
	"os"
	"testing"
)

// HostHWCap must agree with what the host kernel put in this test
// process's own auxiliary vector.
func TestHostHWCapMatchesKernel(t *testing.T) {
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		t.Skipf("no /proc/self/auxv: %v", err)
	}
	want := map[uint64]uint64{}
	for i := 0; i+16 <= len(b); i += 16 {
		want[binary.LittleEndian.Uint64(b[i:])] = binary.LittleEndian.Uint64(b[i+8:])
	}
	hwcap, hwcap2 := HostHWCap()
	if hwcap != want[AT_HWCAP] {
		t.Errorf("HostHWCap hwcap = %#x, kernel says %#x", hwcap, want[AT_HWCAP])
	}
	if hwcap2&hwcap2FSGSBase != want[AT_HWCAP2]&hwcap2FSGSBase {
		t.Errorf("HostHWCap hwcap2 = %#x, kernel says %#x", hwcap2, want[AT_HWCAP2])
	}
	// Every x86-64 CPU has FPU, TSC, CX8, CMOV, FXSR, SSE and SSE2.
	const baseline = 1<<0 | 1<<4 | 1<<8 | 1<<15 | 1<<24 | 1<<25 | 1<<26
	if hwcap&baseline != baseline {
		t.Errorf("hwcap %#x lacks x86-64 baseline features", hwcap)
	}
}
