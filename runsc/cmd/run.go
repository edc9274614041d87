package cmd

import (
	"context"
	"flag"
	"os"

	"github.com/google/subcommands"

	"github.com/veil-sandbox/veil/runsc/container"
)

// Run implements `runsc run`: create and start a container from an OCI
// bundle; in the foreground (the default) wait for it, delete it and exit
// with its status, or with --detach leave it running.
type Run struct {
	bundle        string
	pidFile       string
	consoleSocket string
	preserveFDs   int
	noPivot       bool
	noNewKeyring  bool
	detach        bool
}

func (*Run) Name() string     { return "run" }
func (*Run) Synopsis() string { return "create and start a container from an OCI bundle" }
func (*Run) Usage() string {
	return "run [--bundle DIR] [--detach] [--pid-file FILE] [--console-socket PATH] <container-id>\n"
}

func (c *Run) SetFlags(f *flag.FlagSet) {
	setCreateFlags(f, &c.bundle, &c.pidFile, &c.consoleSocket, &c.preserveFDs, &c.noPivot, &c.noNewKeyring)
	f.BoolVar(&c.detach, "detach", false, "leave the container running and exit")
	f.BoolVar(&c.detach, "d", false, "shorthand for --detach")
}

// ValidateID checks a container ID (see container.ValidateID).
func ValidateID(id string) error { return container.ValidateID(id) }

func (c *Run) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	if f.NArg() != 1 {
		return usagef("run: want exactly one container ID, got %d arguments", f.NArg())
	}
	preserved, err := preservedFiles(c.preserveFDs)
	if err != nil {
		return failf("run: %v", err)
	}
	conf := confFrom(args)
	ctr, s, err := container.Create(conf, f.Arg(0), container.CreateOptions{
		Bundle:        c.bundle,
		PIDFile:       c.pidFile,
		ConsoleSocket: c.consoleSocket,
		Stdio:         [3]*os.File{os.Stdin, os.Stdout, os.Stderr},
		Preserved:     preserved,
		Detach:        c.detach,
	})
	if err != nil {
		return failf("run: %v", err)
	}
	if err := ctr.Start(); err != nil {
		s.Kill()
		ctr.CloseConsole()
		_ = ctr.Delete(true)
		return failf("run: %v", err)
	}
	if c.detach {
		s.Release()
		return subcommands.ExitSuccess
	}
	status, err := s.Wait()
	ctr.CloseConsole()
	if derr := ctr.Delete(true); derr != nil && err == nil {
		err = derr
	}
	if err != nil {
		return failf("run: %v", err)
	}
	return subcommands.ExitStatus(status)
}
