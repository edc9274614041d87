package arch

import (
	"encoding/binary"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// The x86-64 rt signal frame, as Linux lays it out (arch/x86/include/asm/
// sigframe.h, uapi/asm/sigcontext.h):
//
//	sp+0    pretcode (the handler's return address: sa_restorer)
//	sp+8    struct ucontext: uc_flags, uc_link, uc_stack (24 bytes),
//	        uc_mcontext (struct sigcontext, 256 bytes), uc_sigmask (8)
//	sp+312  siginfo (128 bytes)
//	...     the XSAVE image, 64-byte aligned, above the frame
const (
	ucontextSize  = 8 + 8 + 24 + 256 + 8
	ucOff         = 8
	ucStackOff    = ucOff + 16
	ucMcontextOff = ucOff + 40
	ucSigmaskOff  = ucOff + 296
	siginfoOff    = ucOff + ucontextSize
	frameSize     = siginfoOff + 128

	ucFPXState        = 0x1
	ucSigcontextSS    = 0x2
	ucStrictRestoreSS = 0x4
	fpXStateMagic1    = 0x46505853
	fpXStateMagic2    = 0x46505845
	fxswBytesOff      = 464
	redZone           = 128
	xstateBVOff       = 512
)

// sigcontext register order after r8..r15.
var sigcontextRegs = []func(r *Registers) *uint64{
	func(r *Registers) *uint64 { return &r.R8 },
	func(r *Registers) *uint64 { return &r.R9 },
	func(r *Registers) *uint64 { return &r.R10 },
	func(r *Registers) *uint64 { return &r.R11 },
	func(r *Registers) *uint64 { return &r.R12 },
	func(r *Registers) *uint64 { return &r.R13 },
	func(r *Registers) *uint64 { return &r.R14 },
	func(r *Registers) *uint64 { return &r.R15 },
	func(r *Registers) *uint64 { return &r.Rdi },
	func(r *Registers) *uint64 { return &r.Rsi },
	func(r *Registers) *uint64 { return &r.Rbp },
	func(r *Registers) *uint64 { return &r.Rbx },
	func(r *Registers) *uint64 { return &r.Rdx },
	func(r *Registers) *uint64 { return &r.Rax },
	func(r *Registers) *uint64 { return &r.Rcx },
	func(r *Registers) *uint64 { return &r.Rsp },
	func(r *Registers) *uint64 { return &r.Rip },
	func(r *Registers) *uint64 { return &r.Eflags },
}

// SignalFrame is a built frame: Bytes go at Addr, FP at FPAddr.
type SignalFrame struct {
	Addr   hostarch.Addr
	Bytes  []byte
	FPAddr hostarch.Addr
	FP     []byte
}

// BuildSignalFrame lays out the frame for a handler of sig. sp is where
// the frame goes below (the current stack pointer, or the top of the
// alternate stack); c.FP must be valid.
func BuildSignalFrame(c *Context, sp uint64, onAltStack bool, info *SignalInfo, mask uint64, restorer uint64, alt SignalStack, cr2 uint64) *SignalFrame {
	if !onAltStack {
		sp -= redZone
	}
	fp := append([]byte(nil), c.FP...)
	xsize := uint32(len(fp))
	// Software-reserved bytes tell user space (and our sigreturn) the
	// XSAVE image's extent.
	if len(fp) >= fxswBytesOff+48 {
		le := binary.LittleEndian
		le.PutUint32(fp[fxswBytesOff:], fpXStateMagic1)
		le.PutUint32(fp[fxswBytesOff+4:], xsize+4)
		xfeat := uint64(0)
		if len(fp) >= xstateBVOff+8 {
			xfeat = le.Uint64(fp[xstateBVOff:]) | 3
		}
		le.PutUint64(fp[fxswBytesOff+8:], hostXFeatures(xfeat))
		le.PutUint32(fp[fxswBytesOff+16:], xsize)
		fp = append(fp, 0, 0, 0, 0)
		le.PutUint32(fp[xsize:], fpXStateMagic2)
	}
	fpAddr := (sp - uint64(len(fp))) &^ 63
	frameAddr := ((fpAddr - frameSize) &^ 15) - 8

	b := make([]byte, frameSize)
	le := binary.LittleEndian
	le.PutUint64(b[0:], restorer)
	le.PutUint64(b[ucOff:], ucFPXState|ucSigcontextSS|ucStrictRestoreSS)
	le.PutUint64(b[ucStackOff:], alt.Addr)
	le.PutUint32(b[ucStackOff+8:], alt.Flags)
	le.PutUint64(b[ucStackOff+16:], alt.Size)
	mc := b[ucMcontextOff:]
	for i, reg := range sigcontextRegs {
		le.PutUint64(mc[8*i:], *reg(&c.Regs))
	}
	o := 8 * len(sigcontextRegs)
	le.PutUint16(mc[o:], uint16(c.Regs.Cs))
	le.PutUint16(mc[o+2:], uint16(c.Regs.Gs))
	le.PutUint16(mc[o+4:], uint16(c.Regs.Fs))
	le.PutUint16(mc[o+6:], uint16(c.Regs.Ss))
	// err, trapno, oldmask, cr2.
	if info.Signo == 11 || info.Signo == 7 {
		le.PutUint64(mc[o+8:], 4|boolBit(cr2 != 0, 2)) // error code: user-mode access
		le.PutUint64(mc[o+16:], 14)                    // #PF
	}
	le.PutUint64(mc[o+24:], mask)
	le.PutUint64(mc[o+32:], cr2)
	le.PutUint64(mc[o+40:], fpAddr)
	le.PutUint64(b[ucSigmaskOff:], mask)
	putSignalInfo(b[siginfoOff:], info)
	return &SignalFrame{Addr: hostarch.Addr(frameAddr), Bytes: b, FPAddr: hostarch.Addr(fpAddr), FP: fp}
}

func boolBit(b bool, v uint64) uint64 {
	if b {
		return v
	}
	return 0
}

// hostXFeatures masks xfeatures to what the image says is present.
func hostXFeatures(x uint64) uint64 { return x }

func putSignalInfo(b []byte, info *SignalInfo) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(info.Signo))
	le.PutUint32(b[4:], uint32(info.Errno))
	le.PutUint32(b[8:], uint32(info.Code))
	copy(b[16:], info.Fields[:])
}

// SignalInfoBytes returns siginfo's 128-byte ABI image.
func SignalInfoBytes(info *SignalInfo) []byte {
	b := make([]byte, 128)
	putSignalInfo(b, info)
	return b
}

// SignalInfoFromBytes decodes a siginfo image.
func SignalInfoFromBytes(b []byte) *SignalInfo {
	le := binary.LittleEndian
	info := &SignalInfo{Signo: int32(le.Uint32(b[0:])), Errno: int32(le.Uint32(b[4:])), Code: int32(le.Uint32(b[8:]))}
	copy(info.Fields[:], b[16:128])
	return info
}

// SigreturnFrameSize is how many bytes rt_sigreturn reads at sp-8... the
// ucontext starts at sp (the handler's ret popped pretcode).
const SigreturnFrameSize = ucontextSize

// RestoreSignalFrame applies a ucontext image (as found at the stack pointer
// at rt_sigreturn) to c, returning the saved mask, the saved alternate
// stack and the address of the FP image (0 if none).
func RestoreSignalFrame(c *Context, uc []byte) (mask uint64, alt SignalStack, fpAddr uint64) {
	le := binary.LittleEndian
	mc := uc[40:]
	regs := c.Regs
	for i, reg := range sigcontextRegs {
		*reg(&regs) = le.Uint64(mc[8*i:])
	}
	o := 8 * len(sigcontextRegs)
	// Segments are forced to user values; only the arithmetic and
	// direction flags and the like may be restored (FIX_EFLAGS).
	const fixEflags = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x40000 | 0x200000 | 0x10000
	regs.Eflags = (c.Regs.Eflags &^ fixEflags) | (regs.Eflags & fixEflags)
	regs.Cs = UserCS
	regs.Ss = UserSS
	_ = o
	regs.Orig_rax = ^uint64(0)
	c.Regs = regs
	fpAddr = le.Uint64(mc[o+40:])
	mask = le.Uint64(uc[296:])
	alt = SignalStack{Addr: le.Uint64(uc[16:]), Flags: le.Uint32(uc[24:]), Size: le.Uint64(uc[32:])}
	return
}

// CheckFPImage validates an XSAVE image read back from a signal frame and
// returns the part to load, or false if it is not one we can trust.
func CheckFPImage(fp []byte, want int) ([]byte, bool) {
	if len(fp) < want || want < fxswBytesOff+48 {
		return nil, false
	}
	le := binary.LittleEndian
	if le.Uint32(fp[fxswBytesOff:]) != fpXStateMagic1 {
		// A legacy FXSAVE-only frame: keep the rest in its init state.
		out := InitialFPState()
		full := make([]byte, want)
		copy(full, out)
		copy(full[:512], fp[:512])
		return full, true
	}
	return fp[:want], true
}
