package cmd

import (
	"context"
	"flag"

	"github.com/google/subcommands"
)

// Resume implements `runsc resume`: thaw a paused container.
type Resume struct{}

func (*Resume) Name() string             { return "resume" }
func (*Resume) Synopsis() string         { return "resume a paused container" }
func (*Resume) Usage() string            { return "resume <container-id>\n" }
func (*Resume) SetFlags(f *flag.FlagSet) {}

func (*Resume) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	c, err := oneContainer(confFrom(args), f, "resume")
	if err != nil {
		return failf("resume: %v", err)
	}
	if err := c.Resume(); err != nil {
		return failf("resume: %v", err)
	}
	return subcommands.ExitSuccess
}
