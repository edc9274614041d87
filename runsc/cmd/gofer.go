package cmd

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/google/subcommands"

	"github.com/veil-sandbox/veil/gofer"
	"github.com/veil-sandbox/veil/runsc/sandbox"
)

// Gofer implements `runsc gofer`: serve the sandbox's mounts to the
// sentry. It is started only by runsc/sandbox, in a mount namespace of its
// own, with a sandbox.GoferArgs as JSON on --args-fd and one socket per
// mount.
type Gofer struct {
	argsFD int
}

func (*Gofer) Name() string { return "gofer" }
func (*Gofer) Synopsis() string {
	return "(internal) serve the sandbox's files; started by runsc itself"
}
func (*Gofer) Usage() string { return "gofer --args-fd=N\n" }

func (c *Gofer) SetFlags(f *flag.FlagSet) {
	f.IntVar(&c.argsFD, "args-fd", -1, "FD carrying the JSON-encoded gofer arguments")
}

func (c *Gofer) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	var ga sandbox.GoferArgs
	if err := readArgs(c.argsFD, &ga); err != nil {
		return failf("gofer: %v", err)
	}
	if len(ga.Mounts) == 0 {
		return failf("gofer: no mounts to serve")
	}
	// Mounts other than the root are opened before confinement hides the
	// host's tree; the root is served as "/" once the gofer is inside it.
	mounts := make([]gofer.Mount, len(ga.Mounts))
	for i, m := range ga.Mounts {
		mounts[i] = gofer.Mount{Conn: m.FD, RootFD: -1, ReadOnly: m.ReadOnly}
		if i == 0 {
			continue
		}
		fd, err := gofer.OpenRoot(m.Source)
		if err != nil {
			return failf("gofer: %v", err)
		}
		mounts[i].RootFD = fd
	}
	if err := gofer.Confine(ga.Mounts[0].Source); err != nil {
		return failf("gofer: %v", err)
	}
	fd, err := gofer.OpenRoot("/")
	if err != nil {
		return failf("gofer: %v", err)
	}
	mounts[0].RootFD = fd
	if err := gofer.ServeAll(mounts); err != nil {
		fmt.Fprintf(os.Stderr, "runsc: gofer: %v\n", err)
		return subcommands.ExitFailure
	}
	return subcommands.ExitSuccess
}
