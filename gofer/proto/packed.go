package proto

import (
	"encoding/binary"
	"errors"
	"strings"

	"golang.org/x/sys/unix"
)

// Packed directory entries (ReaddirResp.packed, from version 3). A
// listing with attributes is the gofer's biggest answer by far, and as
// Dirent messages every entry costs its decoder five allocations (the
// entry, its Attr and three Timespecs); packed, a whole page is one
// buffer the client walks in place.
//
// Each entry, little-endian, with no padding:
//
//	off  size
//	  0     8  d_ino
//	  8     8  cookie (continue after this entry)
//	 16     1  type (DT_*)
//	 17     1  flags: bit 0, attributes follow
//	 18     2  name length, 1 to 255
//	 20   100  attributes, when flagged (PackedAttrSize)
//	  …     n  the name
//
// Attributes: mode, uid, gid, blksize (u32 each); nlink, ino, dev, size,
// blocks, rdev (u64 each; size and blocks signed); atime, mtime, ctime
// (i64 seconds, u32 nanoseconds each).

// Sizes of the packed layout.
const (
	packedHeaderSize = 20
	PackedAttrSize   = 100
	packedHasAttr    = 1
)

// ErrPacked reports a packed listing that does not follow the layout.
var ErrPacked = errors.New("malformed packed directory entries")

// Stat is a file's attributes as a flat value: Attr without the pointers.
type Stat struct {
	Mode, UID, GID, Blksize uint32
	Nlink, Ino, Dev         uint64
	Size, Blocks            int64
	Rdev                    uint64
	Atime, Mtime, Ctime     StatTime
}

// StatTime is a Timespec as a value.
type StatTime struct {
	Sec  int64
	Nsec uint32
}

// Attr converts s to the message form.
func (s *Stat) Attr() *Attr {
	ts := func(t StatTime) *Timespec { return &Timespec{Sec: t.Sec, Nsec: int64(t.Nsec)} }
	return &Attr{
		Mode: s.Mode, Uid: s.UID, Gid: s.GID, Nlink: s.Nlink, Ino: s.Ino, Dev: s.Dev,
		Size: s.Size, Blocks: s.Blocks, Blksize: int64(s.Blksize), Rdev: s.Rdev,
		Atime: ts(s.Atime), Mtime: ts(s.Mtime), Ctime: ts(s.Ctime),
	}
}

// HostStat converts a host stat.
func HostStat(st *unix.Stat_t) Stat {
	return Stat{
		Mode: st.Mode, UID: st.Uid, GID: st.Gid, Blksize: uint32(st.Blksize),
		Nlink: uint64(st.Nlink), Ino: st.Ino, Dev: st.Dev, Size: st.Size, Blocks: st.Blocks, Rdev: st.Rdev,
		Atime: StatTime{st.Atim.Sec, uint32(st.Atim.Nsec)},
		Mtime: StatTime{st.Mtim.Sec, uint32(st.Mtim.Nsec)},
		Ctime: StatTime{st.Ctim.Sec, uint32(st.Ctim.Nsec)},
	}
}

// StatOf converts the message form to a Stat.
func StatOf(a *Attr) Stat {
	ts := func(t *Timespec) StatTime { return StatTime{Sec: t.GetSec(), Nsec: uint32(t.GetNsec())} }
	return Stat{
		Mode: a.Mode, UID: a.Uid, GID: a.Gid, Blksize: uint32(a.Blksize),
		Nlink: a.Nlink, Ino: a.Ino, Dev: a.Dev, Size: a.Size, Blocks: a.Blocks, Rdev: a.Rdev,
		Atime: ts(a.Atime), Mtime: ts(a.Mtime), Ctime: ts(a.Ctime),
	}
}

// PackedSize is how many bytes an entry with a name of n bytes takes.
func PackedSize(n int, withAttr bool) int {
	if withAttr {
		return packedHeaderSize + PackedAttrSize + n
	}
	return packedHeaderSize + n
}

// AppendPacked appends one entry; st is nil when the entry has no
// attributes. name must be 1 to 255 bytes.
func AppendPacked(b []byte, name []byte, ino uint64, cookie int64, typ uint8, st *Stat) []byte {
	le := binary.LittleEndian
	b = le.AppendUint64(b, ino)
	b = le.AppendUint64(b, uint64(cookie))
	var flags uint8
	if st != nil {
		flags = packedHasAttr
	}
	b = append(b, typ, flags)
	b = le.AppendUint16(b, uint16(len(name)))
	if st != nil {
		for _, v := range [...]uint32{st.Mode, st.UID, st.GID, st.Blksize} {
			b = le.AppendUint32(b, v)
		}
		for _, v := range [...]uint64{st.Nlink, st.Ino, st.Dev, uint64(st.Size), uint64(st.Blocks), st.Rdev} {
			b = le.AppendUint64(b, v)
		}
		for _, t := range [...]StatTime{st.Atime, st.Mtime, st.Ctime} {
			b = le.AppendUint64(b, uint64(t.Sec))
			b = le.AppendUint32(b, t.Nsec)
		}
	}
	return append(b, name...)
}

// PackedDirent is one decoded entry. Name is a substring of the string
// the entries were decoded from.
type PackedDirent struct {
	Name    string
	Ino     uint64
	Cookie  int64
	Type    uint8
	HasAttr bool
	Attr    Stat
}

// DecodePacked appends the entries of b to out. b comes from the gofer,
// so every length is checked, and names must be single components:
// anything else is ErrPacked. b is a string so that names can share its
// memory.
func DecodePacked(b string, out []PackedDirent) ([]PackedDirent, error) {
	for len(b) > 0 {
		if len(b) < packedHeaderSize {
			return out, ErrPacked
		}
		d := PackedDirent{
			Ino:     u64(b[0:]),
			Cookie:  int64(u64(b[8:])),
			Type:    b[16],
			HasAttr: b[17]&packedHasAttr != 0,
		}
		n := int(b[18]) | int(b[19])<<8
		if b[17]&^packedHasAttr != 0 || n == 0 || n > 255 {
			return out, ErrPacked
		}
		b = b[packedHeaderSize:]
		if d.HasAttr {
			if len(b) < PackedAttrSize {
				return out, ErrPacked
			}
			s := &d.Attr
			s.Mode, s.UID, s.GID, s.Blksize = u32(b[0:]), u32(b[4:]), u32(b[8:]), u32(b[12:])
			s.Nlink, s.Ino, s.Dev = u64(b[16:]), u64(b[24:]), u64(b[32:])
			s.Size, s.Blocks, s.Rdev = int64(u64(b[40:])), int64(u64(b[48:])), u64(b[56:])
			s.Atime = StatTime{int64(u64(b[64:])), u32(b[72:])}
			s.Mtime = StatTime{int64(u64(b[76:])), u32(b[84:])}
			s.Ctime = StatTime{int64(u64(b[88:])), u32(b[96:])}
			b = b[PackedAttrSize:]
		}
		if len(b) < n {
			return out, ErrPacked
		}
		d.Name, b = b[:n], b[n:]
		if d.Name == "." || d.Name == ".." || strings.ContainsAny(d.Name, "/\x00") {
			return out, ErrPacked
		}
		out = append(out, d)
	}
	return out, nil
}

func u32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

func u64(s string) uint64 { return uint64(u32(s)) | uint64(u32(s[4:]))<<32 }
