package linux

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
)

func Getuid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return uintptr(t.Credentials().RealKUID), nil
}
func Geteuid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return uintptr(t.Credentials().EffectiveKUID), nil
}
func Getgid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return uintptr(t.Credentials().RealKGID), nil
}
func Getegid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return uintptr(t.Credentials().EffectiveKGID), nil
}

func Getresuid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	c := t.Credentials()
	for i, v := range []uint32{uint32(c.RealKUID), uint32(c.EffectiveKUID), uint32(c.SavedKUID)} {
		if err := copyOutU32(t, args[i].Pointer(), v); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

func Getresgid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	c := t.Credentials()
	for i, v := range []uint32{uint32(c.RealKGID), uint32(c.EffectiveKGID), uint32(c.SavedKGID)} {
		if err := copyOutU32(t, args[i].Pointer(), v); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

// fixCaps applies the capability rules of a UID change (capabilities(7),
// "Effect of user ID changes on capabilities").
func fixCaps(old, c *auth.Credentials) {
	wasRoot := old.RealKUID == 0 || old.EffectiveKUID == 0 || old.SavedKUID == 0
	isRoot := c.RealKUID == 0 || c.EffectiveKUID == 0 || c.SavedKUID == 0
	if wasRoot && !isRoot && !c.KeepCaps {
		c.PermittedCaps, c.EffectiveCaps, c.AmbientCaps = 0, 0, 0
	}
	if old.EffectiveKUID == 0 && c.EffectiveKUID != 0 {
		c.EffectiveCaps = 0
	}
	if old.EffectiveKUID != 0 && c.EffectiveKUID == 0 {
		c.EffectiveCaps = c.PermittedCaps
	}
}

// setresuid carries out the whole set*uid family; -1 (auth.NoID) keeps a
// field. Unprivileged callers may only use IDs they already have.
func setresuid(t *kernel.Task, r, e, s uint32) error {
	old := t.Credentials()
	priv := old.HasCapability(auth.CAP_SETUID)
	ok := func(id uint32) bool {
		k := auth.KUID(id)
		return id == auth.NoID || priv || k == old.RealKUID || k == old.EffectiveKUID || k == old.SavedKUID
	}
	if !ok(r) || !ok(e) || !ok(s) {
		return unix.EPERM
	}
	c := old.Fork()
	if r != auth.NoID {
		c.RealKUID = auth.KUID(r)
	}
	if e != auth.NoID {
		c.EffectiveKUID = auth.KUID(e)
	}
	if s != auth.NoID {
		c.SavedKUID = auth.KUID(s)
	}
	c.FSKUID = c.EffectiveKUID
	fixCaps(old, c)
	t.SetCredentials(c)
	return nil
}

func setresgid(t *kernel.Task, r, e, s uint32) error {
	old := t.Credentials()
	priv := old.HasCapability(auth.CAP_SETGID)
	ok := func(id uint32) bool {
		k := auth.KGID(id)
		return id == auth.NoID || priv || k == old.RealKGID || k == old.EffectiveKGID || k == old.SavedKGID
	}
	if !ok(r) || !ok(e) || !ok(s) {
		return unix.EPERM
	}
	c := old.Fork()
	if r != auth.NoID {
		c.RealKGID = auth.KGID(r)
	}
	if e != auth.NoID {
		c.EffectiveKGID = auth.KGID(e)
	}
	if s != auth.NoID {
		c.SavedKGID = auth.KGID(s)
	}
	c.FSKGID = c.EffectiveKGID
	t.SetCredentials(c)
	return nil
}

func Setuid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	id := args[0].Uint()
	if id == auth.NoID {
		return 0, unix.EINVAL
	}
	if t.Credentials().HasCapability(auth.CAP_SETUID) {
		return 0, setresuid(t, id, id, id)
	}
	return 0, setresuid(t, auth.NoID, id, auth.NoID)
}

func Setgid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	id := args[0].Uint()
	if id == auth.NoID {
		return 0, unix.EINVAL
	}
	if t.Credentials().HasCapability(auth.CAP_SETGID) {
		return 0, setresgid(t, id, id, id)
	}
	return 0, setresgid(t, auth.NoID, id, auth.NoID)
}

func Setreuid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	r, e := args[0].Uint(), args[1].Uint()
	s := uint32(auth.NoID)
	old := t.Credentials()
	if r != auth.NoID || (e != auth.NoID && auth.KUID(e) != old.RealKUID) {
		s = e
		if e == auth.NoID {
			s = uint32(old.EffectiveKUID)
		}
	}
	if r != auth.NoID && !old.HasCapability(auth.CAP_SETUID) && auth.KUID(r) != old.RealKUID && auth.KUID(r) != old.EffectiveKUID {
		return 0, unix.EPERM
	}
	return 0, setresuid(t, r, e, s)
}

func Setregid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	r, e := args[0].Uint(), args[1].Uint()
	s := uint32(auth.NoID)
	old := t.Credentials()
	if r != auth.NoID || (e != auth.NoID && auth.KGID(e) != old.RealKGID) {
		s = e
		if e == auth.NoID {
			s = uint32(old.EffectiveKGID)
		}
	}
	if r != auth.NoID && !old.HasCapability(auth.CAP_SETGID) && auth.KGID(r) != old.RealKGID && auth.KGID(r) != old.EffectiveKGID {
		return 0, unix.EPERM
	}
	return 0, setresgid(t, r, e, s)
}

func Setresuid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, setresuid(t, args[0].Uint(), args[1].Uint(), args[2].Uint())
}

func Setresgid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, setresgid(t, args[0].Uint(), args[1].Uint(), args[2].Uint())
}

func Setfsuid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	old := t.Credentials()
	prev := uintptr(old.FSKUID)
	id := auth.KUID(args[0].Uint())
	if args[0].Uint() != auth.NoID && (old.HasCapability(auth.CAP_SETUID) || id == old.RealKUID || id == old.EffectiveKUID || id == old.SavedKUID) {
		c := old.Fork()
		c.FSKUID = id
		t.SetCredentials(c)
	}
	return prev, nil
}

func Setfsgid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	old := t.Credentials()
	prev := uintptr(old.FSKGID)
	id := auth.KGID(args[0].Uint())
	if args[0].Uint() != auth.NoID && (old.HasCapability(auth.CAP_SETGID) || id == old.RealKGID || id == old.EffectiveKGID || id == old.SavedKGID) {
		c := old.Fork()
		c.FSKGID = id
		t.SetCredentials(c)
	}
	return prev, nil
}

const ngroupsMax = 65536

func Getgroups(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	n := args[0].Int()
	if n < 0 {
		return 0, unix.EINVAL
	}
	g := t.Credentials().ExtraKGIDs
	if n == 0 {
		return uintptr(len(g)), nil
	}
	if int(n) < len(g) {
		return 0, unix.EINVAL
	}
	b := make([]byte, 4*len(g))
	for i, id := range g {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(id))
	}
	if _, err := t.CopyOutBytes(args[1].Pointer(), b); err != nil {
		return 0, unix.EFAULT
	}
	return uintptr(len(g)), nil
}

func Setgroups(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	n := args[0].Int()
	if n < 0 || n > ngroupsMax {
		return 0, unix.EINVAL
	}
	if !t.Credentials().HasCapability(auth.CAP_SETGID) {
		return 0, unix.EPERM
	}
	b := make([]byte, 4*int(n))
	if _, err := t.CopyInBytes(args[1].Pointer(), b); err != nil {
		return 0, unix.EFAULT
	}
	c := t.Credentials().Fork()
	c.ExtraKGIDs = make([]auth.KGID, n)
	for i := range c.ExtraKGIDs {
		c.ExtraKGIDs[i] = auth.KGID(binary.LittleEndian.Uint32(b[4*i:]))
	}
	t.SetCredentials(c)
	return 0, nil
}

// capget/capset with _LINUX_CAPABILITY_VERSION_3 (two 32-bit words).
const (
	capV1 = 0x19980330
	capV2 = 0x20071026
	capV3 = 0x20080522
)

func capHeader(t *kernel.Task, args arch.SyscallArguments) (uint32, int32, error) {
	var b [8]byte
	if _, err := t.CopyInBytes(args[0].Pointer(), b[:]); err != nil {
		return 0, 0, unix.EFAULT
	}
	v := binary.LittleEndian.Uint32(b[0:])
	pid := int32(binary.LittleEndian.Uint32(b[4:]))
	if v != capV1 && v != capV2 && v != capV3 {
		copyOutU32(t, args[0].Pointer(), capV3)
		if args[1].Pointer() == 0 {
			return 0, 0, nil
		}
		return 0, 0, unix.EINVAL
	}
	if pid < 0 {
		return 0, 0, unix.EINVAL
	}
	return v, pid, nil
}

func Capget(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	v, pid, err := capHeader(t, args)
	if err != nil || v == 0 {
		return 0, err
	}
	target := t
	if pid != 0 {
		if target = t.Kernel().TaskByID(kernel.ThreadID(pid)); target == nil {
			return 0, unix.ESRCH
		}
	}
	if args[1].Pointer() == 0 {
		return 0, nil
	}
	c := target.Credentials()
	words := 2
	if v == capV1 {
		words = 1
	}
	var out []byte
	for i := 0; i < words; i++ {
		sh := uint(32 * i)
		out = binary.LittleEndian.AppendUint32(out, uint32(c.EffectiveCaps>>sh))
		out = binary.LittleEndian.AppendUint32(out, uint32(c.PermittedCaps>>sh))
		out = binary.LittleEndian.AppendUint32(out, uint32(c.InheritableCaps>>sh))
	}
	_, err = t.CopyOutBytes(args[1].Pointer(), out)
	return 0, err
}

func Capset(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	v, pid, err := capHeader(t, args)
	if err != nil || v == 0 {
		if err == nil {
			err = unix.EINVAL
		}
		return 0, err
	}
	if pid != 0 && kernel.ThreadID(pid) != t.ThreadID() {
		return 0, unix.EPERM
	}
	words := 2
	if v == capV1 {
		words = 1
	}
	b := make([]byte, 12*words)
	if _, err := t.CopyInBytes(args[1].Pointer(), b); err != nil {
		return 0, unix.EFAULT
	}
	var e, p, i auth.CapSet
	for w := 0; w < words; w++ {
		sh := uint(32 * w)
		e |= auth.CapSet(binary.LittleEndian.Uint32(b[12*w:])) << sh
		p |= auth.CapSet(binary.LittleEndian.Uint32(b[12*w+4:])) << sh
		i |= auth.CapSet(binary.LittleEndian.Uint32(b[12*w+8:])) << sh
	}
	old := t.Credentials()
	// Permitted may only shrink; effective must be within permitted;
	// inheritable within old inheritable|permitted (or bounding with
	// CAP_SETPCAP).
	if p&^old.PermittedCaps != 0 || e&^p != 0 {
		return 0, unix.EPERM
	}
	limit := old.InheritableCaps | old.PermittedCaps
	if old.HasCapability(auth.CAP_SETPCAP) {
		limit = old.InheritableCaps | old.BoundingCaps
	}
	if i&^limit != 0 {
		return 0, unix.EPERM
	}
	c := old.Fork()
	c.EffectiveCaps, c.PermittedCaps, c.InheritableCaps = e, p, i
	t.SetCredentials(c)
	return 0, nil
}

func Setpgid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return 0, t.SetProcessGroup(kernel.ThreadID(args[0].Int()), kernel.ThreadID(args[1].Int()))
}

func Getpgid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	pid := args[0].Int()
	if pid == 0 {
		return uintptr(t.ThreadGroup().ProcessGroupID()), nil
	}
	tg := t.Kernel().ThreadGroupByID(kernel.ThreadID(pid))
	if tg == nil {
		return 0, unix.ESRCH
	}
	return uintptr(tg.ProcessGroupID()), nil
}

func Getpgrp(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	return uintptr(t.ThreadGroup().ProcessGroupID()), nil
}

func Setsid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	sid, err := t.ThreadGroup().CreateSession()
	return uintptr(sid), err
}

func Getsid(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	pid := args[0].Int()
	if pid == 0 {
		return uintptr(t.ThreadGroup().SessionID()), nil
	}
	tg := t.Kernel().ThreadGroupByID(kernel.ThreadID(pid))
	if tg == nil {
		return 0, unix.ESRCH
	}
	return uintptr(tg.SessionID()), nil
}

func init() {
	reg(unix.SYS_GETUID, Full, Getuid)
	reg(unix.SYS_GETEUID, Full, Geteuid)
	reg(unix.SYS_GETGID, Full, Getgid)
	reg(unix.SYS_GETEGID, Full, Getegid)
	reg(unix.SYS_GETRESUID, Full, Getresuid)
	reg(unix.SYS_GETRESGID, Full, Getresgid)
	reg(unix.SYS_SETUID, Full, Setuid)
	reg(unix.SYS_SETGID, Full, Setgid)
	reg(unix.SYS_SETREUID, Full, Setreuid)
	reg(unix.SYS_SETREGID, Full, Setregid)
	reg(unix.SYS_SETRESUID, Full, Setresuid)
	reg(unix.SYS_SETRESGID, Full, Setresgid)
	reg(unix.SYS_SETFSUID, Full, Setfsuid)
	reg(unix.SYS_SETFSGID, Full, Setfsgid)
	reg(unix.SYS_GETGROUPS, Full, Getgroups)
	reg(unix.SYS_SETGROUPS, Full, Setgroups)
	reg(unix.SYS_CAPGET, Full, Capget)
	reg(unix.SYS_CAPSET, Full, Capset)
	reg(unix.SYS_SETPGID, Full, Setpgid)
	reg(unix.SYS_GETPGID, Full, Getpgid)
	reg(unix.SYS_GETPGRP, Full, Getpgrp)
	reg(unix.SYS_SETSID, Full, Setsid)
	reg(unix.SYS_GETSID, Full, Getsid)
}
