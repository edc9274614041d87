package linux

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func init() {
	reg(unix.SYS_OPENAT2, Full, Openat2)
}

// validOpenFlags are the flags open(2) knows (VALID_OPEN_FLAGS); open and
// openat drop others, openat2 refuses them.
const validOpenFlags = unix.O_ACCMODE | unix.O_CREAT | unix.O_EXCL | unix.O_NOCTTY | unix.O_TRUNC |
	unix.O_APPEND | unix.O_NONBLOCK | unix.O_DSYNC | unix.O_ASYNC | unix.O_DIRECT | unix.O_LARGEFILE |
	unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_NOATIME | unix.O_CLOEXEC | unix.O_SYNC | unix.O_PATH |
	vfs.OTmpfileBit

// oPathFlags are the flags that mean something with O_PATH.
const oPathFlags = unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_PATH | unix.O_CLOEXEC

// willCreate reports whether open flags make a file (and so use the mode).
func willCreate(flags uint64) bool { return flags&(unix.O_CREAT|vfs.OTmpfileBit) != 0 }

// openHowSize is sizeof(struct open_how) as first published
// (OPEN_HOW_SIZE_VER0): flags, mode and resolve, each a __u64.
const openHowSize = 24

// Openat2 is openat2(2).
func Openat2(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	dirfd, pathAddr, howAddr, size := args[0].Int(), args[1].Pointer(), args[2].Pointer(), uint64(args[3].SizeT())
	if size < openHowSize {
		return 0, unix.EINVAL
	}
	if size > hostarch.PageSize {
		return 0, unix.E2BIG
	}
	buf := make([]byte, size)
	if _, err := t.CopyInBytes(howAddr, buf); err != nil {
		return 0, unix.EFAULT
	}
	// A larger struct from a newer libc is fine as long as the fields we
	// do not know are zero (copy_struct_from_user).
	for _, b := range buf[openHowSize:] {
		if b != 0 {
			return 0, unix.E2BIG
		}
	}
	flags := binary.LittleEndian.Uint64(buf[0:])
	mode := binary.LittleEndian.Uint64(buf[8:])
	resolve := binary.LittleEndian.Uint64(buf[16:])
	if flags&^validOpenFlags != 0 || resolve&^vfs.ResolveAll != 0 {
		return 0, unix.EINVAL
	}
	if resolve&vfs.ResolveBeneath != 0 && resolve&vfs.ResolveInRoot != 0 {
		return 0, unix.EINVAL
	}
	if willCreate(flags) {
		if mode&^07777 != 0 {
			return 0, unix.EINVAL
		}
	} else if mode != 0 {
		return 0, unix.EINVAL
	}
	if flags&unix.O_PATH != 0 && flags&^oPathFlags != 0 {
		return 0, unix.EINVAL
	}
	if resolve&vfs.ResolveCached != 0 && flags&(unix.O_TRUNC|unix.O_CREAT|vfs.OTmpfileBit) != 0 {
		return 0, unix.EAGAIN
	}
	return doOpen(t, dirfd, pathAddr, uint32(flags), uint32(mode), resolve)
}

// doOpen is the common part of open, openat and openat2, after each has
// vetted its flags.
func doOpen(t *kernel.Task, dirfd int32, pathAddr hostarch.Addr, flags, mode uint32, resolve uint64) (uintptr, error) {
	if flags&vfs.OTmpfileBit != 0 {
		// O_TMPFILE needs O_DIRECTORY, no O_CREAT, and a writable mode.
		if flags&(vfs.OTmpfileBit|unix.O_DIRECTORY|unix.O_CREAT) != unix.O_TMPFILE {
			return 0, unix.EINVAL
		}
		if acc := flags & unix.O_ACCMODE; acc != unix.O_WRONLY && acc != unix.O_RDWR {
			return 0, unix.EINVAL
		}
	}
	if flags&unix.O_PATH != 0 {
		flags &= oPathFlags
	} else if flags&unix.O_ACCMODE == unix.O_ACCMODE {
		return 0, unix.EINVAL
	}
	path, err := copyInPath(t, pathAddr)
	if err != nil {
		return 0, err
	}
	pop, done, err := pathOpFrom(t, dirfd, path, flags&unix.O_NOFOLLOW == 0, resolve&(vfs.ResolveBeneath|vfs.ResolveInRoot) != 0)
	if err != nil {
		return 0, err
	}
	defer done()
	pop.Resolve = resolve
	if willCreate(uint64(flags)) {
		mode = mode &^ t.FSContext().Umask()
	} else {
		mode = 0
	}
	file, err := t.Kernel().VFS().OpenAt(t, pop, vfs.OpenOptions{Flags: flags, Mode: mode & 07777})
	if err != nil {
		return 0, err
	}
	defer file.DecRef(t)
	fd, err := t.FDTable().NewFD(0, file, vfs.FDFlags{CloseOnExec: flags&unix.O_CLOEXEC != 0}, t.FileLimit())
	return uintptr(fd), err
}
