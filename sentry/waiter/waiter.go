// Package waiter owns readiness notification: one mechanism under poll,
// select, epoll and every blocking file operation. An object that can
// become ready holds a Queue; whoever waits registers an Entry on it.
package waiter

import "sync"

// EventMask is a set of poll events (POLLIN, POLLOUT, ...).
type EventMask uint32

const (
	EventIn     EventMask = 0x1
	EventPri    EventMask = 0x2
	EventOut    EventMask = 0x4
	EventErr    EventMask = 0x8
	EventHUp    EventMask = 0x10
	EventNVal   EventMask = 0x20
	EventRdNorm EventMask = 0x40
	EventRdHUp  EventMask = 0x2000

	// ReadableEvents and WritableEvents are what "readable" and "writable"
	// mean for select.
	ReadableEvents = EventIn | EventRdNorm
	WritableEvents = EventOut
	// AlwaysReported are reported whatever was asked for.
	AlwaysReported = EventErr | EventHUp | EventNVal
)

// Entry is one waiter. Exactly one of Ch and Callback is used.
type Entry struct {
	Mask EventMask
	// Ch receives a value (non-blocking send) when an event in Mask fires.
	Ch chan struct{}
	// Callback is called with the queue's lock held; it must not block or
	// register/unregister on the same queue.
	Callback func(e *Entry, mask EventMask)

	prev, next *Entry
	q          *Queue
}

// NewChannelEntry returns an entry that signals a one-slot channel.
func NewChannelEntry(mask EventMask) (*Entry, chan struct{}) {
	ch := make(chan struct{}, 1)
	return &Entry{Mask: mask, Ch: ch}, ch
}

// Queue is a list of waiters. The zero value is ready to use.
type Queue struct {
	mu   sync.Mutex
	head *Entry
}

// EventRegister adds e. An entry is on at most one queue at a time.
func (q *Queue) EventRegister(e *Entry) {
	q.mu.Lock()
	e.q = q
	e.prev = nil
	e.next = q.head
	if q.head != nil {
		q.head.prev = e
	}
	q.head = e
	q.mu.Unlock()
}

// EventUnregister removes e; removing an entry not on q does nothing.
func (q *Queue) EventUnregister(e *Entry) {
	q.mu.Lock()
	if e.q == q {
		if e.prev != nil {
			e.prev.next = e.next
		} else {
			q.head = e.next
		}
		if e.next != nil {
			e.next.prev = e.prev
		}
		e.prev, e.next, e.q = nil, nil, nil
	}
	q.mu.Unlock()
}

// Notify wakes every entry interested in any event of mask.
func (q *Queue) Notify(mask EventMask) {
	q.mu.Lock()
	for e := q.head; e != nil; {
		next := e.next
		if m := mask & (e.Mask | AlwaysReported); m != 0 {
			if e.Callback != nil {
				e.Callback(e, m)
			} else if e.Ch != nil {
				select {
				case e.Ch <- struct{}{}:
				default:
				}
			}
		}
		e = next
	}
	q.mu.Unlock()
}

// Waitable is anything that can report readiness.
type Waitable interface {
	// Readiness returns the events of mask that are ready now.
	Readiness(mask EventMask) EventMask
	EventRegister(e *Entry) error
	EventUnregister(e *Entry)
}

// AlwaysReady is embedded by objects that never block (regular files).
type AlwaysReady struct{}

func (AlwaysReady) Readiness(mask EventMask) EventMask {
	return mask & (EventIn | EventOut | EventRdNorm)
}
func (AlwaysReady) EventRegister(*Entry) error { return nil }
func (AlwaysReady) EventUnregister(*Entry)     {}
