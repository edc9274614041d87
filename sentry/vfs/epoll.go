package vfs

import (
	"context"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/waiter"
)

// Unpollable marks file types that epoll refuses (EPERM), such as regular
// files and directories, which are always ready.
type Unpollable interface {
	Unpollable()
}

// NoPoll is embedded by file types that epoll refuses.
type NoPoll struct{}

func (NoPoll) Unpollable() {}

// epoll_ctl event flags that are not readiness events.
const (
	EpollET        = 1 << 31
	EpollOneShot   = 1 << 30
	EpollWakeup    = 1 << 29
	EpollExclusive = 1 << 28
)

// EpollEvent is struct epoll_event (packed on x86-64: 12 bytes).
type EpollEvent struct {
	Events uint32
	Data   uint64
}

type epollKey struct {
	file *FileDescription
	fd   int32
}

// epollItem is one watched (file, fd) of an EpollInstance.
type epollItem struct {
	ep    *EpollInstance
	key   epollKey
	mask  waiter.EventMask
	flags uint32
	data  uint64
	entry waiter.Entry

	// Protected by ep.mu.
	ready    bool // on ep.readyList
	disabled bool // EPOLLONESHOT fired; re-armed by EPOLL_CTL_MOD
	gen      uint64
}

// EpollInstance is the description behind an epoll file. Level-triggered
// items stay on the ready list while their file is ready; edge-triggered
// ones leave it once reported until their file signals again.
type EpollInstance struct {
	FileDescriptionDefaultImpl
	DefaultStream

	// q wakes epoll_wait callers and anyone polling the epoll file.
	q waiter.Queue

	// mu protects interest, readyList and the items' mutable fields. A
	// file's waiter callback takes it, so the lock order is
	// waiter.Queue (of a watched file) → mu; mu is never held while
	// asking a file for its readiness.
	mu        sync.Mutex
	interest  map[epollKey]*epollItem
	readyList []*epollItem
}

// NewEpollInstance returns an epoll file description (epoll_create1).
func NewEpollInstance(flags uint32) *FileDescription {
	ep := &EpollInstance{interest: make(map[epollKey]*epollItem)}
	return NewFileDescription(ep, unix.O_RDWR|flags&unix.O_NONBLOCK, VirtualDentry{})
}

// Stat reports an anonymous inode.
func (ep *EpollInstance) Stat(context.Context) (Statx, error) {
	return Statx{Mask: unix.STATX_BASIC_STATS, Mode: 0600, Nlink: 1, Blksize: 4096}, nil
}

// Readiness reports EventIn when some item may be ready.
func (ep *EpollInstance) Readiness(mask waiter.EventMask) waiter.EventMask {
	ep.mu.Lock()
	n := len(ep.readyList)
	ep.mu.Unlock()
	if n > 0 {
		return mask & waiter.EventIn
	}
	return 0
}

func (ep *EpollInstance) EventRegister(e *waiter.Entry) error { ep.q.EventRegister(e); return nil }
func (ep *EpollInstance) EventUnregister(e *waiter.Entry)     { ep.q.EventUnregister(e) }

// Release stops watching every file.
func (ep *EpollInstance) Release(ctx context.Context) {
	ep.mu.Lock()
	items := ep.interest
	ep.interest = nil
	ep.readyList = nil
	ep.mu.Unlock()
	for _, it := range items {
		it.key.file.EventUnregister(&it.entry)
		it.key.file.epollMu.Lock()
		delete(it.key.file.watchers, it)
		it.key.file.epollMu.Unlock()
	}
}

func (ep *EpollInstance) markReadyLocked(it *epollItem) {
	it.gen++
	if !it.ready && !it.disabled {
		it.ready = true
		ep.readyList = append(ep.readyList, it)
	}
}

func (ep *EpollInstance) callback(it *epollItem) {
	ep.mu.Lock()
	if ep.interest == nil || ep.interest[it.key] != it {
		ep.mu.Unlock()
		return
	}
	ep.markReadyLocked(it)
	ep.mu.Unlock()
	ep.q.Notify(waiter.EventIn)
}

// AsEpoll returns the EpollInstance behind fd, or nil (EINVAL for
// epoll_ctl/epoll_wait on another file).
func AsEpoll(fd *FileDescription) *EpollInstance {
	ep, _ := fd.impl.(*EpollInstance)
	return ep
}

// Ctl carries out epoll_ctl(2) for file installed as fd number num.
func (ep *EpollInstance) Ctl(self *FileDescription, op int, num int32, file *FileDescription, ev EpollEvent) error {
	if file == self {
		return unix.EINVAL
	}
	if _, ok := file.impl.(Unpollable); ok {
		return unix.EPERM
	}
	if other := AsEpoll(file); other != nil && op != unix.EPOLL_CTL_DEL {
		// Nested epoll is allowed on Linux; loops are not. Keep it simple
		// and safe: refuse an instance already watching this one.
		other.mu.Lock()
		for k := range other.interest {
			if k.file == self {
				other.mu.Unlock()
				return unix.ELOOP
			}
		}
		other.mu.Unlock()
	}
	key := epollKey{file, num}
	mask := waiter.EventMask(ev.Events) | waiter.AlwaysReported
	mask &^= waiter.EventMask(EpollET | EpollOneShot | EpollWakeup | EpollExclusive)
	flags := ev.Events & (EpollET | EpollOneShot | EpollWakeup | EpollExclusive)

	ep.mu.Lock()
	it := ep.interest[key]
	switch op {
	case unix.EPOLL_CTL_ADD:
		if it != nil {
			ep.mu.Unlock()
			return unix.EEXIST
		}
		it = &epollItem{ep: ep, key: key, mask: mask, flags: flags, data: ev.Data}
		it.entry.Mask = mask
		it.entry.Callback = func(*waiter.Entry, waiter.EventMask) { ep.callback(it) }
		ep.interest[key] = it
		ep.mu.Unlock()
		file.epollMu.Lock()
		if file.watchers == nil {
			file.watchers = make(map[*epollItem]struct{})
		}
		file.watchers[it] = struct{}{}
		file.epollMu.Unlock()
		file.EventRegister(&it.entry)
	case unix.EPOLL_CTL_MOD:
		if it == nil {
			ep.mu.Unlock()
			return unix.ENOENT
		}
		if flags&EpollExclusive != 0 || it.flags&EpollExclusive != 0 {
			ep.mu.Unlock()
			return unix.EINVAL
		}
		ep.mu.Unlock()
		// Re-register so the new mask applies to the queue's filtering.
		file.EventUnregister(&it.entry)
		ep.mu.Lock()
		it.mask, it.flags, it.data, it.disabled = mask, flags, ev.Data, false
		it.entry.Mask = mask
		ep.mu.Unlock()
		file.EventRegister(&it.entry)
	case unix.EPOLL_CTL_DEL:
		if it == nil {
			ep.mu.Unlock()
			return unix.ENOENT
		}
		ep.removeLocked(it)
		ep.mu.Unlock()
		file.EventUnregister(&it.entry)
		file.epollMu.Lock()
		delete(file.watchers, it)
		file.epollMu.Unlock()
		return nil
	default:
		ep.mu.Unlock()
		return unix.EINVAL
	}
	// The file may be ready already; level-check it once.
	if file.Readiness(mask) != 0 {
		ep.callback(it)
	}
	return nil
}

func (ep *EpollInstance) removeLocked(it *epollItem) {
	delete(ep.interest, it.key)
	if it.ready {
		for i, r := range ep.readyList {
			if r == it {
				ep.readyList = append(ep.readyList[:i], ep.readyList[i+1:]...)
				break
			}
		}
		it.ready = false
	}
}

// fileReleased drops an item whose file was closed for good.
func (ep *EpollInstance) fileReleased(it *epollItem) {
	ep.mu.Lock()
	if ep.interest != nil && ep.interest[it.key] == it {
		ep.removeLocked(it)
	}
	ep.mu.Unlock()
}

// ReadEvents returns up to max ready events without blocking.
func (ep *EpollInstance) ReadEvents(max int) []EpollEvent {
	type cand struct {
		it  *epollItem
		gen uint64
	}
	ep.mu.Lock()
	cands := make([]cand, 0, len(ep.readyList))
	for _, it := range ep.readyList {
		cands = append(cands, cand{it, it.gen})
	}
	ep.mu.Unlock()

	// Ask files for readiness without ep.mu (see the lock order).
	evs := make([]waiter.EventMask, len(cands))
	for i, c := range cands {
		evs[i] = c.it.key.file.Readiness(c.it.mask) & c.it.mask
	}

	var out []EpollEvent
	ep.mu.Lock()
	defer ep.mu.Unlock()
	var keep []*epollItem
	reported := make(map[*epollItem]bool)
	seen := make(map[*epollItem]bool, len(cands))
	for _, c := range cands {
		seen[c.it] = true
	}
	for i, c := range cands {
		it := c.it
		if !it.ready || ep.interest[it.key] != it {
			continue
		}
		switch {
		case evs[i] == 0 || it.disabled:
			if it.gen != c.gen {
				keep = append(keep, it) // signalled since we looked
				continue
			}
			it.ready = false
		case len(out) >= max:
			keep = append(keep, it)
		default:
			out = append(out, EpollEvent{Events: uint32(evs[i]), Data: it.data})
			reported[it] = true
			switch {
			case it.flags&EpollOneShot != 0:
				it.disabled = true
				it.ready = false
			case it.flags&EpollET != 0 && it.gen == c.gen:
				it.ready = false
			default:
				keep = append(keep, it)
			}
		}
	}
	// Items added to readyList while we were unlocked come after the
	// candidates; keep them, reported level-triggered ones go to the back.
	for _, it := range ep.readyList {
		if !seen[it] {
			keep = append(keep, it)
		}
	}
	// Move reported level-triggered items behind the rest for fairness.
	var front, back []*epollItem
	for _, it := range keep {
		if reported[it] {
			back = append(back, it)
		} else {
			front = append(front, it)
		}
	}
	ep.readyList = append(front, back...)
	return out
}
