package boot

import "time"

// The sentry may log after it is confined (a lost gofer, a platform
// failure), and log lines carry local times: Go reads /etc/localtime the
// first time one is formatted, a host open that the sentry's seccomp
// filter forbids. Loading the zone here, before confinement, keeps those
// lines from killing the sentry.
func init() { time.Now().Zone() }
