package proc

import (
	"encoding/binary"
	"strings"
)

// cpuid executes CPUID: /proc/cpuinfo describes the CPU the sandbox runs
// on as it describes itself.
//
//go:noescape
func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

// cpuIdent is what cpuinfo shows of the processor's identity.
type cpuIdent struct {
	vendor, brand           string
	family, model, stepping uint32
	physBits, virtBits      uint32
}

func identifyCPU() cpuIdent {
	var id cpuIdent
	max, b, c, d := cpuid(0, 0)
	var v [12]byte
	binary.LittleEndian.PutUint32(v[0:], b)
	binary.LittleEndian.PutUint32(v[4:], d)
	binary.LittleEndian.PutUint32(v[8:], c)
	id.vendor = string(v[:])
	if max >= 1 {
		a, _, _, _ := cpuid(1, 0)
		id.stepping = a & 0xf
		id.model = (a >> 4) & 0xf
		id.family = (a >> 8) & 0xf
		if id.family == 0xf {
			id.family += (a >> 20) & 0xff
		}
		if id.family == 0x6 || id.family >= 0xf {
			id.model |= ((a >> 16) & 0xf) << 4
		}
	}
	if ext, _, _, _ := cpuid(0x80000000, 0); ext >= 0x80000004 {
		var s [48]byte
		for i := uint32(0); i < 3; i++ {
			a, b, c, d := cpuid(0x80000002+i, 0)
			for j, r := range []uint32{a, b, c, d} {
				binary.LittleEndian.PutUint32(s[i*16+uint32(j)*4:], r)
			}
		}
		id.brand = strings.TrimSpace(strings.TrimRight(string(s[:]), "\x00"))
	}
	id.physBits, id.virtBits = 46, 48
	if ext, _, _, _ := cpuid(0x80000000, 0); ext >= 0x80000008 {
		a, _, _, _ := cpuid(0x80000008, 0)
		id.physBits, id.virtBits = a&0xff, (a>>8)&0xff
	}
	if id.brand == "" {
		id.brand = "unknown"
	}
	return id
}
