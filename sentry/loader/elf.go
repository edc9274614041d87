package loader

import (
	"encoding/binary"
	"errors"
	"io"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
	"github.com/veil-sandbox/veil/sentry/memmap"
)

// ELF64 facts (the System V gABI and its x86-64 supplement).
const (
	elfHeaderSize = 64
	elfPhdrSize   = 56

	elfClass64   = 2
	elfDataLSB   = 1
	etExec       = 2
	etDyn        = 3
	emX86_64     = 62
	ptLoad       = 1
	ptInterp     = 3
	ptGNUStack   = 0x6474e551
	pfX          = 1
	pfW          = 2
	pfR          = 4
	linuxPathMax = 4096

	// maxPhdrBytes is Linux's cap on the program header table: it must fit
	// in one page (ELF_MIN_ALIGN), which also bounds the work a hostile
	// header can cause.
	maxPhdrBytes = hostarch.PageSize

	// maxHonouredAlign bounds the p_align Linux would align an ET_DYN
	// executable to; anything above it is ignored rather than letting a
	// corrupt header push the base to zero.
	maxHonouredAlign = 1 << 30
)

// elfPhdr is one program header.
type elfPhdr struct {
	typ, flags                    uint32
	off, vaddr, filesz, memsz, al uint64
}

// elfInfo is a validated executable or interpreter, not yet mapped.
type elfInfo struct {
	file   File
	typ    uint16
	entry  uint64
	phoff  uint64
	phdrs  []elfPhdr
	loads  []elfPhdr // PT_LOADs with p_memsz > 0, ascending
	interp string
	// execStack is PT_GNU_STACK's PF_X. Without PT_GNU_STACK x86-64 Linux
	// gives a non-executable stack to 64-bit programs.
	execStack bool
	// spanStart and spanEnd are the page-rounded range the PT_LOADs cover
	// before relocation.
	spanStart, spanEnd uint64
	maxAlign           uint64
}

// readFull reads len(p) bytes at off. A short read (the file ends first)
// gives short; any other failure is translated to an errno.
func readFull(f File, p []byte, off int64) (short bool, err error) {
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return false, nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true, nil
	}
	return false, linuxerr.FromHost(err)
}

// parseELF reads and validates the headers of f. A file that is not an
// executable Veil can run gives ENOEXEC as Linux's execve does; for the
// interpreter (isInterp) any such defect gives ELIBBAD instead, the errno
// Linux gives for a bad ELF interpreter.
func parseELF(f File, isInterp bool) (*elfInfo, error) {
	info, err := parseELFHeaders(f, isInterp)
	if err != nil && isInterp {
		switch err {
		case unix.ENOEXEC, unix.EINVAL, unix.ENOMEM:
			err = unix.ELIBBAD
		}
	}
	return info, err
}

func parseELFHeaders(f File, isInterp bool) (*elfInfo, error) {
	size, err := f.Size()
	if err != nil {
		return nil, linuxerr.FromHost(err)
	}
	if size < 0 {
		return nil, unix.EIO
	}
	var hdr [elfHeaderSize]byte
	if short, err := readFull(f, hdr[:], 0); err != nil {
		return nil, err
	} else if short {
		return nil, unix.ENOEXEC
	}
	le := binary.LittleEndian
	if string(hdr[:4]) != "\x7fELF" || hdr[4] != elfClass64 || hdr[5] != elfDataLSB {
		return nil, unix.ENOEXEC
	}
	info := &elfInfo{
		file:  f,
		typ:   le.Uint16(hdr[16:]),
		entry: le.Uint64(hdr[24:]),
		phoff: le.Uint64(hdr[32:]),
	}
	if info.typ != etExec && info.typ != etDyn {
		return nil, unix.ENOEXEC
	}
	if le.Uint16(hdr[18:]) != emX86_64 {
		return nil, unix.ENOEXEC
	}
	phentsize, phnum := uint64(le.Uint16(hdr[54:])), uint64(le.Uint16(hdr[56:]))
	if phentsize != elfPhdrSize || phnum == 0 || phnum*elfPhdrSize > maxPhdrBytes {
		return nil, unix.ENOEXEC
	}
	tableSize := phnum * elfPhdrSize
	if info.phoff > uint64(size) || uint64(size)-info.phoff < tableSize {
		return nil, unix.ENOEXEC
	}
	table := make([]byte, tableSize)
	if short, err := readFull(f, table, int64(info.phoff)); err != nil {
		return nil, err
	} else if short {
		return nil, unix.ENOEXEC
	}
	info.phdrs = make([]elfPhdr, phnum)
	for i := range info.phdrs {
		b := table[i*elfPhdrSize:]
		info.phdrs[i] = elfPhdr{
			typ:    le.Uint32(b[0:]),
			flags:  le.Uint32(b[4:]),
			off:    le.Uint64(b[8:]),
			vaddr:  le.Uint64(b[16:]),
			filesz: le.Uint64(b[32:]),
			memsz:  le.Uint64(b[40:]),
			al:     le.Uint64(b[48:]),
		}
	}

	for _, ph := range info.phdrs {
		switch ph.typ {
		case ptInterp:
			// Only the executable's first PT_INTERP counts; an
			// interpreter's own PT_INTERP is ignored.
			if isInterp || info.interp != "" {
				continue
			}
			interp, err := readInterp(f, ph, size)
			if err != nil {
				return nil, err
			}
			info.interp = interp
		case ptGNUStack:
			// The last one wins, as in Linux.
			info.execStack = ph.flags&pfX != 0
		}
	}

	if err := info.checkLoads(uint64(size)); err != nil {
		return nil, err
	}
	return info, nil
}

// readInterp reads the PT_INTERP path. Linux wants it NUL-terminated,
// between 2 and PATH_MAX bytes long, and gives EIO when the file ends before
// it.
func readInterp(f File, ph elfPhdr, size int64) (string, error) {
	if ph.filesz < 2 || ph.filesz > linuxPathMax {
		return "", unix.ENOEXEC
	}
	if ph.off > uint64(size) || uint64(size)-ph.off < ph.filesz {
		return "", unix.EIO
	}
	buf := make([]byte, ph.filesz)
	if short, err := readFull(f, buf, int64(ph.off)); err != nil {
		return "", err
	} else if short {
		return "", unix.EIO
	}
	if buf[len(buf)-1] != 0 {
		return "", unix.ENOEXEC
	}
	for i, c := range buf {
		if c == 0 {
			buf = buf[:i]
			break
		}
	}
	if len(buf) == 0 {
		return "", unix.ENOENT // open("") fails so in Linux.
	}
	return string(buf), nil
}

// checkLoads validates the PT_LOAD segments against the file and against
// each other. The address space bound is checked once the load bias is
// known, in mapELF.
func (info *elfInfo) checkLoads(size uint64) error {
	var prevEnd uint64
	for _, ph := range info.phdrs {
		if ph.typ != ptLoad {
			continue
		}
		if ph.filesz > ph.memsz {
			return unix.EINVAL
		}
		if ph.memsz == 0 {
			// Linux maps nothing for an empty segment.
			continue
		}
		// mmap needs a page-aligned file offset, so the segment's offset
		// and address must agree within the page.
		if ph.off%hostarch.PageSize != ph.vaddr%hostarch.PageSize {
			return unix.EINVAL
		}
		if ph.off > size || size-ph.off < ph.filesz {
			return unix.ENOEXEC
		}
		end := ph.vaddr + ph.memsz
		if end < ph.vaddr || end > ^uint64(0)-hostarch.PageSize {
			return unix.ENOMEM
		}
		// The gABI requires PT_LOADs sorted by address; overlapping
		// segments are a corrupt file.
		if len(info.loads) > 0 && ph.vaddr < prevEnd {
			return unix.ENOEXEC
		}
		prevEnd = end
		info.loads = append(info.loads, ph)
		if ph.al > info.maxAlign && ph.al&(ph.al-1) == 0 && ph.al <= maxHonouredAlign {
			info.maxAlign = ph.al
		}
	}
	if len(info.loads) == 0 {
		return unix.EINVAL
	}
	info.spanStart = pageDown(info.loads[0].vaddr)
	info.spanEnd = pageUp(prevEnd)
	return nil
}

func pageDown(v uint64) uint64 { return v &^ (hostarch.PageSize - 1) }

// pageUp rounds up; callers have checked v is at least a page below 2^64.
func pageUp(v uint64) uint64 { return (v + hostarch.PageSize - 1) &^ (hostarch.PageSize - 1) }

func segPerms(flags uint32) hostarch.AccessType {
	return hostarch.AccessType{
		Read:    flags&pfR != 0,
		Write:   flags&pfW != 0,
		Execute: flags&pfX != 0,
	}
}

// loadedELF is where mapELF put an ELF file.
type loadedELF struct {
	bias     hostarch.Addr
	entry    hostarch.Addr
	phdrAddr hostarch.Addr
	// end is the page-aligned end of the highest segment.
	end hostarch.Addr
}

// mapELF maps info's segments. An ET_EXEC file goes at its own addresses.
// An ET_DYN file goes at dynBase when that is non-zero (the main
// executable), and otherwise wherever MMap places a reservation of its whole
// span (the interpreter). Either way the whole span is reserved first so
// that the segments, mapped fixed inside it, cannot land on something else;
// the holes between segments are then unmapped, as Linux leaves them.
func (m *mapper) mapELF(info *elfInfo, dynBase hostarch.Addr, name string) (*loadedELF, error) {
	spanLen := info.spanEnd - info.spanStart
	reserve := memmap.MMapOpts{
		Length:   spanLen,
		Private:  true,
		Perms:    hostarch.NoAccess,
		MaxPerms: hostarch.AnyAccess,
	}
	var bias uint64
	switch {
	case info.typ == etExec:
		reserve.Addr, reserve.Fixed = hostarch.Addr(info.spanStart), true
	case dynBase != 0:
		bias = pageDown(uint64(dynBase) - info.spanStart)
		if info.maxAlign > hostarch.PageSize {
			bias &^= info.maxAlign - 1
		}
		reserve.Addr, reserve.Fixed = hostarch.Addr(info.spanStart+bias), true
	}
	if reserve.Fixed {
		end := uint64(reserve.Addr) + spanLen
		if end < uint64(reserve.Addr) || end > uint64(m.maxAddr) {
			return nil, unix.ENOMEM
		}
	}
	addr, err := m.mm.MMap(reserve)
	if err != nil {
		return nil, err
	}
	m.mapped = append(m.mapped, hostarch.AddrRange{Start: addr, End: addr + hostarch.Addr(spanLen)})
	if reserve.Fixed && addr != reserve.Addr {
		return nil, unix.ENOMEM
	}
	if !reserve.Fixed {
		bias = uint64(addr) - info.spanStart
	}
	if uint64(addr)+spanLen < uint64(addr) || uint64(addr)+spanLen > uint64(m.maxAddr) {
		return nil, unix.ENOMEM
	}

	covered := uint64(addr) // end of what segments have claimed so far
	for _, ph := range info.loads {
		if err := m.mapSegment(info.file, ph, bias, name); err != nil {
			return nil, err
		}
		start := pageDown(ph.vaddr + bias)
		if start > covered {
			if err := m.mm.MUnmap(hostarch.Addr(covered), start-covered); err != nil {
				return nil, err
			}
		}
		if end := pageUp(ph.vaddr + bias + ph.memsz); end > covered {
			covered = end
		}
	}

	l := &loadedELF{
		bias:  hostarch.Addr(bias),
		entry: hostarch.Addr(info.entry + bias),
		end:   hostarch.Addr(covered),
	}
	if uint64(l.entry) >= uint64(m.maxAddr) {
		return nil, unix.EINVAL
	}
	// AT_PHDR: where the program header table is in memory, found as Linux
	// does through the PT_LOAD whose file range holds it.
	var phdr uint64
	for _, ph := range info.phdrs {
		if ph.typ == ptLoad && ph.off <= info.phoff && info.phoff-ph.off < ph.filesz {
			phdr = info.phoff - ph.off + ph.vaddr
		}
	}
	l.phdrAddr = hostarch.Addr(phdr + bias)
	return l, nil
}

// mapSegment maps one PT_LOAD at its address plus bias: its file part as a
// private file mapping, the zero-filled rest (bss) as anonymous memory,
// with the bytes between the end of the file part and the end of its page
// cleared.
func (m *mapper) mapSegment(f File, ph elfPhdr, bias uint64, name string) error {
	perms := segPerms(ph.flags)
	pageOff := ph.vaddr % hostarch.PageSize
	start := pageDown(ph.vaddr + bias)
	fileEnd := ph.vaddr + bias + ph.filesz
	memEnd := ph.vaddr + bias + ph.memsz
	anonStart := start
	if ph.filesz > 0 {
		opts := memmap.MMapOpts{
			Length:   pageUp(fileEnd) - start,
			Offset:   ph.off - pageOff,
			Addr:     hostarch.Addr(start),
			Fixed:    true,
			Unmap:    true,
			Private:  true,
			Perms:    perms,
			MaxPerms: hostarch.AnyAccess,
			Name:     name,
		}
		if err := f.ConfigureMMap(&opts); err != nil {
			return linuxerr.FromHost(err)
		}
		if opts.Mappable == nil {
			return unix.ENODEV
		}
		if err := m.fixedMap(opts); err != nil {
			return err
		}
		anonStart = pageUp(fileEnd)
		if ph.memsz > ph.filesz && fileEnd%hostarch.PageSize != 0 {
			zeros := make([]byte, anonStart-fileEnd)
			// Like Linux, a failure to clear a page the program cannot
			// write anyway is not an error.
			if _, err := m.mm.CopyOut(hostarch.Addr(fileEnd), zeros); err != nil && perms.Write {
				return unix.EFAULT
			}
		}
	}
	if anonEnd := pageUp(memEnd); anonEnd > anonStart {
		return m.fixedMap(memmap.MMapOpts{
			Length:   anonEnd - anonStart,
			Addr:     hostarch.Addr(anonStart),
			Fixed:    true,
			Unmap:    true,
			Private:  true,
			Perms:    perms,
			MaxPerms: hostarch.AnyAccess,
		})
	}
	return nil
}

func (m *mapper) fixedMap(opts memmap.MMapOpts) error {
	addr, err := m.mm.MMap(opts)
	if err != nil {
		return err
	}
	if addr != opts.Addr {
		m.mapped = append(m.mapped, hostarch.AddrRange{Start: addr, End: addr + hostarch.Addr(opts.Length)})
		return unix.ENOMEM
	}
	return nil
}
