package host

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/linuxerr"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// notifier is the one host epoll instance watching every donated stream
// FD that someone waits on; its goroutine turns host events into
// notifications on the files' queues.
type notifier struct {
	once  sync.Once
	epfd  int
	err   error
	mu    sync.Mutex
	files map[int32]*hostFile
}

var theNotifier notifier

func (n *notifier) start() error {
	n.once.Do(func() {
		n.epfd, n.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if n.err != nil {
			return
		}
		n.files = make(map[int32]*hostFile)
		go n.loop()
	})
	return linuxerr.FromHost(n.err)
}

// add watches f edge-triggered: callers re-check readiness after
// registering, so only new events need reporting.
func (n *notifier) add(f *hostFile) error {
	if err := n.start(); err != nil {
		return err
	}
	n.mu.Lock()
	n.files[int32(f.fd)] = f
	n.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLPRI | unix.EPOLLET, Fd: int32(f.fd)}
	if err := unix.EpollCtl(n.epfd, unix.EPOLL_CTL_ADD, f.fd, &ev); err != nil && err != unix.EEXIST {
		n.mu.Lock()
		delete(n.files, int32(f.fd))
		n.mu.Unlock()
		return linuxerr.FromHost(err)
	}
	return nil
}

func (n *notifier) remove(f *hostFile) {
	n.mu.Lock()
	delete(n.files, int32(f.fd))
	n.mu.Unlock()
	unix.EpollCtl(n.epfd, unix.EPOLL_CTL_DEL, f.fd, nil)
}

func (n *notifier) loop() {
	evs := make([]unix.EpollEvent, 32)
	for {
		k, err := unix.EpollWait(n.epfd, evs, -1)
		if err != nil {
			continue // EINTR
		}
		for _, ev := range evs[:k] {
			n.mu.Lock()
			f := n.files[ev.Fd]
			n.mu.Unlock()
			if f != nil {
				f.q.Notify(waiter.EventMask(ev.Events) & 0xffff)
			}
		}
	}
}
