package main

import "strconv"

// The vDSO row (issue 5): reading the clock, which under Veil should cost
// what it costs natively, not a syscall round trip.
func init() {
	register(12, func(e *benchEnv) []bench {
		return []bench{{
			name: "clock_gettime(CLOCK_MONOTONIC) through libc", unit: "ns",
			native: func() result { return nsPerOp(nil, e.prog("clockgettime"), strconv.Itoa(10000000/e.scale)) },
			sandbox: func(rs []string) result {
				return nsPerOp(rs, e.prog("clockgettime"), strconv.Itoa(10000000/e.scale))
			},
		}}
	})
}
