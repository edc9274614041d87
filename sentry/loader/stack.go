package loader

import (
	"encoding/binary"
	"io"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/memmap"
)

const (
	// maxArgStrlen is MAX_ARG_STRLEN: the longest single argument or
	// environment string, counting its NUL.
	maxArgStrlen = 32 * hostarch.PageSize
	// argMax is ARG_MAX: the string space execve allows however small the
	// stack limit.
	argMax = 32 * hostarch.PageSize
	// stkLim is _STK_LIM, the default stack limit; strings never get more
	// than three quarters of it.
	stkLim = 8 << 20
	// maxStackMapping bounds the stack mapping when the stack limit is
	// huge or unlimited; the mapping grows down past it on demand.
	maxStackMapping = 1 << 30
)

// checkArgSizes applies Linux's execve limits to the strings that will be
// copied to the new stack: no string may be longer than MAX_ARG_STRLEN, and
// all of them (including the AT_EXECFN copy of the path) together with the
// argv and envp pointer arrays must fit in a quarter of the stack limit,
// capped at 6 MiB but never less than ARG_MAX.
func checkArgSizes(execFn string, argv, envv []string, stackSize uint64) error {
	limit := min(uint64(stkLim/4*3), stackSize/4)
	limit = max(limit, argMax)
	ptrs := uint64(max(len(argv), 1)+len(envv)) * wordSize
	if limit <= ptrs {
		return unix.E2BIG
	}
	limit -= ptrs
	total := uint64(len(execFn)) + 1
	if total > maxArgStrlen {
		return unix.E2BIG
	}
	for _, list := range [][]string{argv, envv} {
		for _, s := range list {
			n := uint64(len(s)) + 1
			if n > maxArgStrlen {
				return unix.E2BIG
			}
			total += n
			if total > limit {
				return unix.E2BIG
			}
		}
	}
	if total > limit {
		return unix.E2BIG
	}
	return nil
}

// stackArgs is what goes on the initial stack.
type stackArgs struct {
	execFn     string
	argv, envv []string
	top        hostarch.Addr
	size       uint64
	execute    bool
	random     io.Reader
}

// stackLayout is where everything goes on the initial stack.
type stackLayout struct {
	sp, argStart, envStart, envEnd     uint64
	execFnAddr, platformAddr, randAddr uint64
	mapStart                           hostarch.Addr
	random                             [auxRandomSize]byte
}

// layoutStack places the initial process stack as Linux lays it out, from
// the top down:
//
//	one zero word
//	AT_EXECFN string
//	environment strings, then below them argument strings
//	(alignment to 16)
//	AT_PLATFORM string
//	16 AT_RANDOM bytes
//	(padding, so that the stack pointer is 16-byte aligned)
//	auxv pairs (nAux of them), then AT_NULL
//	envp[], NULL
//	argv[], NULL
//	argc                      <- stack pointer
//
// and maps the stack: a grows-down mapping of the stack limit's size (but
// at least what the layout needs) ending at the top. The stack is mapped
// before the executable so that the interpreter, placed wherever the memory
// manager likes, cannot take its place.
func (m *mapper) layoutStack(st *stackArgs, nAux int) (*stackLayout, error) {
	l := &stackLayout{}
	if _, err := io.ReadFull(st.random, l.random[:]); err != nil {
		return nil, unix.EIO
	}
	top := uint64(st.top)
	p := top - wordSize
	l.execFnAddr = p - uint64(len(st.execFn)) - 1
	p = l.execFnAddr
	l.envEnd = p
	for _, s := range st.envv {
		p -= uint64(len(s)) + 1
	}
	l.envStart = p
	for _, s := range st.argv {
		p -= uint64(len(s)) + 1
	}
	l.argStart = p
	p &^= stackAlign - 1
	l.platformAddr = p - uint64(len(platformString)) - 1
	l.randAddr = l.platformAddr - auxRandomSize
	p = l.randAddr

	auxWords := uint64(nAux+1) * 2
	items := uint64(len(st.argv)+1+len(st.envv)+1) + 1
	l.sp = (p - (auxWords+items)*wordSize) &^ (stackAlign - 1)

	// The strings were limited by checkArgSizes, so this cannot wrap
	// unless StackTop itself is absurdly low.
	used := top - l.sp
	if l.sp > top || used > top {
		return nil, unix.E2BIG
	}
	mapSize := min(pageUp(min(st.size, maxStackMapping)), top)
	if need := pageUp(used) + hostarch.PageSize; mapSize < need {
		mapSize = need
	}
	if mapSize > top {
		return nil, unix.ENOMEM
	}
	perms := hostarch.ReadWrite
	perms.Execute = st.execute
	opts := memmap.MMapOpts{
		Length:    mapSize,
		Addr:      hostarch.Addr(top - mapSize),
		Fixed:     true,
		Private:   true,
		GrowsDown: true,
		Perms:     perms,
		MaxPerms:  hostarch.AnyAccess,
		Hint:      "[stack]",
	}
	if err := m.fixedMap(opts); err != nil {
		return nil, err
	}
	m.mapped = append(m.mapped, hostarch.AddrRange{Start: opts.Addr, End: st.top})
	l.mapStart = opts.Addr
	return l, nil
}

// writeStack writes the stack laid out by layoutStack, with auxv (whose
// placeholders it fills in), and records the result in res.
func (m *mapper) writeStack(st *stackArgs, l *stackLayout, auxv []AuxEntry, res *LoadResult) error {
	for i := range auxv {
		if auxv[i].Value != auxPlaceholder {
			continue
		}
		switch auxv[i].Key {
		case AT_RANDOM:
			auxv[i].Value = l.randAddr
		case AT_EXECFN:
			auxv[i].Value = l.execFnAddr
		case AT_PLATFORM:
			auxv[i].Value = l.platformAddr
		}
	}
	sp := l.sp

	// Build the image of [sp, top) and copy it out in one go.
	img := make([]byte, uint64(st.top)-sp)
	at := func(addr uint64) []byte { return img[addr-sp:] }
	putString := func(addr uint64, s string) uint64 {
		copy(at(addr), s)
		at(addr)[len(s)] = 0
		return addr + uint64(len(s)) + 1
	}
	putString(l.execFnAddr, st.execFn)
	putString(l.platformAddr, platformString)
	copy(at(l.randAddr), l.random[:])

	le := binary.LittleEndian
	w := sp
	putWord := func(v uint64) {
		le.PutUint64(at(w), v)
		w += wordSize
	}
	putWord(uint64(len(st.argv)))
	s := l.argStart
	for _, a := range st.argv {
		putWord(s)
		s = putString(s, a)
	}
	putWord(0)
	s = l.envStart
	for _, e := range st.envv {
		putWord(s)
		s = putString(s, e)
	}
	putWord(0)
	for _, a := range auxv {
		putWord(a.Key)
		putWord(a.Value)
	}
	putWord(AT_NULL)
	putWord(0)

	if n, err := m.mm.CopyOut(hostarch.Addr(sp), img); err != nil || n != len(img) {
		return unix.EFAULT
	}

	res.StackPointer = hostarch.Addr(sp)
	res.Auxv = auxv
	res.ArgvStart = hostarch.Addr(l.argStart)
	res.ArgvEnd = hostarch.Addr(l.envStart)
	res.EnvvStart = hostarch.Addr(l.envStart)
	res.EnvvEnd = hostarch.Addr(l.envEnd)
	return nil
}
