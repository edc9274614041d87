//go:build !amd64

package loader

// cpuid reports nothing on CPUs without the instruction; Veil only runs
// x86-64 applications, so HostHWCap is then all zeros.
func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32) { return 0, 0, 0, 0 }
