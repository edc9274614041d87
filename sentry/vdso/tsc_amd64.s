#include "textflag.h"

// func ReadTSC() uint64
TEXT ·ReadTSC(SB), NOSPLIT, $0-8
	LFENCE
	RDTSC
	LFENCE
	SHLQ $32, DX
	ORQ DX, AX
	MOVQ AX, ret+0(FP)
	RET

// func ReadTSCAfterStores() uint64
TEXT ·ReadTSCAfterStores(SB), NOSPLIT, $0-8
	MFENCE
	LFENCE
	RDTSC
	LFENCE
	SHLQ $32, DX
	ORQ DX, AX
	MOVQ AX, ret+0(FP)
	RET

// func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL subleaf+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func callC3(fn, a0, a1, a2 uintptr) uintptr
//
// Calls a System V function of the vDSO on the goroutine's stack. The vDSO
// functions are leaves needing well under the stack guard's slack.
TEXT ·callC3(SB), NOSPLIT, $0-40
	MOVQ fn+0(FP), AX
	MOVQ a0+8(FP), DI
	MOVQ a1+16(FP), SI
	MOVQ a2+24(FP), DX
	MOVQ SP, BX
	ANDQ $~15, SP
	CALL AX
	MOVQ BX, SP
	MOVQ AX, ret+32(FP)
	RET
