// Package hostarch owns the address and page arithmetic shared by the
// platform, the memory manager and the loader: addresses, ranges, access
// types and page sizes of x86-64.
package hostarch

import "fmt"

const (
	PageShift     = 12
	PageSize      = 1 << PageShift
	HugePageShift = 21
	HugePageSize  = 1 << HugePageShift
)

// Addr is an application virtual address.
type Addr uintptr

// RoundDown returns the page containing a.
func (a Addr) RoundDown() Addr { return a &^ (PageSize - 1) }

// RoundUp returns a rounded up to a page, and false on overflow.
func (a Addr) RoundUp() (Addr, bool) {
	r := (a + PageSize - 1) &^ (PageSize - 1)
	return r, r >= a
}

// IsPageAligned reports whether a is page aligned.
func (a Addr) IsPageAligned() bool { return a&(PageSize-1) == 0 }

// AddLength returns a+n, and false on overflow.
func (a Addr) AddLength(n uint64) (Addr, bool) {
	e := a + Addr(n)
	return e, uint64(e) >= uint64(a) && uint64(e)-uint64(a) == n
}

func (a Addr) String() string { return fmt.Sprintf("%#x", uintptr(a)) }

// AddrRange is [Start, End).
type AddrRange struct{ Start, End Addr }

func (r AddrRange) Length() uint64            { return uint64(r.End - r.Start) }
func (r AddrRange) Contains(a Addr) bool      { return r.Start <= a && a < r.End }
func (r AddrRange) Overlaps(o AddrRange) bool { return r.Start < o.End && o.Start < r.End }
func (r AddrRange) Intersect(o AddrRange) AddrRange {
	if o.Start > r.Start {
		r.Start = o.Start
	}
	if o.End < r.End {
		r.End = o.End
	}
	if r.End < r.Start {
		r.End = r.Start
	}
	return r
}
func (r AddrRange) String() string {
	return fmt.Sprintf("[%#x, %#x)", uintptr(r.Start), uintptr(r.End))
}

// AccessType says which of read, write and execute an access or a mapping
// allows.
type AccessType struct{ Read, Write, Execute bool }

var (
	NoAccess  = AccessType{}
	Read      = AccessType{Read: true}
	Write     = AccessType{Write: true}
	Execute   = AccessType{Execute: true}
	ReadWrite = AccessType{Read: true, Write: true}
	AnyAccess = AccessType{Read: true, Write: true, Execute: true}
)

// Prot converts to PROT_* bits.
func (a AccessType) Prot() int {
	p := 0
	if a.Read {
		p |= 1
	}
	if a.Write {
		p |= 2
	}
	if a.Execute {
		p |= 4
	}
	return p
}

// AccessFromProt converts PROT_* bits. On x86-64 write and exec imply read.
func AccessFromProt(prot int) AccessType {
	return AccessType{Read: prot&7 != 0, Write: prot&2 != 0, Execute: prot&4 != 0}
}

// SupersetOf reports whether a allows everything o does.
func (a AccessType) SupersetOf(o AccessType) bool {
	return (a.Read || !o.Read) && (a.Write || !o.Write) && (a.Execute || !o.Execute)
}

// Intersect returns what both allow.
func (a AccessType) Intersect(o AccessType) AccessType {
	return AccessType{a.Read && o.Read, a.Write && o.Write, a.Execute && o.Execute}
}

// Any reports whether anything is allowed.
func (a AccessType) Any() bool { return a.Read || a.Write || a.Execute }

func (a AccessType) String() string {
	b := []byte("---")
	if a.Read {
		b[0] = 'r'
	}
	if a.Write {
		b[1] = 'w'
	}
	if a.Execute {
		b[2] = 'x'
	}
	return string(b)
}
