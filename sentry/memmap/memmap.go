// Package memmap owns the contract between things that can be mapped into
// an address space (files, shared memory) and the memory manager that maps
// them. All mappable memory lives in the sentry's memory file, so a
// translation is a range of that file.
package memmap

import "github.com/veil-sandbox/veil/sentry/hostarch"

// Translation says that Length bytes of a Mappable starting at Offset live
// at FileOffset in the memory file, and may be mapped with at most Perms.
type Translation struct {
	Offset     uint64
	Length     uint64
	FileOffset uint64
	Perms      hostarch.AccessType
}

// MappingSpace is an address space holding mappings of a Mappable; the
// Mappable calls Invalidate when translations it gave out stop being valid
// (truncation, hole punching), and the space drops them.
type MappingSpace interface {
	Invalidate(ar hostarch.AddrRange)
}

// Mappable is an object whose contents can be mapped.
type Mappable interface {
	// Translate returns translations covering at least [off, off+length),
	// filling memory from backing store as needed. at is the access the
	// caller needs; a Mappable that cannot give it returns EACCES. Offsets
	// past EOF give SIGBUS at the caller (EFAULT here).
	Translate(off, length uint64, at hostarch.AccessType) ([]Translation, error)
	// AddMapping and RemoveMapping track who maps what, for invalidation.
	AddMapping(ms MappingSpace, ar hostarch.AddrRange, off uint64, writable bool)
	RemoveMapping(ms MappingSpace, ar hostarch.AddrRange, off uint64, writable bool)
	// IncRef/DecRef keep the object alive while mapped.
	IncRef()
	DecRef()
}

// Syncer is a Mappable whose shared pages are a cache of a backing store
// they are written back to; msync(MS_SYNC) asks it to write back the dirty
// pages of [off, off+length) now.
type Syncer interface {
	SyncRange(off, length uint64) error
}

// MMapOpts describe a mapping being created (mmap(2)).
type MMapOpts struct {
	Length    uint64
	Offset    uint64
	Addr      hostarch.Addr
	Fixed     bool
	Unmap     bool // MAP_FIXED without MAP_FIXED_NOREPLACE
	Private   bool
	Perms     hostarch.AccessType
	MaxPerms  hostarch.AccessType
	GrowsDown bool
	Mappable  Mappable // nil for anonymous memory
	// Name shows in /proc/pid/maps for file mappings.
	Name string
	// Dev and Ino identify the file for /proc/pid/maps.
	Dev, Ino uint64
	// Hint is an optional description such as "[stack]".
	Hint string
}
