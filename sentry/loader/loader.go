// Package loader owns what execve does to a fresh address space: it
// recognises `#!` scripts and ELF64 x86-64 executables (static, static-PIE
// and dynamically linked, together with their PT_INTERP interpreter), maps
// their PT_LOAD segments, and builds the initial stack (argument and
// environment strings, AT_RANDOM bytes, the auxiliary vector, argc) that the
// x86-64 System V ABI promises a process at its entry point.
//
// It also maps the vDSO the caller supplies (an image and the vvar data it
// reads, both Mappables) and points AT_SYSINFO_EHDR at it.
//
// The loader knows neither the kernel nor the memory manager: it works
// through the MemoryManager and Opener interfaces below, so that it can be
// driven by sentry/kernel's execve and, in tests, by byte-backed fakes.
//
// Errors are the errnos Linux's execve gives for the same input; nothing an
// executable contains can make the loader panic.
package loader

import (
	"crypto/rand"
	"io"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
)

// MemoryManager is the part of an address space the loader needs.
//
// MMap creates a mapping as mmap(2) would and returns its address. With
// opts.Fixed and not opts.Unmap it must fail rather than replace an existing
// mapping (MAP_FIXED_NOREPLACE); with opts.Fixed and opts.Unmap it replaces
// whatever is in the range (MAP_FIXED); without opts.Fixed it chooses the
// address itself. opts.Mappable is nil for anonymous memory. The memory
// manager takes its own reference on opts.Mappable for the mapping it
// creates: the loader closes the File the Mappable came from once Load
// returns.
//
// MUnmap removes every mapping in [addr, addr+length).
//
// CopyOut writes src at addr as the kernel writes to user memory, breaking
// copy-on-write of private file mappings. It may refuse to write to pages
// the application cannot write; the loader only relies on it for writable
// pages.
type MemoryManager interface {
	MMap(opts memmap.MMapOpts) (hostarch.Addr, error)
	MUnmap(addr hostarch.Addr, length uint64) error
	CopyOut(addr hostarch.Addr, src []byte) (int, error)
}

// Opener opens executables by path inside the sandbox. It resolves path the
// way execve does (relative paths against the working directory of the
// caller, symlinks followed) and checks that the result is a regular file the
// caller may execute: it returns ENOENT, EACCES, ENOTDIR, ELOOP and so on as
// open_exec would. The loader uses it for the executable, `#!`
// interpreters and the PT_INTERP interpreter.
type Opener interface {
	Open(path string) (File, error)
}

// File is an open executable.
//
// ReadAt has io.ReaderAt semantics. ConfigureMMap fills opts.Mappable (and
// may fill Name, Dev and Ino, and narrow MaxPerms) for a mapping of the
// file; it returns ENODEV if the file cannot be mapped. Size is the current
// length of the file. Close releases the loader's reference: the loader
// calls it exactly once for each File the Opener gave it.
type File interface {
	ReadAt(p []byte, off int64) (int, error)
	ConfigureMMap(opts *memmap.MMapOpts) error
	Size() (int64, error)
	Close() error
}

// DefaultStackSize is the stack size used when LoadArgs.StackSize is zero:
// Linux's default RLIMIT_STACK soft limit.
const DefaultStackSize = 8 << 20

// LoadArgs are the inputs of Load.
type LoadArgs struct {
	// MM is the fresh address space the executable is loaded into.
	MM MemoryManager
	// Opener opens the executable and any interpreter.
	Opener Opener
	// Path is the path given to execve. It is also AT_EXECFN.
	Path string
	// Argv and Envv are the argument and environment strings. An empty
	// Argv is given one empty string, as Linux does since 5.18.
	Argv, Envv []string
	// StackTop is the (page aligned) end of the stack mapping.
	StackTop hostarch.Addr
	// MaxAddr is the end of the user address space (TASK_SIZE). Nothing is
	// mapped at or above it; ET_DYN executables go at 2/3 of it.
	MaxAddr hostarch.Addr
	// StackSize is RLIMIT_STACK's soft limit, in bytes; zero means
	// DefaultStackSize. It sizes the stack mapping and limits the argument
	// and environment strings as Linux does.
	StackSize uint64
	// VDSO, if not nil, is mapped into the address space after the
	// executable and its interpreter, and AT_SYSINFO_EHDR points at it.
	VDSO *VDSO
	// UID, EUID, GID and EGID are the credentials after exec. AT_SECURE is
	// set when the real and effective IDs differ.
	UID, EUID, GID, EGID uint32
	// HWCap and HWCap2 are AT_HWCAP and AT_HWCAP2. HostHWCap computes the
	// values Linux would report on this machine.
	HWCap, HWCap2 uint64
	// MinSigStkSz is AT_MINSIGSTKSZ, the signal frame size of this CPU's
	// FP state; zero means DefaultMinSigStkSz.
	MinSigStkSz uint64
	// Random supplies the 16 AT_RANDOM bytes; nil means crypto/rand.
	Random io.Reader
}

// VDSO is a vDSO to map: an ELF image and the data pages it reads, which
// it expects immediately below itself (it reaches them at a fixed offset).
// Both sizes are whole pages. The image is mapped private and executable
// ("[vdso]"; like Linux's it may be made writable, which copies it), the
// data read-only for good ("[vvar]").
type VDSO struct {
	Image     memmap.Mappable
	ImageSize uint64
	VVar      memmap.Mappable
	VVarSize  uint64
}

// DefaultMinSigStkSz is the AT_MINSIGSTKSZ reported when
// LoadArgs.MinSigStkSz is zero: MINSIGSTKSZ of the x86-64 ABI.
const DefaultMinSigStkSz = 2048

// AuxEntry is one entry of the auxiliary vector.
type AuxEntry struct {
	Key, Value uint64
}

// LoadResult describes a loaded process image.
type LoadResult struct {
	// Entry is where execution starts: the interpreter's entry point if
	// there is one, otherwise the executable's.
	Entry hostarch.Addr
	// StackPointer is the initial rsp. It is 16-byte aligned and points at
	// argc.
	StackPointer hostarch.Addr
	// BrkStart is the page-aligned end of the executable's highest segment:
	// where the heap begins.
	BrkStart hostarch.Addr
	// Auxv is the auxiliary vector as written to the stack, without the
	// terminating AT_NULL.
	Auxv []AuxEntry
	// ArgvStart, ArgvEnd, EnvvStart and EnvvEnd delimit the argument and
	// environment strings on the stack (each string NUL-terminated), as
	// /proc/pid/cmdline and /proc/pid/environ read them.
	ArgvStart, ArgvEnd, EnvvStart, EnvvEnd hostarch.Addr
	// Argv is the final argument vector, after `#!` rewriting.
	Argv []string
	// ExecPath is the path of the ELF file that was loaded: for a script,
	// its (innermost) interpreter. It is what /proc/pid/exe names.
	ExecPath string
	// Interpreter is the PT_INTERP path, or "" for a static executable.
	Interpreter string
	// ExecStack says PT_GNU_STACK asked for an executable stack.
	ExecStack bool
	// VDSOAddr is where the vDSO image was mapped (AT_SYSINFO_EHDR), or
	// zero without one.
	VDSOAddr hostarch.Addr
}

// Load loads the executable at args.Path into args.MM and builds its
// initial stack.
//
// Everything that can be checked without touching the address space (the
// strings' sizes, `#!` rewriting, the headers of the executable and its
// interpreter) is checked before anything is mapped. If a mapping fails
// afterwards, Load unmaps what it mapped on a best-effort basis; but exec
// always loads into a fresh address space, and a caller that gets an error
// must throw that address space away rather than reuse it.
func Load(args LoadArgs) (*LoadResult, error) {
	if args.MM == nil || args.Opener == nil {
		return nil, unix.EINVAL
	}
	if args.StackSize == 0 {
		args.StackSize = DefaultStackSize
	}
	if args.MinSigStkSz == 0 {
		args.MinSigStkSz = DefaultMinSigStkSz
	}
	if args.Random == nil {
		args.Random = rand.Reader
	}
	if !args.StackTop.IsPageAligned() || args.StackTop == 0 || args.StackTop > args.MaxAddr {
		return nil, unix.EINVAL
	}
	if v := args.VDSO; v != nil && (v.Image == nil || v.VVar == nil || v.ImageSize == 0 || v.VVarSize == 0 ||
		v.ImageSize%hostarch.PageSize != 0 || v.VVarSize%hostarch.PageSize != 0) {
		return nil, unix.EINVAL
	}
	argv := args.Argv
	if len(argv) == 0 {
		argv = []string{""}
	}

	f, err := args.Opener.Open(args.Path)
	if err != nil {
		return nil, err
	}
	// Linux measures the strings before it looks at the file's contents.
	if err := checkArgSizes(args.Path, argv, args.Envv, args.StackSize); err != nil {
		f.Close()
		return nil, err
	}

	f, execPath, argv, err := resolveScripts(args.Opener, f, args.Path, argv)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := checkArgSizes(args.Path, argv, args.Envv, args.StackSize); err != nil {
		return nil, err
	}

	main, err := parseELF(f, false)
	if err != nil {
		return nil, err
	}
	var interp *elfInfo
	if main.interp != "" {
		interpFile, err := args.Opener.Open(main.interp)
		if err != nil {
			return nil, err
		}
		defer interpFile.Close()
		interp, err = parseELF(interpFile, true)
		if err != nil {
			return nil, err
		}
	}

	l := &mapper{mm: args.MM, maxAddr: args.MaxAddr}
	res, err := l.load(&args, execPath, main, interp, argv)
	if err != nil {
		l.undo()
		return nil, err
	}
	return res, nil
}

// mapper tracks what Load has mapped so that a failure part way can unmap
// it again.
type mapper struct {
	mm      MemoryManager
	maxAddr hostarch.Addr
	mapped  []hostarch.AddrRange
}

func (m *mapper) undo() {
	for i := len(m.mapped) - 1; i >= 0; i-- {
		r := m.mapped[i]
		m.mm.MUnmap(r.Start, r.Length())
	}
	m.mapped = nil
}

func (m *mapper) load(args *LoadArgs, execPath string, main, interp *elfInfo, argv []string) (*LoadResult, error) {
	st := stackArgs{
		execFn:  args.Path,
		argv:    argv,
		envv:    args.Envv,
		top:     args.StackTop,
		size:    args.StackSize,
		execute: main.execStack,
		random:  args.Random,
	}
	nAux := len(buildAuxv(args, &loadedELF{}, main, 0, 0))
	layout, err := m.layoutStack(&st, nAux)
	if err != nil {
		return nil, err
	}

	mainLoaded, err := m.mapELF(main, etDynBase(args.MaxAddr), execPath)
	if err != nil {
		return nil, err
	}
	res := &LoadResult{
		Entry:     mainLoaded.entry,
		BrkStart:  mainLoaded.end,
		Argv:      argv,
		ExecPath:  execPath,
		ExecStack: main.execStack,
	}
	var interpBase hostarch.Addr
	if interp != nil {
		res.Interpreter = main.interp
		interpLoaded, err := m.mapELF(interp, 0, main.interp)
		if err != nil {
			return nil, err
		}
		interpBase = interpLoaded.bias
		res.Entry = interpLoaded.entry
	}
	if args.VDSO != nil {
		// Linux maps it here too, after the interpreter (so, with
		// top-down placement, just below it).
		addr, err := m.mapVDSO(args.VDSO)
		if err != nil {
			return nil, err
		}
		res.VDSOAddr = addr
	}

	auxv := buildAuxv(args, mainLoaded, main, interpBase, res.VDSOAddr)
	if err := m.writeStack(&st, layout, auxv, res); err != nil {
		return nil, err
	}
	return res, nil
}

// mapVDSO maps v's data and, right above it, its image, wherever mmap
// would put a mapping of their combined size, and returns the image's
// address.
func (m *mapper) mapVDSO(v *VDSO) (hostarch.Addr, error) {
	total := v.VVarSize + v.ImageSize
	base, err := m.mm.MMap(memmap.MMapOpts{Length: total, Private: true, Perms: hostarch.NoAccess})
	if err != nil {
		return 0, err
	}
	m.mapped = append(m.mapped, hostarch.AddrRange{Start: base, End: base + hostarch.Addr(total)})
	if err := m.fixedMap(memmap.MMapOpts{
		Length:   v.VVarSize,
		Addr:     base,
		Fixed:    true,
		Unmap:    true,
		Private:  true,
		Perms:    hostarch.Read,
		MaxPerms: hostarch.Read,
		Mappable: v.VVar,
		Hint:     "[vvar]",
	}); err != nil {
		return 0, err
	}
	image := base + hostarch.Addr(v.VVarSize)
	if err := m.fixedMap(memmap.MMapOpts{
		Length:   v.ImageSize,
		Addr:     image,
		Fixed:    true,
		Unmap:    true,
		Private:  true,
		Perms:    hostarch.AccessType{Read: true, Execute: true},
		MaxPerms: hostarch.AnyAccess,
		Mappable: v.Image,
		Hint:     "[vdso]",
	}); err != nil {
		return 0, err
	}
	return image, nil
}

// etDynBase is where Linux puts an ET_DYN executable when randomisation is
// off: ELF_ET_DYN_BASE, two thirds of the way up the address space, so that
// the executable, its brk heap and mmap's region below the stack all have
// room.
func etDynBase(maxAddr hostarch.Addr) hostarch.Addr {
	return (maxAddr / 3 * 2).RoundDown()
}

// Auxiliary vector keys (include/uapi/linux/auxvec.h and asm/auxvec.h).
const (
	AT_NULL         = 0
	AT_PHDR         = 3
	AT_PHENT        = 4
	AT_PHNUM        = 5
	AT_PAGESZ       = 6
	AT_BASE         = 7
	AT_FLAGS        = 8
	AT_ENTRY        = 9
	AT_UID          = 11
	AT_EUID         = 12
	AT_GID          = 13
	AT_EGID         = 14
	AT_PLATFORM     = 15
	AT_HWCAP        = 16
	AT_CLKTCK       = 17
	AT_SECURE       = 23
	AT_RANDOM       = 25
	AT_HWCAP2       = 26
	AT_EXECFN       = 31
	AT_SYSINFO_EHDR = 33
	AT_MINSIGSTKSZ  = 51
	linuxClockTicks = 100 // USER_HZ
	platformString  = "x86_64"
	auxRandomSize   = 16
	wordSize        = 8
	stackAlign      = 16
	auxPlaceholder  = ^uint64(0)
)

// buildAuxv returns the auxiliary vector in the order Linux writes it. The
// addresses of the strings it points at (AT_RANDOM, AT_EXECFN, AT_PLATFORM)
// are only known once the stack is laid out, so they are placeholders that
// writeStack fills in. AT_SYSINFO_EHDR is there if args has a vDSO (with
// vdsoAddr, which is zero when only counting entries).
func buildAuxv(args *LoadArgs, ml *loadedELF, main *elfInfo, interpBase, vdsoAddr hostarch.Addr) []AuxEntry {
	var auxv []AuxEntry
	if args.VDSO != nil {
		auxv = append(auxv, AuxEntry{AT_SYSINFO_EHDR, uint64(vdsoAddr)})
	}
	secure := uint64(0)
	if args.UID != args.EUID || args.GID != args.EGID {
		secure = 1
	}
	auxv = append(auxv,
		AuxEntry{AT_MINSIGSTKSZ, args.MinSigStkSz},
		AuxEntry{AT_HWCAP, args.HWCap},
		AuxEntry{AT_PAGESZ, hostarch.PageSize},
		AuxEntry{AT_CLKTCK, linuxClockTicks},
		AuxEntry{AT_PHDR, uint64(ml.phdrAddr)},
		AuxEntry{AT_PHENT, elfPhdrSize},
		AuxEntry{AT_PHNUM, uint64(len(main.phdrs))},
		AuxEntry{AT_BASE, uint64(interpBase)},
		AuxEntry{AT_FLAGS, 0},
		AuxEntry{AT_ENTRY, uint64(ml.entry)},
		AuxEntry{AT_UID, uint64(args.UID)},
		AuxEntry{AT_EUID, uint64(args.EUID)},
		AuxEntry{AT_GID, uint64(args.GID)},
		AuxEntry{AT_EGID, uint64(args.EGID)},
		AuxEntry{AT_SECURE, secure},
		AuxEntry{AT_RANDOM, auxPlaceholder},
		AuxEntry{AT_HWCAP2, args.HWCap2},
		AuxEntry{AT_EXECFN, auxPlaceholder},
		AuxEntry{AT_PLATFORM, auxPlaceholder},
	)
	return auxv
}
