package linux

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/memfd"
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func init() {
	reg(unix.SYS_MEMFD_CREATE, Partial, MemfdCreate,
		"MFD_HUGETLB, MFD_EXEC and MFD_NOEXEC_SEAL give EINVAL; no F_SEAL_EXEC; seals are not reachable through a reopen of /proc/PID/fd/N")
}

// Flags of memfd_create (include/uapi/linux/memfd.h).
const (
	mfdCloexec      = 0x1
	mfdAllowSealing = 0x2
	mfdHugetlb      = 0x4
	mfdKnownFlags   = mfdCloexec | mfdAllowSealing
)

// MemfdCreate is memfd_create(2).
func MemfdCreate(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	flags := args[1].Uint()
	if flags&^mfdKnownFlags != 0 {
		return 0, unix.EINVAL
	}
	// Linux copies at most the longest allowed name and its NUL.
	name, err := t.CopyInString(args[0].Pointer(), memfd.MaxNameLen+1)
	if err == unix.ENAMETOOLONG {
		return 0, unix.EINVAL
	}
	if err != nil {
		return 0, err
	}
	if len(name) > memfd.MaxNameLen {
		return 0, unix.EINVAL
	}
	creds := t.Credentials()
	f, err := memfd.New(t, t.Kernel().MemoryFile, name, vfs.CreateOptions{UID: creds.EffectiveKUID, GID: creds.EffectiveKGID}, flags&mfdAllowSealing != 0)
	if err != nil {
		return 0, err
	}
	defer f.DecRef(t)
	fd, err := t.FDTable().NewFD(0, f, vfs.FDFlags{CloseOnExec: flags&mfdCloexec != 0}, t.FileLimit())
	return uintptr(fd), err
}

// fcntlSeals is fcntl's F_ADD_SEALS and F_GET_SEALS: EINVAL on files
// other than memfds.
func fcntlSeals(t *kernel.Task, f *vfs.FileDescription, cmd int32, seals uint32) (uintptr, error) {
	m := memfd.FromFD(f)
	if m == nil {
		return 0, unix.EINVAL
	}
	if cmd == unix.F_GET_SEALS {
		return uintptr(m.Seals()), nil
	}
	return 0, m.AddSeals(seals, f.IsWritable())
}
