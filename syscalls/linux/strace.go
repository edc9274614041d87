package linux

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
)

// How --strace shows an argument.
type argKind int

const (
	aHex argKind = iota
	aInt
	aFD
	aPath
	aOct
	aWriteBuf // a buffer the call reads from; the next argument is its length
	aStrVec
	aOpenFlags
	aSignal
)

// straceArgs describes the arguments of the calls worth decoding; others
// print in hex.
var straceArgs = map[uintptr][]argKind{
	unix.SYS_READ:            {aFD, aHex, aInt},
	unix.SYS_WRITE:           {aFD, aWriteBuf, aInt},
	unix.SYS_PREAD64:         {aFD, aHex, aInt, aInt},
	unix.SYS_PWRITE64:        {aFD, aWriteBuf, aInt, aInt},
	unix.SYS_OPEN:            {aPath, aOpenFlags, aOct},
	unix.SYS_OPENAT:          {aFD, aPath, aOpenFlags, aOct},
	unix.SYS_CLOSE:           {aFD},
	unix.SYS_STAT:            {aPath, aHex},
	unix.SYS_LSTAT:           {aPath, aHex},
	unix.SYS_FSTAT:           {aFD, aHex},
	unix.SYS_NEWFSTATAT:      {aFD, aPath, aHex, aHex},
	unix.SYS_STATX:           {aFD, aPath, aHex, aHex, aHex},
	unix.SYS_ACCESS:          {aPath, aOct},
	unix.SYS_FACCESSAT:       {aFD, aPath, aOct},
	unix.SYS_FACCESSAT2:      {aFD, aPath, aOct, aHex},
	unix.SYS_EXECVE:          {aPath, aStrVec, aHex},
	unix.SYS_EXECVEAT:        {aFD, aPath, aStrVec, aHex, aHex},
	unix.SYS_CHDIR:           {aPath},
	unix.SYS_MKDIR:           {aPath, aOct},
	unix.SYS_MKDIRAT:         {aFD, aPath, aOct},
	unix.SYS_UNLINK:          {aPath},
	unix.SYS_UNLINKAT:        {aFD, aPath, aHex},
	unix.SYS_RMDIR:           {aPath},
	unix.SYS_READLINK:        {aPath, aHex, aInt},
	unix.SYS_READLINKAT:      {aFD, aPath, aHex, aInt},
	unix.SYS_RENAME:          {aPath, aPath},
	unix.SYS_SYMLINK:         {aPath, aPath},
	unix.SYS_CHMOD:           {aPath, aOct},
	unix.SYS_DUP:             {aFD},
	unix.SYS_DUP2:            {aFD, aFD},
	unix.SYS_DUP3:            {aFD, aFD, aHex},
	unix.SYS_FCNTL:           {aFD, aInt, aHex},
	unix.SYS_IOCTL:           {aFD, aHex, aHex},
	unix.SYS_LSEEK:           {aFD, aInt, aInt},
	unix.SYS_GETDENTS64:      {aFD, aHex, aInt},
	unix.SYS_KILL:            {aInt, aSignal},
	unix.SYS_TGKILL:          {aInt, aInt, aSignal},
	unix.SYS_TKILL:           {aInt, aSignal},
	unix.SYS_RT_SIGACTION:    {aSignal, aHex, aHex, aInt},
	unix.SYS_WAIT4:           {aInt, aHex, aHex, aHex},
	unix.SYS_EXIT:            {aInt},
	unix.SYS_EXIT_GROUP:      {aInt},
	unix.SYS_MMAP:            {aHex, aInt, aHex, aHex, aFD, aHex},
	unix.SYS_MUNMAP:          {aHex, aInt},
	unix.SYS_MPROTECT:        {aHex, aInt, aHex},
	unix.SYS_BRK:             {aHex},
	unix.SYS_CLOCK_NANOSLEEP: {aInt, aHex, aHex, aHex},
}

func straceArg(t *kernel.Task, kind argKind, args arch.SyscallArguments, i int) string {
	a := args[i]
	switch kind {
	case aInt:
		return strconv.FormatInt(a.Int64(), 10)
	case aFD:
		if a.Int() == unix.AT_FDCWD {
			return "AT_FDCWD"
		}
		return strconv.Itoa(int(a.Int()))
	case aOct:
		return fmt.Sprintf("%#o", a.Uint())
	case aPath:
		s, err := t.CopyInString(a.Pointer(), unix.PathMax)
		if err != nil {
			return fmt.Sprintf("%#x", a.Value)
		}
		return strconv.Quote(s)
	case aWriteBuf:
		n := int(args[i+1].Int64())
		if n < 0 {
			n = 0
		}
		if n > 32 {
			n = 32
		}
		b := make([]byte, n)
		c, _ := t.CopyInBytes(a.Pointer(), b)
		q := strconv.Quote(string(b[:c]))
		if int(args[i+1].Int64()) > c {
			q += "..."
		}
		return q
	case aStrVec:
		var parts []string
		addr := a.Pointer()
		for j := 0; j < 8 && addr != 0; j++ {
			p, err := copyInU64(t, addr)
			if err != nil || p == 0 {
				break
			}
			s, err := t.CopyInString(hostarch.Addr(p), 256)
			if err != nil {
				break
			}
			parts = append(parts, strconv.Quote(s))
			addr += 8
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case aOpenFlags:
		return openFlagsString(a.Uint())
	case aSignal:
		if s := unix.SignalName(unix.Signal(a.Int())); s != "" {
			return s
		}
		return strconv.Itoa(int(a.Int()))
	}
	return fmt.Sprintf("%#x", a.Value)
}

func openFlagsString(f uint32) string {
	var parts []string
	switch f & unix.O_ACCMODE {
	case unix.O_RDONLY:
		parts = append(parts, "O_RDONLY")
	case unix.O_WRONLY:
		parts = append(parts, "O_WRONLY")
	case unix.O_RDWR:
		parts = append(parts, "O_RDWR")
	}
	names := []struct {
		bit  uint32
		name string
	}{
		{unix.O_CREAT, "O_CREAT"}, {unix.O_EXCL, "O_EXCL"}, {unix.O_NOCTTY, "O_NOCTTY"},
		{unix.O_TRUNC, "O_TRUNC"}, {unix.O_APPEND, "O_APPEND"}, {unix.O_NONBLOCK, "O_NONBLOCK"},
		{unix.O_DIRECTORY, "O_DIRECTORY"}, {unix.O_NOFOLLOW, "O_NOFOLLOW"}, {unix.O_CLOEXEC, "O_CLOEXEC"},
		{unix.O_PATH, "O_PATH"}, {unix.O_TMPFILE &^ unix.O_DIRECTORY, "O_TMPFILE"}, {unix.O_DSYNC, "O_DSYNC"},
	}
	rest := f &^ unix.O_ACCMODE
	for _, n := range names {
		if rest&n.bit == n.bit && n.bit != 0 {
			parts = append(parts, n.name)
			rest &^= n.bit
		}
	}
	if rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", rest))
	}
	return strings.Join(parts, "|")
}

// straceEnter formats a syscall as strace(1) does.
func straceEnter(t *kernel.Task, nr uintptr, args arch.SyscallArguments) string {
	kinds, ok := straceArgs[nr]
	n := len(kinds)
	if !ok {
		n = 6
	}
	parts := make([]string, n)
	for i := 0; i < n; i++ {
		k := aHex
		if ok {
			k = kinds[i]
		}
		parts[i] = straceArg(t, k, args, i)
	}
	return fmt.Sprintf("%s(%s)", Name(nr), strings.Join(parts, ", "))
}

// straceResult formats a result: a value, or -1 with the errno's name.
func straceResult(rval uintptr, err error) string {
	if err == nil || err == kernel.ErrNoReturn {
		if int64(rval) < 0 || rval > 0xffff {
			return fmt.Sprintf("%#x", rval)
		}
		return strconv.FormatUint(uint64(rval), 10)
	}
	if e, ok := err.(unix.Errno); ok {
		name := unix.ErrnoName(e)
		if name == "" {
			name = fmt.Sprintf("errno %d", int(e))
		}
		return fmt.Sprintf("-1 %s (%s)", name, e.Error())
	}
	return "-1 " + err.Error()
}

func init() {
	kernel.StraceEnter = straceEnter
	kernel.StraceResult = straceResult
}
