package gofer

import (
	"context"
	"sync"

	"github.com/veil-sandbox/veil/fs/pipe"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// fifoKey names a host FIFO for the life of the mount.
type fifoKey struct{ dev, ino uint64 }

// fifos are the named pipes of one mount. A FIFO's data never leaves the
// sentry (the gofer does not donate FIFOs): all openers in the sandbox
// share one pipe per host file, whichever inode object they came through
// (an evicted inode is looked up anew). Entries live as long as the mount;
// FIFOs are few.
type fifos struct {
	mu sync.Mutex
	m  map[fifoKey]*pipe.Pipe
}

func (f *fifos) get(k fifoKey) *pipe.Pipe {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[fifoKey]*pipe.Pipe)
	}
	p, ok := f.m[k]
	if !ok {
		p = pipe.New()
		f.m[k] = p
	}
	return p
}

// openFIFO opens i, a FIFO, with open(2)'s named-pipe rules.
func (i *inode) openFIFO(ctx context.Context, flags uint32) (vfs.FileDescriptionImpl, error) {
	a := i.cachedAttr()
	return i.fs.fifos.get(fifoKey{a.Dev, a.Ino}).OpenFIFO(ctx, i, flags)
}
