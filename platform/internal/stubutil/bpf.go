package stubutil

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// BPF opcodes and seccomp constants (linux/filter.h, linux/seccomp.h).
const (
	bpfLD  = 0x00
	bpfW   = 0x00
	bpfABS = 0x20
	bpfJMP = 0x05
	bpfJEQ = 0x10
	bpfJGE = 0x30
	bpfK   = 0x00
	bpfRET = 0x06

	SeccompRetKillProcess = 0x80000000
	SeccompRetTrap        = 0x00030000
	SeccompRetTrace       = 0x7ff00000
	SeccompRetAllow       = 0x7fff0000
	AuditArchX86_64       = 0xc000003e

	// Offsets in struct seccomp_data.
	SeccompDataNR     = 0
	SeccompDataArch   = 4
	SeccompDataIPLow  = 8
	SeccompDataIPHigh = 12
	SeccompDataArg1   = 16 + 8
)

// SeccompDataArgLow and SeccompDataArgHigh are the offsets of the low and
// high 32 bits of syscall argument i in struct seccomp_data.
func SeccompDataArgLow(i int) uint32  { return uint32(16 + 8*i) }
func SeccompDataArgHigh(i int) uint32 { return uint32(16 + 8*i + 4) }

// LoadAbs is "A = the 32-bit word at off" (of the seccomp_data).
func LoadAbs(off uint32) unix.SockFilter {
	return unix.SockFilter{Code: bpfLD | bpfW | bpfABS, K: off}
}

// Ret is "return v".
func Ret(v uint32) unix.SockFilter { return unix.SockFilter{Code: bpfRET | bpfK, K: v} }

// JEQ is "if A == k skip jt instructions, else skip jf".
func JEQ(k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: bpfJMP | bpfJEQ | bpfK, K: k, Jt: jt, Jf: jf}
}

// Program assembles a classic BPF program with symbolic jump targets.
// The zero value is an empty program.
type Program struct {
	ins    []unix.SockFilter
	labels map[string]int
	fixups map[int][2]string // instruction -> (true label, false label)
}

// Label names the next instruction.
func (b *Program) Label(name string) {
	if b.labels == nil {
		b.labels = map[string]int{}
	}
	b.labels[name] = len(b.ins)
}

// LoadAbs appends LoadAbs(off).
func (b *Program) LoadAbs(off uint32) { b.ins = append(b.ins, LoadAbs(off)) }

// Ret appends Ret(v).
func (b *Program) Ret(v uint32) { b.ins = append(b.ins, Ret(v)) }

// JEQ appends a jump to label t if A == k, else to label f ("" means the
// next instruction).
func (b *Program) JEQ(k uint32, t, f string) {
	if b.fixups == nil {
		b.fixups = map[int][2]string{}
	}
	b.fixups[len(b.ins)] = [2]string{t, f}
	b.ins = append(b.ins, JEQ(k, 0, 0))
}

// JGE appends a jump to label t if A >= k, else to label f.
func (b *Program) JGE(k uint32, t, f string) {
	if b.fixups == nil {
		b.fixups = map[int][2]string{}
	}
	b.fixups[len(b.ins)] = [2]string{t, f}
	b.ins = append(b.ins, unix.SockFilter{Code: bpfJMP | bpfJGE | bpfK, K: k})
}

// Assemble resolves the jumps and returns the program. A jump to an
// unknown label, backwards, or farther than 255 instructions is an error.
func (b *Program) Assemble() ([]unix.SockFilter, error) {
	for i, l := range b.fixups {
		for j, name := range l {
			if name == "" {
				continue
			}
			to, ok := b.labels[name]
			if !ok || to <= i || to-i-1 > 255 {
				return nil, fmt.Errorf("bad bpf jump to %q", name)
			}
			if j == 0 {
				b.ins[i].Jt = uint8(to - i - 1)
			} else {
				b.ins[i].Jf = uint8(to - i - 1)
			}
		}
	}
	return b.ins, nil
}
