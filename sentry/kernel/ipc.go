package kernel

import (
	"time"

	"github.com/veil-sandbox/veil/sentry/kernel/ipc"
	"github.com/veil-sandbox/veil/sentry/memory"
)

// newIPCNamespace makes the sandbox's System V IPC namespace, stamping
// times with the sandbox's CLOCK_REALTIME.
func newIPCNamespace(mf *memory.File) *ipc.Namespace {
	return ipc.NewNamespace(mf, func() time.Time { return time.Unix(0, int64(RealtimeNow())) })
}

// IPC returns the sandbox's System V IPC namespace.
func (k *Kernel) IPC() *ipc.Namespace { return k.ipc }
