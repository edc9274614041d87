package boot

import (
	"fmt"
	"os"
)

// Run is a placeholder until the sentry is wired: the lead replaces this
// file with the real Run, which sets up the platform, calls confine, and
// runs the init process to completion, returning its exit status (128+N
// when it died of signal N).
func Run(args *Args, confine func() error) int {
	fmt.Fprintln(os.Stderr, "veil: sentry not implemented yet")
	return 1
}
