package cmd

import (
	"context"
	"encoding/json"
	"flag"
	"os"

	"github.com/google/subcommands"
)

// Wait implements `runsc wait`: block until the container's init exits,
// print {"id": ..., "exitStatus": N} and exit with N.
type Wait struct{}

func (*Wait) Name() string             { return "wait" }
func (*Wait) Synopsis() string         { return "wait for a container to exit" }
func (*Wait) Usage() string            { return "wait <container-id>\n" }
func (*Wait) SetFlags(f *flag.FlagSet) {}

func (*Wait) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	c, err := oneContainer(confFrom(args), f, "wait")
	if err != nil {
		return failf("wait: %v", err)
	}
	st, err := c.Wait()
	if err != nil {
		return failf("wait: %v", err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(struct {
		ID         string `json:"id"`
		ExitStatus int    `json:"exitStatus"`
	}{c.ID, st})
	return subcommands.ExitStatus(st)
}
