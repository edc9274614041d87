//go:build !amd64

package vdso

// Without an x86 TSC the vDSO is never put in ModeTSC.

// ReadTSC returns 0.
func ReadTSC() uint64 { return 0 }

// ReadTSCAfterStores returns 0.
func ReadTSCAfterStores() uint64 { return 0 }

// InvariantTSC reports false.
func InvariantTSC() bool { return false }
