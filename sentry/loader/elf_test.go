package loader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

var errEOF = io.EOF

// parsePhdrs returns the program headers of an ELF image, by the
// package's own parser.
func parsePhdrs(t *testing.T, b []byte) []elfPhdr {
	t.Helper()
	fs := newFakeFS()
	fs.files["f"] = b
	f, _ := fs.Open("f")
	defer f.Close()
	info, err := parseELF(f, false)
	if err != nil {
		t.Fatalf("parseELF: %v", err)
	}
	return info.phdrs
}

// mkELF builds an ELF64 x86-64 file of size bytes: the header, phdrs right
// after it, and every other byte a non-zero pattern so that tests can tell
// file contents from zero fill.
func mkELF(typ uint16, entry uint64, phdrs []elfPhdr, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i%251) + 1
	}
	hdr := make([]byte, elfHeaderSize)
	copy(hdr, "\x7fELF")
	hdr[4], hdr[5], hdr[6] = elfClass64, elfDataLSB, 1
	le := binary.LittleEndian
	le.PutUint16(hdr[16:], typ)
	le.PutUint16(hdr[18:], emX86_64)
	le.PutUint32(hdr[20:], 1)
	le.PutUint64(hdr[24:], entry)
	le.PutUint64(hdr[32:], elfHeaderSize)
	le.PutUint16(hdr[52:], elfHeaderSize)
	le.PutUint16(hdr[54:], elfPhdrSize)
	le.PutUint16(hdr[56:], uint16(len(phdrs)))
	copy(b, hdr)
	for i, ph := range phdrs {
		p := make([]byte, elfPhdrSize)
		le.PutUint32(p[0:], ph.typ)
		le.PutUint32(p[4:], ph.flags)
		le.PutUint64(p[8:], ph.off)
		le.PutUint64(p[16:], ph.vaddr)
		le.PutUint64(p[24:], ph.vaddr)
		le.PutUint64(p[32:], ph.filesz)
		le.PutUint64(p[40:], ph.memsz)
		le.PutUint64(p[48:], ph.al)
		copy(b[elfHeaderSize+i*elfPhdrSize:], p)
	}
	return b
}

// staticPhdrs is a small static executable: text at 0x400000 (holding the
// headers), a data segment whose bss starts mid-page and runs three pages
// further, and a non-executable stack.
func staticPhdrs() []elfPhdr {
	return []elfPhdr{
		{typ: ptLoad, flags: pfR | pfX, off: 0, vaddr: 0x400000, filesz: 0x1234, memsz: 0x1234, al: 0x1000},
		{typ: ptLoad, flags: pfR | pfW, off: 0x2100, vaddr: 0x402100, filesz: 0x250, memsz: 0x3000, al: 0x1000},
		{typ: ptGNUStack, flags: pfR | pfW},
	}
}

const staticEntry = 0x400100

func staticELF() []byte { return mkELF(etExec, staticEntry, staticPhdrs(), 0x2400) }

// interpELF is a minimal ET_DYN interpreter linked at 0.
func interpELF() []byte {
	return mkELF(etDyn, 0x180, []elfPhdr{
		{typ: ptLoad, flags: pfR | pfX, off: 0, vaddr: 0, filesz: 0x800, memsz: 0x800, al: 0x1000},
		{typ: ptLoad, flags: pfR | pfW, off: 0x800, vaddr: 0x2800, filesz: 0x100, memsz: 0x900, al: 0x1000},
	}, 0x900)
}

// dynELF is a PIE linked at 0 that asks for interp.
func dynELF(interp string) []byte {
	phdrs := []elfPhdr{
		{typ: ptInterp, flags: pfR, off: 0x200, vaddr: 0x200, filesz: uint64(len(interp) + 1), memsz: uint64(len(interp) + 1), al: 1},
		{typ: ptLoad, flags: pfR | pfX, off: 0, vaddr: 0, filesz: 0x1000, memsz: 0x1000, al: 0x1000},
		{typ: ptLoad, flags: pfR | pfW, off: 0x1000, vaddr: 0x3000, filesz: 0x80, memsz: 0x80, al: 0x1000},
		{typ: ptGNUStack, flags: pfR | pfW | pfX},
	}
	b := mkELF(etDyn, 0x400, phdrs, 0x1080)
	copy(b[0x200:], interp+"\x00")
	return b
}

func baseArgs(mm *fakeMM, fs *fakeFS, path string) LoadArgs {
	return LoadArgs{
		MM: mm, Opener: fs, Path: path,
		Argv:     []string{path, "arg1", "two words"},
		Envv:     []string{"HOME=/root", "PATH=/bin"},
		StackTop: testStackTop, MaxAddr: testMaxAddr,
		UID: 1, EUID: 1, GID: 2, EGID: 2,
		HWCap: 0x178bfbff, HWCap2: 2,
		Random: bytes.NewReader(bytes.Repeat([]byte{0x5a}, 16)),
	}
}

func auxMap(auxv []AuxEntry) map[uint64]uint64 {
	m := map[uint64]uint64{}
	for _, a := range auxv {
		m[a.Key] = a.Value
	}
	return m
}

// checkStack verifies the stack at res.StackPointer against what Load was
// asked for and what it reported.
func checkStack(t *testing.T, mm *fakeMM, res *LoadResult, argv, envv []string, execFn string) {
	t.Helper()
	sp := res.StackPointer
	if sp%16 != 0 {
		t.Errorf("stack pointer %v is not 16-byte aligned", sp)
	}
	if v := mm.find(sp); v == nil || v.opts.Hint != "[stack]" || !v.opts.GrowsDown || v.end != testStackTop {
		t.Fatalf("stack pointer %v is not in a [stack] mapping ending at StackTop:\n%v", sp, mm)
	}
	if argc := mm.word(t, sp); argc != uint64(len(argv)) {
		t.Fatalf("argc = %d, want %d", argc, len(argv))
	}
	a := sp + 8
	for i, want := range argv {
		if got := mm.cstring(t, hostarch.Addr(mm.word(t, a))); got != want {
			t.Errorf("argv[%d] = %q, want %q", i, got, want)
		}
		a += 8
	}
	if mm.word(t, a) != 0 {
		t.Errorf("argv not NULL-terminated")
	}
	a += 8
	for i, want := range envv {
		if got := mm.cstring(t, hostarch.Addr(mm.word(t, a))); got != want {
			t.Errorf("envp[%d] = %q, want %q", i, got, want)
		}
		a += 8
	}
	if mm.word(t, a) != 0 {
		t.Errorf("envp not NULL-terminated")
	}
	a += 8
	for i, want := range res.Auxv {
		k, v := mm.word(t, a), mm.word(t, a+8)
		if k != want.Key || v != want.Value {
			t.Errorf("auxv[%d] on stack = (%d, %#x), want (%d, %#x)", i, k, v, want.Key, want.Value)
		}
		a += 16
	}
	if mm.word(t, a) != AT_NULL || mm.word(t, a+8) != 0 {
		t.Errorf("auxv not terminated by AT_NULL")
	}

	aux := auxMap(res.Auxv)
	if got := mm.cstring(t, hostarch.Addr(aux[AT_EXECFN])); got != execFn {
		t.Errorf("AT_EXECFN string = %q, want %q", got, execFn)
	}
	if got := mm.cstring(t, hostarch.Addr(aux[AT_PLATFORM])); got != "x86_64" {
		t.Errorf("AT_PLATFORM string = %q", got)
	}
	if got := mm.read(t, hostarch.Addr(aux[AT_RANDOM]), 16); !bytes.Equal(got, bytes.Repeat([]byte{0x5a}, 16)) {
		t.Errorf("AT_RANDOM bytes = %x", got)
	}
	// What /proc/pid/cmdline and environ would read.
	join := func(ss []string) string {
		var b bytes.Buffer
		for _, s := range ss {
			b.WriteString(s)
			b.WriteByte(0)
		}
		return b.String()
	}
	if got := string(mm.read(t, res.ArgvStart, int(res.ArgvEnd-res.ArgvStart))); got != join(argv) {
		t.Errorf("[ArgvStart, ArgvEnd) = %q, want %q", got, join(argv))
	}
	if got := string(mm.read(t, res.EnvvStart, int(res.EnvvEnd-res.EnvvStart))); got != join(envv) {
		t.Errorf("[EnvvStart, EnvvEnd) = %q, want %q", got, join(envv))
	}
}

// checkSegments verifies that every non-empty PT_LOAD of the file is mapped
// at its address plus bias with its permissions and the right file bytes,
// and that its bss reads as zeros.
func checkSegments(t *testing.T, mm *fakeMM, file []byte, phdrs []elfPhdr, bias uint64) {
	t.Helper()
	for _, ph := range phdrs {
		if ph.typ != ptLoad || ph.memsz == 0 {
			continue
		}
		start := hostarch.Addr(ph.vaddr + bias)
		v := mm.find(start)
		if v == nil {
			t.Fatalf("segment at %v not mapped:\n%v", start, mm)
		}
		if want := segPerms(ph.flags); v.opts.Perms != want {
			t.Errorf("segment at %v perms %v, want %v", start, v.opts.Perms, want)
		}
		if ph.filesz > 0 {
			if v.opts.Mappable == nil || !v.opts.Private {
				t.Errorf("segment at %v is not a private file mapping", start)
			} else if off := v.opts.Offset + uint64(start.RoundDown()-v.start); off != ph.off-ph.vaddr%hostarch.PageSize {
				t.Errorf("segment at %v maps file offset %#x, want %#x", start, off, ph.off-ph.vaddr%hostarch.PageSize)
			}
			n := min(ph.filesz, 4096)
			if got, want := mm.read(t, start, int(n)), file[ph.off:ph.off+n]; !bytes.Equal(got, want) {
				t.Errorf("segment at %v: contents differ from file offset %#x", start, ph.off)
			}
		}
		if bss := ph.memsz - ph.filesz; bss > 0 {
			got := mm.read(t, start+hostarch.Addr(ph.filesz), int(bss))
			if !bytes.Equal(got, make([]byte, bss)) {
				t.Errorf("bss of segment at %v is not zero", start)
			}
			last := hostarch.Addr(ph.vaddr + bias + ph.memsz - 1)
			if v := mm.find(last); v == nil || v.opts.Perms != segPerms(ph.flags) {
				t.Errorf("end of bss at %v not mapped with the segment's perms", last)
			}
		}
	}
}

func TestLoadStaticSynthetic(t *testing.T) {
	mm, fs := newFakeMM(), newFakeFS()
	file := staticELF()
	fs.files["/bin/prog"] = file
	args := baseArgs(mm, fs, "/bin/prog")
	res, err := Load(args)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if res.Entry != staticEntry || res.Interpreter != "" || res.ExecPath != "/bin/prog" || res.ExecStack {
		t.Errorf("result %+v", res)
	}
	if res.BrkStart != 0x406000 {
		t.Errorf("BrkStart = %v, want 0x406000", res.BrkStart)
	}
	checkSegments(t, mm, file, staticPhdrs(), 0)
	// The hole between the two segments ([0x402000, 0x402000) here is
	// empty) and anything past the end is not mapped.
	if mm.find(0x406000) != nil || mm.find(0x3ff000) != nil {
		t.Errorf("mappings outside the segments:\n%v", mm)
	}
	// Bytes past p_filesz in the data segment's last file page are file
	// contents (non-zero) in the file, zero in memory.
	if file[0x2350] == 0 {
		t.Fatal("test file has zero where bss zeroing is checked")
	}
	checkStack(t, mm, res, args.Argv, args.Envv, "/bin/prog")
	aux := auxMap(res.Auxv)
	want := map[uint64]uint64{
		AT_PHDR: 0x400040, AT_PHENT: 56, AT_PHNUM: 3, AT_PAGESZ: 4096, AT_BASE: 0,
		AT_FLAGS: 0, AT_ENTRY: staticEntry, AT_UID: 1, AT_EUID: 1, AT_GID: 2, AT_EGID: 2,
		AT_SECURE: 0, AT_HWCAP: 0x178bfbff, AT_HWCAP2: 2, AT_CLKTCK: 100,
		AT_MINSIGSTKSZ: DefaultMinSigStkSz,
	}
	for k, v := range want {
		if got, ok := aux[k]; !ok || got != v {
			t.Errorf("auxv[%d] = %#x (present %v), want %#x", k, got, ok, v)
		}
	}
	if _, ok := aux[AT_SYSINFO_EHDR]; ok {
		t.Error("AT_SYSINFO_EHDR present without a vDSO")
	}
	if fs.open != 0 {
		t.Errorf("%d files left open", fs.open)
	}
	if v := mm.find(res.StackPointer); v.opts.Perms.Execute || v.end-v.start != DefaultStackSize {
		t.Errorf("stack mapping %v-%v %v, want 8 MiB non-executable", v.start, v.end, v.opts.Perms)
	}
}

func TestLoadDynamicSynthetic(t *testing.T) {
	mm, fs := newFakeMM(), newFakeFS()
	fs.files["/bin/pie"] = dynELF("/lib/ld.so")
	fs.files["/lib/ld.so"] = interpELF()
	args := baseArgs(mm, fs, "/bin/pie")
	vdsoImage, vvar := &fakeMappable{}, &fakeMappable{}
	args.VDSO = &VDSO{Image: vdsoImage, ImageSize: 2 * hostarch.PageSize, VVar: vvar, VVarSize: hostarch.PageSize}
	args.EUID = 0 // setuid-like: AT_SECURE
	res, err := Load(args)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	base := uint64(etDynBase(testMaxAddr))
	if res.Interpreter != "/lib/ld.so" || !res.ExecStack {
		t.Errorf("Interpreter %q ExecStack %v", res.Interpreter, res.ExecStack)
	}
	aux := auxMap(res.Auxv)
	interpBase := aux[AT_BASE]
	if interpBase == 0 || interpBase%hostarch.PageSize != 0 {
		t.Fatalf("AT_BASE = %#x", interpBase)
	}
	if uint64(res.Entry) != interpBase+0x180 {
		t.Errorf("Entry = %v, want interpreter base %#x + 0x180", res.Entry, interpBase)
	}
	if aux[AT_ENTRY] != base+0x400 || aux[AT_PHDR] != base+0x40 {
		t.Errorf("AT_ENTRY %#x AT_PHDR %#x, base %#x", aux[AT_ENTRY], aux[AT_PHDR], base)
	}
	if aux[AT_SYSINFO_EHDR] != uint64(res.VDSOAddr) || res.VDSOAddr == 0 || res.Auxv[0].Key != AT_SYSINFO_EHDR {
		t.Errorf("AT_SYSINFO_EHDR not first or not the vDSO at %v: %v", res.VDSOAddr, res.Auxv)
	}
	// [vvar] then [vdso] right above it, below the interpreter as Linux
	// places them, each holding a reference to its Mappable.
	img, data := mm.find(res.VDSOAddr), mm.find(res.VDSOAddr-1)
	switch {
	case img == nil || img.start != res.VDSOAddr || img.end != res.VDSOAddr+2*hostarch.PageSize ||
		img.opts.Mappable != vdsoImage || img.opts.Hint != "[vdso]" || !img.opts.Private ||
		img.opts.Perms != (hostarch.AccessType{Read: true, Execute: true}) || img.opts.MaxPerms != hostarch.AnyAccess:
		t.Errorf("vDSO image mapping %+v", img)
	case data == nil || data.start != res.VDSOAddr-hostarch.PageSize || data.opts.Mappable != vvar ||
		data.opts.Hint != "[vvar]" || data.opts.Perms != hostarch.Read || data.opts.MaxPerms != hostarch.Read:
		t.Errorf("vvar mapping %+v", data)
	case uint64(res.VDSOAddr)+2*hostarch.PageSize > interpBase:
		t.Errorf("vDSO at %v above the interpreter at %#x", res.VDSOAddr, interpBase)
	case vdsoImage.refs != 1 || vvar.refs != 1:
		t.Errorf("references: image %d vvar %d, want one mapping each", vdsoImage.refs, vvar.refs)
	}
	if aux[AT_SECURE] != 1 {
		t.Errorf("AT_SECURE = %d with uid != euid", aux[AT_SECURE])
	}
	if uint64(res.BrkStart) != base+0x4000 {
		t.Errorf("BrkStart = %v", res.BrkStart)
	}
	// The hole [base+0x1000, base+0x3000) between the segments is unmapped.
	if mm.find(hostarch.Addr(base+0x1000)) != nil || mm.find(hostarch.Addr(base+0x2fff)) != nil {
		t.Errorf("gap between segments left mapped:\n%v", mm)
	}
	if mm.find(hostarch.Addr(interpBase+0x1000)) != nil {
		t.Errorf("gap in the interpreter left mapped:\n%v", mm)
	}
	checkSegments(t, mm, fs.files["/bin/pie"], parsePhdrs(t, fs.files["/bin/pie"]), base)
	checkSegments(t, mm, fs.files["/lib/ld.so"], parsePhdrs(t, fs.files["/lib/ld.so"]), interpBase)
	if v := mm.find(res.StackPointer); !v.opts.Perms.Execute {
		t.Error("PT_GNU_STACK PF_X did not make the stack executable")
	}
	checkStack(t, mm, res, args.Argv, args.Envv, "/bin/pie")
	if fs.open != 0 {
		t.Errorf("%d files left open", fs.open)
	}
}

func TestLoadZeroLengthSegmentIgnored(t *testing.T) {
	mm, fs := newFakeMM(), newFakeFS()
	phdrs := append(staticPhdrs(), elfPhdr{typ: ptLoad, flags: pfR, off: 0, vaddr: 0x900000})
	fs.files["/p"] = mkELF(etExec, staticEntry, phdrs, 0x2400)
	if _, err := Load(baseArgs(mm, fs, "/p")); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if mm.find(0x900000) != nil {
		t.Error("zero-length segment was mapped")
	}
}

// mutate returns the static test ELF with f applied to its bytes.
func mutate(f func(b []byte)) []byte {
	b := staticELF()
	f(b)
	return b
}

func withPhdrs(phdrs []elfPhdr, size int) []byte { return mkELF(etExec, staticEntry, phdrs, size) }

func setPhdr(i int, f func(*elfPhdr)) []byte {
	p := staticPhdrs()
	f(&p[i])
	return withPhdrs(p, 0x2400)
}

func TestLoadCorruptELF(t *testing.T) {
	le := binary.LittleEndian
	cases := []struct {
		name string
		file []byte
		want unix.Errno
	}{
		{"empty", nil, unix.ENOEXEC},
		{"truncated header", staticELF()[:40], unix.ENOEXEC},
		{"bad magic", mutate(func(b []byte) { b[1] = 'X' }), unix.ENOEXEC},
		{"ELFCLASS32", mutate(func(b []byte) { b[4] = 1 }), unix.ENOEXEC},
		{"big endian", mutate(func(b []byte) { b[5] = 2 }), unix.ENOEXEC},
		{"ET_REL", mutate(func(b []byte) { le.PutUint16(b[16:], 1) }), unix.ENOEXEC},
		{"ET_CORE", mutate(func(b []byte) { le.PutUint16(b[16:], 4) }), unix.ENOEXEC},
		{"i386 machine", mutate(func(b []byte) { le.PutUint16(b[18:], 3) }), unix.ENOEXEC},
		{"aarch64 machine", mutate(func(b []byte) { le.PutUint16(b[18:], 183) }), unix.ENOEXEC},
		{"phentsize 32", mutate(func(b []byte) { le.PutUint16(b[54:], 32) }), unix.ENOEXEC},
		{"phnum 0", mutate(func(b []byte) { le.PutUint16(b[56:], 0) }), unix.ENOEXEC},
		{"phnum huge", mutate(func(b []byte) { le.PutUint16(b[56:], 0xffff) }), unix.ENOEXEC},
		{"phnum 74", mutate(func(b []byte) { le.PutUint16(b[56:], 74) }), unix.ENOEXEC},
		{"phdrs beyond EOF", mutate(func(b []byte) { le.PutUint64(b[32:], 0x2400-56) }), unix.ENOEXEC},
		{"phoff wraps", mutate(func(b []byte) { le.PutUint64(b[32:], ^uint64(7)) }), unix.ENOEXEC},
		{"filesz > memsz", setPhdr(1, func(p *elfPhdr) { p.filesz = p.memsz + 1 }), unix.EINVAL},
		{"segment beyond EOF", setPhdr(1, func(p *elfPhdr) { p.filesz = 0x1000 }), unix.ENOEXEC},
		{"segment offset wraps", setPhdr(1, func(p *elfPhdr) { p.off = ^uint64(0xfff) + 0x100 }), unix.ENOEXEC},
		{"offset and vaddr disagree", setPhdr(1, func(p *elfPhdr) { p.off = 0x2000 }), unix.EINVAL},
		{"segment beyond address space", setPhdr(1, func(p *elfPhdr) {
			p.vaddr, p.off, p.memsz = uint64(testMaxAddr)-0x1000+0x100, 0x2100, 0x3000
		}), unix.ENOMEM},
		{"segment wraps address space", setPhdr(1, func(p *elfPhdr) { p.memsz = ^uint64(0) - 0x1000 }), unix.ENOMEM},
		{"overlapping segments", setPhdr(1, func(p *elfPhdr) { p.vaddr, p.off = 0x401100, 0x1100 }), unix.ENOEXEC},
		{"unsorted segments", withPhdrs([]elfPhdr{staticPhdrs()[1], staticPhdrs()[0]}, 0x2400), unix.ENOEXEC},
		{"only empty segments", withPhdrs([]elfPhdr{{typ: ptLoad, vaddr: 0x400000}}, 0x1000), unix.EINVAL},
		{"no PT_LOAD", withPhdrs([]elfPhdr{{typ: ptGNUStack}}, 0x1000), unix.EINVAL},
		{"entry beyond address space", mutate(func(b []byte) { le.PutUint64(b[24:], uint64(testMaxAddr)) }), unix.EINVAL},
		{"script with empty interpreter", []byte("#!   \n"), unix.ENOEXEC},
		{"script with no interpreter", []byte("#!\n"), unix.ENOEXEC},
		{"text file", []byte("hello world\n"), unix.ENOEXEC},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mm, fs := newFakeMM(), newFakeFS()
			fs.files["/x"] = tc.file
			_, err := Load(baseArgs(mm, fs, "/x"))
			if err != tc.want {
				t.Fatalf("Load = %v, want %v", err, tc.want)
			}
			if len(mm.vmas) != 0 {
				t.Errorf("mappings left after failure:\n%v", mm)
			}
			if fs.open != 0 {
				t.Errorf("%d files left open", fs.open)
			}
		})
	}
}

func TestLoadBadInterpreter(t *testing.T) {
	le := binary.LittleEndian
	longPath := string(bytes.Repeat([]byte("a"), linuxPathMax))
	cases := []struct {
		name   string
		exe    []byte
		interp []byte // nil: absent
		noExec bool
		want   unix.Errno
	}{
		{"missing", dynELF("/lib/ld.so"), nil, false, unix.ENOENT},
		{"not executable", dynELF("/lib/ld.so"), interpELF(), true, unix.EACCES},
		{"bad magic", dynELF("/lib/ld.so"), []byte("#!/bin/sh\n"), false, unix.ELIBBAD},
		{"truncated", dynELF("/lib/ld.so"), interpELF()[:50], false, unix.ELIBBAD},
		{"wrong machine", dynELF("/lib/ld.so"), func() []byte { b := interpELF(); le.PutUint16(b[18:], 3); return b }(), false, unix.ELIBBAD},
		{"phnum huge", dynELF("/lib/ld.so"), func() []byte { b := interpELF(); le.PutUint16(b[56:], 0xffff); return b }(), false, unix.ELIBBAD},
		{"filesz > memsz", dynELF("/lib/ld.so"), mkELF(etDyn, 0, []elfPhdr{{typ: ptLoad, flags: pfR, filesz: 0x200, memsz: 0x100}}, 0x200), false, unix.ELIBBAD},
		{"interp path not NUL-terminated", func() []byte { b := dynELF("/lib/ld.so"); b[0x200+10] = 'x'; return b }(), interpELF(), false, unix.ENOEXEC},
		{"interp path too short", func() []byte {
			b := dynELF("/lib/ld.so")
			le.PutUint64(b[elfHeaderSize+32:], 1)
			return b
		}(), interpELF(), false, unix.ENOEXEC},
		{"interp path too long", func() []byte {
			b := dynELF("/lib/ld.so")
			le.PutUint64(b[elfHeaderSize+32:], uint64(len(longPath)+1))
			return b
		}(), interpELF(), false, unix.ENOEXEC},
		{"interp path beyond EOF", func() []byte {
			b := dynELF("/lib/ld.so")
			le.PutUint64(b[elfHeaderSize+8:], 0x1078)
			return b
		}(), interpELF(), false, unix.EIO},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mm, fs := newFakeMM(), newFakeFS()
			fs.files["/bin/pie"] = tc.exe
			if tc.interp != nil {
				fs.files["/lib/ld.so"] = tc.interp
			}
			fs.noExec["/lib/ld.so"] = tc.noExec
			_, err := Load(baseArgs(mm, fs, "/bin/pie"))
			if err != tc.want {
				t.Fatalf("Load = %v, want %v", err, tc.want)
			}
			if len(mm.vmas) != 0 {
				t.Errorf("mappings left after failure:\n%v", mm)
			}
			if fs.open != 0 {
				t.Errorf("%d files left open", fs.open)
			}
		})
	}
}

func TestLoadOpenErrors(t *testing.T) {
	mm, fs := newFakeMM(), newFakeFS()
	if _, err := Load(baseArgs(mm, fs, "/nope")); err != unix.ENOENT {
		t.Errorf("missing file: %v, want ENOENT", err)
	}
	fs.files["/x"] = staticELF()
	fs.noExec["/x"] = true
	if _, err := Load(baseArgs(mm, fs, "/x")); err != unix.EACCES {
		t.Errorf("non-executable file: %v, want EACCES", err)
	}
}

// A mapping failure after some segments (or part of the vDSO) are mapped
// undoes them all.
func TestLoadUndoesMappingsOnFailure(t *testing.T) {
	for n := 1; n <= 12; n++ {
		mm, fs := newFakeMM(), newFakeFS()
		fs.files["/bin/pie"] = dynELF("/lib/ld.so")
		fs.files["/lib/ld.so"] = interpELF()
		mm.failAfter = n
		args := baseArgs(mm, fs, "/bin/pie")
		vdsoImage, vvar := &fakeMappable{}, &fakeMappable{}
		args.VDSO = &VDSO{Image: vdsoImage, ImageSize: hostarch.PageSize, VVar: vvar, VVarSize: hostarch.PageSize}
		_, err := Load(args)
		if err == nil {
			if mm.calls >= n {
				t.Fatalf("MMap call %d failed but Load succeeded", n)
			}
			continue
		}
		if !errors.Is(err, unix.ENOMEM) {
			t.Errorf("failAfter %d: %v, want ENOMEM", n, err)
		}
		if len(mm.vmas) != 0 {
			t.Errorf("failAfter %d: mappings left:\n%v", n, mm)
		}
		if fs.open != 0 {
			t.Errorf("failAfter %d: %d files open", n, fs.open)
		}
		if vdsoImage.refs != 0 || vvar.refs != 0 {
			t.Errorf("failAfter %d: vDSO references left: image %d vvar %d", n, vdsoImage.refs, vvar.refs)
		}
	}
}

func TestLoadBadVDSO(t *testing.T) {
	for _, v := range []*VDSO{
		{ImageSize: hostarch.PageSize, VVarSize: hostarch.PageSize},
		{Image: &fakeMappable{}, ImageSize: 0, VVar: &fakeMappable{}, VVarSize: hostarch.PageSize},
		{Image: &fakeMappable{}, ImageSize: 100, VVar: &fakeMappable{}, VVarSize: hostarch.PageSize},
		{Image: &fakeMappable{}, ImageSize: hostarch.PageSize, VVar: &fakeMappable{}, VVarSize: 1},
	} {
		mm, fs := newFakeMM(), newFakeFS()
		fs.files["/bin/prog"] = staticELF()
		args := baseArgs(mm, fs, "/bin/prog")
		args.VDSO = v
		if _, err := Load(args); err != unix.EINVAL {
			t.Errorf("Load with vDSO %+v: %v, want EINVAL", v, err)
		}
		if len(mm.vmas) != 0 || fs.open != 0 {
			t.Errorf("vDSO %+v: %d mappings, %d files open after the failure", v, len(mm.vmas), fs.open)
		}
	}
}

// Mappables given to the MM are referenced by it; after the load only the
// MM's mappings hold them.
func TestLoadMappableRefs(t *testing.T) {
	mm, fs := newFakeMM(), newFakeFS()
	fs.files["/bin/prog"] = staticELF()
	if _, err := Load(baseArgs(mm, fs, "/bin/prog")); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range mm.vmas {
		if v.opts.Mappable != nil {
			n++
		}
	}
	if got := fs.mappables["/bin/prog"].refs; got != n || n != 2 {
		t.Errorf("mappable refs %d, file mappings %d, want 2", got, n)
	}
}
