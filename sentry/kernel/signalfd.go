package kernel

import (
	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// What signalfd (fs/signalfd) needs of the signal queues: taking a pending
// signal of a set without running a handler, seeing what is pending, and
// a queue that is notified whenever a signal is queued for a task of the
// thread group. Lock order: k.mu → ThreadGroup.signalQueued's lock (the
// notification runs with k.mu held, so waiters must not take k.mu in
// their callbacks; epoll's and channel entries do not).

// DequeueSignalIn removes and returns a pending signal of set, looking at
// t's own queue first and then its thread group's (as Linux's
// dequeue_signal), or nil. SIGKILL and SIGSTOP are never taken.
func (t *Task) DequeueSignalIn(set SignalSet) *arch.SignalInfo {
	set &^= unblockable
	t.k.mu.Lock()
	defer t.k.mu.Unlock()
	if info := t.pending.dequeue(^set); info != nil {
		return info
	}
	return t.tg.pending.dequeue(^set)
}

// PendingSignalsIn returns the signals of set pending for t or its thread
// group.
func (t *Task) PendingSignalsIn(set SignalSet) SignalSet {
	t.k.mu.Lock()
	defer t.k.mu.Unlock()
	return (t.pending.set | t.tg.pending.set) & set &^ unblockable
}

// SignalQueuedQueue returns the queue notified with EventIn whenever a
// signal is queued for tg or any of its tasks.
func (tg *ThreadGroup) SignalQueuedQueue() *waiter.Queue { return &tg.signalQueued }

// notifySignalQueuedLocked is called, with k.mu held, when a signal has
// been queued for tg or one of its tasks.
func (tg *ThreadGroup) notifySignalQueuedLocked() {
	tg.signalQueued.Notify(waiter.EventIn | waiter.EventRdNorm)
}
