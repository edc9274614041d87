// Package limits owns resource limits (getrlimit/setrlimit/prlimit64): the
// set a thread group carries and Linux's rules for changing it.
package limits

import (
	"sync"

	"golang.org/x/sys/unix"
)

// Infinity is RLIM_INFINITY.
const Infinity = ^uint64(0)

// Resource numbers (asm-generic/resource.h).
const (
	CPU               = 0
	FileSize          = 1
	Data              = 2
	Stack             = 3
	Core              = 4
	Rss               = 5
	ProcessCount      = 6
	NumberOfFiles     = 7
	MemoryLocked      = 8
	AS                = 9
	Locks             = 10
	SignalsPending    = 11
	MessageQueueBytes = 12
	Nice              = 13
	RealTimePriority  = 14
	Rttime            = 15
	NumResources      = 16
)

// Limit is one soft/hard pair.
type Limit struct{ Cur, Max uint64 }

// LimitSet is the limits of one thread group.
type LimitSet struct {
	mu sync.Mutex
	l  [NumResources]Limit
}

// NewDefault returns Linux's defaults for a new init process.
func NewDefault() *LimitSet {
	ls := &LimitSet{}
	for i := range ls.l {
		ls.l[i] = Limit{Infinity, Infinity}
	}
	ls.l[Stack] = Limit{8 << 20, Infinity}
	ls.l[Core] = Limit{0, Infinity}
	ls.l[NumberOfFiles] = Limit{1024, 4096}
	ls.l[MemoryLocked] = Limit{8 << 20, 8 << 20}
	ls.l[ProcessCount] = Limit{63519, 63519}
	ls.l[SignalsPending] = Limit{63519, 63519}
	ls.l[MessageQueueBytes] = Limit{819200, 819200}
	ls.l[Nice] = Limit{0, 0}
	ls.l[RealTimePriority] = Limit{0, 0}
	return ls
}

// Get returns a limit.
func (ls *LimitSet) Get(r int) Limit {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.l[r]
}

// Set changes a limit: raising the hard limit needs privilege.
func (ls *LimitSet) Set(r int, v Limit, privileged bool) (Limit, error) {
	if r < 0 || r >= NumResources {
		return Limit{}, unix.EINVAL
	}
	if v.Cur > v.Max {
		return Limit{}, unix.EINVAL
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	old := ls.l[r]
	if v.Max > old.Max && !privileged {
		return Limit{}, unix.EPERM
	}
	if r == NumberOfFiles && v.Max > 1<<20 {
		return Limit{}, unix.EPERM // fs.nr_open
	}
	ls.l[r] = v
	return old, nil
}

// Copy returns an independent copy (fork).
func (ls *LimitSet) Copy() *LimitSet {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return &LimitSet{l: ls.l}
}
