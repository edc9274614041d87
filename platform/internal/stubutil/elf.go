package stubutil

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// NewELF returns a stub page of size bytes: an ELF64 header and one
// program header that loads the whole page read+execute at base, entered
// at entry. The rest of the page is zero, for the platform to fill.
func NewELF(base, entry uint64, size int) []byte {
	b := make([]byte, size)
	le := binary.LittleEndian
	// ELF header.
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* LE */, 1 /* version */})
	le.PutUint16(b[16:], 2)    // ET_EXEC
	le.PutUint16(b[18:], 0x3e) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], entry) // e_entry
	le.PutUint64(b[32:], 64)    // e_phoff
	le.PutUint16(b[52:], 64)    // e_ehsize
	le.PutUint16(b[54:], 56)    // e_phentsize
	le.PutUint16(b[56:], 1)     // e_phnum
	// PT_LOAD, R+X, the whole page.
	ph := b[64:]
	le.PutUint32(ph[0:], 1)
	le.PutUint32(ph[4:], 5)
	le.PutUint64(ph[8:], 0)
	le.PutUint64(ph[16:], base)
	le.PutUint64(ph[24:], base)
	le.PutUint64(ph[32:], uint64(size))
	le.PutUint64(ph[40:], uint64(size))
	le.PutUint64(ph[48:], uint64(size))
	return b
}

// PutFilter writes filter at filterOff in page, which is loaded at base,
// and at fprogOff the struct sock_fprog that seccomp(2) is given for it.
// The caller has checked that the filter fits.
func PutFilter(page []byte, base uint64, fprogOff, filterOff int, filter []unix.SockFilter) {
	le := binary.LittleEndian
	for i, ins := range filter {
		o := filterOff + 8*i
		le.PutUint16(page[o:], ins.Code)
		page[o+2] = ins.Jt
		page[o+3] = ins.Jf
		le.PutUint32(page[o+4:], ins.K)
	}
	le.PutUint16(page[fprogOff:], uint16(len(filter)))
	le.PutUint64(page[fprogOff+8:], base+uint64(filterOff))
}

// PutCapHeader writes at off in page a capset(2) version 3 header for pid 0
// (the caller). The two struct __user_cap_data_struct that follow it must
// stay zero: capset with them drops every capability.
func PutCapHeader(page []byte, off int) {
	binary.LittleEndian.PutUint32(page[off:], 0x20080522)
}
