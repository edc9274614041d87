package cmd

import (
	"context"
	"flag"

	"github.com/google/subcommands"
)

// Start implements `runsc start`: run a created container's init process.
type Start struct{}

func (*Start) Name() string             { return "start" }
func (*Start) Synopsis() string         { return "start a created container" }
func (*Start) Usage() string            { return "start <container-id>\n" }
func (*Start) SetFlags(f *flag.FlagSet) {}

func (*Start) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	c, err := oneContainer(confFrom(args), f, "start")
	if err != nil {
		return failf("start: %v", err)
	}
	if err := c.Start(); err != nil {
		return failf("start: %v", err)
	}
	return subcommands.ExitSuccess
}
