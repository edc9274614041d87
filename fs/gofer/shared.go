package gofer

import (
	"sync"
	"sync/atomic"

	"github.com/veil-sandbox/veil/sentry/memory"
)

// A file mapped shared and writable must have one page cache for as long
// as any such mapping exists: the cache holds the file's newest bytes
// (cache.go). Inodes do not last that long: an inode lets go of its cache
// when its dentry is evicted, and a lookup after the dentry went makes a
// new inode. So a cache with writable mappings is also registered here, by
// the host file's device and inode number, and found from any inode of the
// file: by the next mmap, and by FD reads and writes that must see and
// update its pages. The registry holds a reference to each cache in it
// until the cache's last writable mapping goes.
//
// There is one registry for the process (one sentry, one sandbox): a host
// file is one file whichever mount shows it, as an inode is on Linux.

// fileKey names a host file whose cache pages live in mf.
type fileKey struct {
	mf       *memory.File
	dev, ino uint64
}

// shared is the registry of caches with writable shared mappings.
var shared sharedCaches

// sharedCaches is a registry of caches with writable shared mappings. mu
// is a leaf, taken under pageCache.mu.
type sharedCaches struct {
	n  atomic.Int32 // len(m), so that the I/O paths skip mu when empty
	mu sync.Mutex
	m  map[fileKey]*pageCache
}

// add registers c as k's cache unless k already has one; it reports
// whether c was added.
func (s *sharedCaches) add(k fileKey, c *pageCache) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; ok {
		return false
	}
	if s.m == nil {
		s.m = map[fileKey]*pageCache{}
	}
	s.m[k] = c
	s.n.Store(int32(len(s.m)))
	return true
}

// remove unregisters c.
func (s *sharedCaches) remove(k fileKey, c *pageCache) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[k] == c {
		delete(s.m, k)
		s.n.Store(int32(len(s.m)))
	}
}

// find returns k's registered cache, if any, without a reference.
func (s *sharedCaches) find(k fileKey) *pageCache {
	if s.n.Load() == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k]
}

// tryIncRef takes a reference to c unless it is already released.
func (c *pageCache) tryIncRef() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refs <= 0 || c.fd < 0 {
		return false
	}
	c.refs++
	return true
}
