package boot

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/devpts"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// installTerminal gives a process a terminal of the sandbox's own: a new
// pair in the devpts at /dev/pts, bridged to hostFD (the replica of a
// host pty whose master the runtime's client holds), whose replica
// becomes FDs 0, 1 and 2 in fdt. The process's host terminal is never
// handed to the application: the sandbox's line discipline does the
// editing, echo and job-control signals.
//
// The pair is created as creds (its /dev/pts/N belongs to the process's
// user, as a runtime chowns its console). The returned TTY is for
// InitArgs.TTY, which makes it the controlling terminal of the process's
// session. hostFD belongs to the bridge from here, also on error.
func installTerminal(ctx context.Context, v *vfs.VirtualFilesystem, root vfs.VirtualDentry, fdt *vfs.FDTable, hostFD int, creds *auth.Credentials) (*kernel.TTY, error) {
	pts, err := devpts.Find(ctx, v, root)
	if err != nil {
		unix.Close(hostFD)
		return nil, fmt.Errorf("terminal: %w", err)
	}
	replica, err := devpts.NewHostBridge(context.WithValue(ctx, auth.CtxCredentials, creds), v, pts, hostFD)
	if err != nil {
		unix.Close(hostFD)
		return nil, fmt.Errorf("terminal: %w", err)
	}
	defer replica.DecRef(ctx)
	for i := int32(0); i < 3; i++ {
		if err := fdt.NewFDAt(ctx, i, replica, vfs.FDFlags{}, 1024); err != nil {
			return nil, fmt.Errorf("terminal: %w", err)
		}
	}
	return devpts.TTYOf(replica), nil
}
