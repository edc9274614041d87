package cmd

import (
	"context"
	"flag"
	"os"

	"github.com/google/subcommands"

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
	f.IntVar(preserveFDs, "preserve-fds", 0, "pass this many FDs after stdio to the container (only 0 is supported)")
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
	if c.preserveFDs != 0 {
		return failf("create: --preserve-fds=%d: passing extra FDs is not supported yet", c.preserveFDs)
	}
	conf := confFrom(args)
	_, s, err := container.Create(conf, f.Arg(0), container.CreateOptions{
		Bundle:        c.bundle,
		PIDFile:       c.pidFile,
		ConsoleSocket: c.consoleSocket,
		Stdio:         [3]*os.File{os.Stdin, os.Stdout, os.Stderr},
		Detach:        true,
	})
	if err != nil {
		return failf("create: %v", err)
	}
	s.Release()
	return subcommands.ExitSuccess
}
