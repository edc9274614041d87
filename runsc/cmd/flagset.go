package cmd

import (
	"flag"
	"io"
)

func newDiscardFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("runsc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}
