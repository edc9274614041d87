package vfs

import (
	"sync"
	"sync/atomic"
)

// FSContext is a task's root directory, working directory and umask.
// Tasks made with CLONE_FS share one (IncRef); fork copies it (Fork).
type FSContext struct {
	refs atomic.Int64

	// mu protects root, cwd and umask.
	mu    sync.Mutex
	root  VirtualDentry
	cwd   VirtualDentry
	umask uint32
}

// NewFSContext returns a context with one reference.
func NewFSContext(root, cwd VirtualDentry, umask uint32) *FSContext {
	c := &FSContext{root: root, cwd: cwd, umask: umask & 0777}
	c.refs.Store(1)
	return c
}

// IncRef shares the context (CLONE_FS).
func (c *FSContext) IncRef() { c.refs.Add(1) }

// DecRef drops a sharer.
func (c *FSContext) DecRef() { c.refs.Add(-1) }

// Fork returns an unshared copy.
func (c *FSContext) Fork() *FSContext {
	c.mu.Lock()
	defer c.mu.Unlock()
	return NewFSContext(c.root, c.cwd, c.umask)
}

// Root returns the root directory (chroot).
func (c *FSContext) Root() VirtualDentry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.root
}

// WorkingDirectory returns the cwd.
func (c *FSContext) WorkingDirectory() VirtualDentry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cwd
}

// SetWorkingDirectory changes the cwd; the caller checked it is a
// searchable directory.
func (c *FSContext) SetWorkingDirectory(vd VirtualDentry) {
	c.mu.Lock()
	c.cwd = vd
	c.mu.Unlock()
}

// SetRoot changes the root (chroot).
func (c *FSContext) SetRoot(vd VirtualDentry) {
	c.mu.Lock()
	c.root = vd
	c.mu.Unlock()
}

// Umask returns the umask.
func (c *FSContext) Umask() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.umask
}

// SwapUmask sets the umask and returns the old one (umask(2)).
func (c *FSContext) SwapUmask(mask uint32) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.umask
	c.umask = mask & 0777
	return old
}
