// Package cmd owns runsc's subcommands: parsing each one's flags and
// positional arguments, turning them into a sandbox description, and
// mapping every failure to a one-line error and an exit status. Starting
// and waiting for processes is runsc/sandbox's job; reading bundles is
// runsc/specutils's.
package cmd

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/google/subcommands"

	"github.com/veil-sandbox/veil/runsc/config"
)

// ErrorsToLog makes failf also log errors to --log (main sets it when
// --log names a file): containerd's runc shim reads a failed command's
// reason from there, not from stderr.
var ErrorsToLog bool

// failf prints a one-line error to stderr and returns ExitFailure.
func failf(format string, args ...any) subcommands.ExitStatus {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(os.Stderr, "runsc: %s\n", msg)
	if ErrorsToLog {
		slog.Error(msg)
	}
	return subcommands.ExitFailure
}

// usagef is failf for a misused command line (exit 2, like flag errors).
func usagef(format string, args ...any) subcommands.ExitStatus {
	fmt.Fprintf(os.Stderr, "runsc: "+format+"\n", args...)
	return subcommands.ExitUsageError
}

// confFrom finds the global configuration main passes to Execute.
func confFrom(args []any) *config.Config {
	for _, a := range args {
		if c, ok := a.(*config.Config); ok {
			return c
		}
	}
	// Only reached when a command is executed without main (tests).
	return config.RegisterFlags(newDiscardFlagSet())
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// logDebug logs at debug level through the logger main set up.
func logDebug(msg string, args ...any) { slog.Debug(msg, args...) }
