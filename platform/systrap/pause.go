package systrap

// pauseLoop executes n PAUSE instructions (pause_amd64.s), to calibrate
// the stub's spins, which count them.
//
//go:noescape
func pauseLoop(n uint32)
