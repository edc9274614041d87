// Package usermem owns the one copy-in/copy-out abstraction of the sentry:
// an IO that moves bytes between the sentry and some memory (an address
// space, or a plain buffer), and IOSequence, an ordered list of ranges of
// that memory as read(2)/readv(2) and friends see them.
package usermem

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// IO moves bytes between the sentry and some memory. Short copies return the
// count done and the error (EFAULT for a bad address) that stopped them.
type IO interface {
	CopyOut(addr hostarch.Addr, src []byte) (int, error)
	CopyIn(addr hostarch.Addr, dst []byte) (int, error)
	// Blocks returns host slices aliasing ar in order, faulting it in with
	// the access write implies; on a bad address it returns the prefix that
	// is good and EFAULT. release must be called once the slices are no
	// longer used: until then the memory behind them stays allocated.
	Blocks(ar hostarch.AddrRange, write bool) (blocks [][]byte, release func(), err error)
}

// IOSequence is a sequence of ranges of an IO, consumed in order.
type IOSequence struct {
	IO     IO
	Ranges []hostarch.AddrRange
}

// BytesIO is an IO over a sentry buffer; addresses are offsets into it.
type BytesIO struct{ Bytes []byte }

func (b *BytesIO) rangeOK(addr hostarch.Addr, n int) (int, error) {
	if uint64(addr) > uint64(len(b.Bytes)) {
		return 0, unix.EFAULT
	}
	if avail := len(b.Bytes) - int(addr); n > avail {
		return avail, unix.EFAULT
	}
	return n, nil
}

func (b *BytesIO) CopyOut(addr hostarch.Addr, src []byte) (int, error) {
	n, err := b.rangeOK(addr, len(src))
	copy(b.Bytes[addr:], src[:n])
	return n, err
}

func (b *BytesIO) CopyIn(addr hostarch.Addr, dst []byte) (int, error) {
	n, err := b.rangeOK(addr, len(dst))
	copy(dst[:n], b.Bytes[addr:])
	return n, err
}

func (b *BytesIO) Blocks(ar hostarch.AddrRange, write bool) ([][]byte, func(), error) {
	n, err := b.rangeOK(ar.Start, int(ar.Length()))
	if n == 0 {
		return nil, func() {}, err
	}
	return [][]byte{b.Bytes[ar.Start : int(ar.Start)+n]}, func() {}, err
}

// BytesSequence is an IOSequence over buf.
func BytesSequence(buf []byte) IOSequence {
	return IOSequence{IO: &BytesIO{buf}, Ranges: []hostarch.AddrRange{{Start: 0, End: hostarch.Addr(len(buf))}}}
}

// NumBytes is the total length of the sequence.
func (s IOSequence) NumBytes() int64 {
	var n int64
	for _, r := range s.Ranges {
		n += int64(r.Length())
	}
	return n
}

// DropFirst returns s without its first n bytes.
func (s IOSequence) DropFirst(n int64) IOSequence {
	rs := s.Ranges
	// Empty ranges at the front go too, so that a walk over the
	// sequence (blocksDo) always makes progress.
	for len(rs) > 0 && (n > 0 || rs[0].Length() == 0) {
		l := int64(rs[0].Length())
		if n < l {
			first := rs[0]
			first.Start += hostarch.Addr(n)
			out := make([]hostarch.AddrRange, 0, len(rs))
			out = append(out, first)
			out = append(out, rs[1:]...)
			return IOSequence{IO: s.IO, Ranges: out}
		}
		n -= l
		rs = rs[1:]
	}
	return IOSequence{IO: s.IO, Ranges: rs}
}

// TakeFirst returns the first n bytes of s.
func (s IOSequence) TakeFirst(n int64) IOSequence {
	var out []hostarch.AddrRange
	for _, r := range s.Ranges {
		if n <= 0 {
			break
		}
		if l := int64(r.Length()); n < l {
			r.End = r.Start + hostarch.Addr(n)
		}
		n -= int64(r.Length())
		out = append(out, r)
	}
	return IOSequence{IO: s.IO, Ranges: out}
}

// CopyOut writes src to the start of the sequence.
func (s IOSequence) CopyOut(src []byte) (int, error) {
	done := 0
	for _, r := range s.Ranges {
		if done == len(src) {
			break
		}
		chunk := src[done:]
		if uint64(len(chunk)) > r.Length() {
			chunk = chunk[:r.Length()]
		}
		n, err := s.IO.CopyOut(r.Start, chunk)
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// CopyIn reads the start of the sequence into dst.
func (s IOSequence) CopyIn(dst []byte) (int, error) {
	done := 0
	for _, r := range s.Ranges {
		if done == len(dst) {
			break
		}
		chunk := dst[done:]
		if uint64(len(chunk)) > r.Length() {
			chunk = chunk[:r.Length()]
		}
		n, err := s.IO.CopyIn(r.Start, chunk)
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// maxBlockBytes bounds how much memory one ReadFrom/WriteTo call pins.
const maxBlockBytes = 4 << 20

// ReadFrom fills the sequence by calling fill with host slices aliasing it
// (for example a host preadv), without an intermediate buffer. fill returns
// how many bytes it wrote; a short count ends the call.
func (s IOSequence) ReadFrom(fill func(dst [][]byte) (int64, error)) (int64, error) {
	return s.blocksDo(true, fill)
}

// WriteTo passes the sequence's contents to drain as host slices.
func (s IOSequence) WriteTo(drain func(src [][]byte) (int64, error)) (int64, error) {
	return s.blocksDo(false, drain)
}

func (s IOSequence) blocksDo(write bool, fn func([][]byte) (int64, error)) (int64, error) {
	var total int64
	for len(s.Ranges) > 0 {
		part := s.TakeFirst(maxBlockBytes)
		var blocks [][]byte
		var releases []func()
		var ferr error
		want := int64(0)
		for _, r := range part.Ranges {
			bs, rel, err := s.IO.Blocks(r, write)
			releases = append(releases, rel)
			blocks = append(blocks, bs...)
			for _, b := range bs {
				want += int64(len(b))
			}
			if err != nil {
				ferr = err
				break
			}
		}
		var n int64
		var err error
		if want > 0 {
			n, err = fn(blocks)
		}
		for _, rel := range releases {
			rel()
		}
		total += n
		if err != nil {
			return total, err
		}
		if n < want {
			return total, nil
		}
		if ferr != nil {
			return total, ferr
		}
		s = s.DropFirst(n)
	}
	return total, nil
}
