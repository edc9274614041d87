// Package syscalls holds Veil's conformance programs (in src/): small C programs,
// each checking one area of the Linux syscall ABI against the documented
// behaviour and ending with a "N passed, N failed" line. The Go tests in
// this directory build them with gcc -static, run each natively (where a
// failure means the test itself is wrong) and then inside a sandbox on
// every Veil platform.
//
// Two programs, badinput and stress, feed garbage to the kernel. They are
// sandbox-only: the harness never runs them natively, because as root on
// a real kernel they could change the host.
package syscalls
