// Package benchmarks holds Veil's benchmark workloads: small C programs in
// src/ and the driver in cmd/bench, which runs each workload natively and
// under every Veil platform in one run and prints the results as ratios.
// Absolute times on shared machines mean little; ratios from one run do.
package benchmarks
