package arch

import (
	"encoding/binary"
	"testing"
)

func TestSignalFrameRoundTrip(t *testing.T) {
	c := &Context{}
	c.ResetForExec(0x401000, 0x7fff0000)
	c.Regs.Rax, c.Regs.Rbx, c.Regs.R15 = 1, 2, 15
	c.Regs.Eflags = 0x246
	info := &SignalInfo{Signo: 10, Code: SI_USER}
	info.SetPID(42)
	f := BuildSignalFrame(c, 0x7fff0000, false, info, 0x5, 0x400500, SignalStack{Flags: SS_DISABLE}, 0)

	// The handler's entry has rsp+8 16-byte aligned (a call's layout),
	// the frame sits below the red zone, and the FP image is 64-aligned.
	if (uint64(f.Addr)+8)%16 != 0 {
		t.Errorf("frame at %#x: rsp+8 not 16-byte aligned", f.Addr)
	}
	if uint64(f.FPAddr)%64 != 0 || uint64(f.FPAddr)+uint64(len(f.FP)) > 0x7fff0000-redZone {
		t.Errorf("fp image at %#x (len %d) misplaced", f.FPAddr, len(f.FP))
	}
	if got := binary.LittleEndian.Uint64(f.Bytes); got != 0x400500 {
		t.Errorf("return address %#x, want the restorer", got)
	}
	if got := SignalInfoFromBytes(f.Bytes[siginfoOff:]); got.Signo != 10 || got.PID() != 42 {
		t.Errorf("siginfo %+v", got)
	}

	// rt_sigreturn reads the ucontext at the handler's rsp after `ret`.
	saved := c.Regs
	c.Regs.Rax, c.Regs.Rip, c.Regs.Cs = 99, 0xdead, 0 // the handler ran
	mask, _, fpAddr := RestoreSignalFrame(c, f.Bytes[ucOff:])
	if mask != 0x5 {
		t.Errorf("mask %#x", mask)
	}
	if fpAddr != uint64(f.FPAddr) {
		t.Errorf("fp pointer %#x, want %#x", fpAddr, f.FPAddr)
	}
	saved.Orig_rax = ^uint64(0)
	if c.Regs != saved {
		t.Errorf("registers not restored:\n got %+v\nwant %+v", c.Regs, saved)
	}
}

func TestSigreturnCannotSetPrivilegedState(t *testing.T) {
	c := &Context{}
	c.ResetForExec(0x401000, 0x7fff0000)
	f := BuildSignalFrame(c, 0x7fff0000, false, &SignalInfo{Signo: 11}, 0, 0, SignalStack{}, 0)
	mc := f.Bytes[ucMcontextOff:]
	o := 8 * len(sigcontextRegs)
	binary.LittleEndian.PutUint16(mc[o:], 0x8)                          // a kernel CS
	binary.LittleEndian.PutUint64(mc[8*17:], 0x3000|0x200|0x4000|0x100) // IOPL, IF, NT, TF
	RestoreSignalFrame(c, f.Bytes[ucOff:])
	if c.Regs.Cs != UserCS || c.Regs.Ss != UserSS {
		t.Errorf("segments %#x/%#x, want user segments", c.Regs.Cs, c.Regs.Ss)
	}
	if c.Regs.Eflags&0x3000 != 0 {
		t.Errorf("IOPL restored from the frame: eflags %#x", c.Regs.Eflags)
	}
	if c.Regs.Eflags&0x100 == 0 {
		t.Errorf("TF (user-settable) not restored: eflags %#x", c.Regs.Eflags)
	}
}
