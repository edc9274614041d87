package gofer

import (
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/gofer/proto"
)

// Opening a gofer file costs a round trip to another process, far more
// than the open itself. Reads and writes go through pread/pwrite at the
// sentry's own offset, so descriptions of one file opened with the same
// access mode can share one donated host FD: the first open asks the
// gofer, the rest take a reference on the FD the inode keeps (until the
// inode is evicted or collected, like its handle).

// hostFD is a donated host FD shared by descriptions and the inode.
type hostFD struct {
	fd   int
	refs atomic.Int64
}

func newHostFD(fd int) *hostFD {
	h := &hostFD{fd: fd}
	h.refs.Store(1)
	return h
}

func (h *hostFD) incRef() { h.refs.Add(1) }

func (h *hostFD) decRef() {
	if h.refs.Add(-1) == 0 {
		unix.Close(h.fd)
	}
}

// accessSlot maps O_RDONLY, O_WRONLY and O_RDWR to an index of
// holding.fds.
func accessSlot(flags uint32) int { return int(flags & unix.O_ACCMODE % 3) }

// cachedFD returns a new reference on an inode's FD good for access mode
// flags, or nil. A read-write FD serves any mode: the VFS checks access
// on the description, not the host.
func (i *inode) cachedFD(flags uint32) *hostFD {
	i.mu.Lock()
	defer i.mu.Unlock()
	h := i.hold.fds[accessSlot(flags)]
	if h == nil {
		h = i.hold.fds[unix.O_RDWR]
	}
	if h != nil {
		h.incRef()
	}
	return h
}

// keepFD offers a freshly donated FD to the inode; it returns the FD the
// caller should use (with a reference for it), which is h or one another
// open cached first.
func (i *inode) keepFD(flags uint32, h *hostFD) *hostFD {
	i.mu.Lock()
	defer i.mu.Unlock()
	slot := &i.hold.fds[accessSlot(flags)]
	if *slot != nil {
		(*slot).incRef()
		old := *slot
		h.decRef()
		return old
	}
	h.incRef() // the inode's own
	*slot = h
	return h
}

// dropFDs lets go of the FDs a holding keeps; callers hold what guards
// the holding's cache.
func (h *holding) dropFDs() {
	for s, f := range h.fds {
		if f != nil {
			f.decRef()
			h.fds[s] = nil
		}
	}
}

// statKeptFD refreshes i's attributes from an FD it keeps, a host call
// instead of a round trip to the gofer; nil if it keeps none.
func (i *inode) statKeptFD() *proto.Stat {
	i.mu.Lock()
	var h *hostFD
	for _, f := range i.hold.fds {
		if f != nil {
			h = f
			h.incRef()
			break
		}
	}
	i.mu.Unlock()
	if h == nil {
		return nil
	}
	defer h.decRef()
	var st unix.Stat_t
	if unix.Fstat(h.fd, &st) != nil {
		return nil
	}
	return i.noteHostStat(&st)
}

// noteHostStat caches attributes read from a host FD of i's file, keeping
// the cached ones when nothing changed, and returns them.
func (i *inode) noteHostStat(st *unix.Stat_t) *proto.Stat {
	a := i.cachedAttr()
	if !sameAttr(a, st) {
		hs := proto.HostStat(st)
		a = &hs
		i.attr.Store(a)
	}
	return a
}
