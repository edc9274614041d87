package cmd

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/google/subcommands"
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/runsc/container"
)

// Create implements `runsc create`: make a container from a bundle and
// leave it created (its sandbox running, init not yet started), then
// exit. The PID in --pid-file is the sandbox's (the sentry), whose exit
// status is the container's; it is left to whoever inherits it (a
// subreaper such as conmon or containerd's shim) to reap.
type Create struct {
	bundle        string
	pidFile       string
	consoleSocket string
	preserveFDs   int
	noPivot       bool
	noNewKeyring  bool
}

func (*Create) Name() string     { return "create" }
func (*Create) Synopsis() string { return "create a container (started later by runsc start)" }
func (*Create) Usage() string {
	return "create [--bundle DIR] [--pid-file FILE] [--console-socket PATH] <container-id>\n"
}

// setCreateFlags defines the flags create and run share.
func setCreateFlags(f *flag.FlagSet, bundle, pidFile, consoleSocket *string, preserveFDs *int, noPivot, noNewKeyring *bool) {
	f.StringVar(bundle, "bundle", ".", "path to the OCI bundle directory")
	f.StringVar(bundle, "b", ".", "shorthand for --bundle")
	f.StringVar(pidFile, "pid-file", "", "file to write the container's PID to")
	f.StringVar(consoleSocket, "console-socket", "", "unix socket that receives the terminal's master (process.terminal)")
	f.IntVar(preserveFDs, "preserve-fds", 0, "pass this many FDs after stdio (3, 4, ...) to the container's init process")
	f.BoolVar(noPivot, "no-pivot", false, "accepted for compatibility (the sandbox never pivots the host's root)")
	f.BoolVar(noNewKeyring, "no-new-keyring", false, "accepted for compatibility (the sandbox has no host keyring)")
}

func (c *Create) SetFlags(f *flag.FlagSet) {
	setCreateFlags(f, &c.bundle, &c.pidFile, &c.consoleSocket, &c.preserveFDs, &c.noPivot, &c.noNewKeyring)
}

func (c *Create) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	if f.NArg() != 1 {
		return usagef("create: want exactly one container ID, got %d arguments", f.NArg())
	}
	preserved, err := preservedFiles(c.preserveFDs)
	if err != nil {
		return failf("create: %v", err)
	}
	conf := confFrom(args)
	_, s, err := container.Create(conf, f.Arg(0), container.CreateOptions{
		Bundle:        c.bundle,
		PIDFile:       c.pidFile,
		ConsoleSocket: c.consoleSocket,
		Stdio:         [3]*os.File{os.Stdin, os.Stdout, os.Stderr},
		Preserved:     preserved,
		Detach:        true,
	})
	if err != nil {
		return failf("create: %v", err)
	}
	s.Release()
	return subcommands.ExitSuccess
}

// preservedFiles returns this process's FDs 3 .. 3+n-1, which
// --preserve-fds passes to the container's init process as its own.
func preservedFiles(n int) ([]*os.File, error) {
	if n < 0 || n > maxPreservedFDs {
		return nil, fmt.Errorf("--preserve-fds=%d: want 0 to %d", n, maxPreservedFDs)
	}
	var files []*os.File
	for fd := 3; fd < 3+n; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("--preserve-fds=%d: FD %d: %w", n, fd, err)
		}
		files = append(files, os.NewFile(uintptr(fd), fmt.Sprintf("preserved-%d", fd)))
	}
	return files, nil
}

// maxPreservedFDs bounds --preserve-fds (the sentry's FD table starts
// with a limit of 1024).
const maxPreservedFDs = 1000
