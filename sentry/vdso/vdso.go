// Package vdso owns Veil's vDSO: the ELF shared object every application
// gets at AT_SYSINFO_EHDR, whose clock_gettime, gettimeofday, time,
// clock_getres and getcpu answer from a read-only data page (the vvar page)
// without a trap into the sentry.
//
// It holds the image (built from src/ with gcc and GNU ld by `go generate`,
// committed as vdso.so and embedded), the layout of the vvar page and the
// seqlock writer for it (vvar.go), and the memory-file pages one sandbox's
// image and vvar page live in, with the Mappables the loader maps them
// through (pages.go). What the clock parameters are is sentry/kernel's
// timekeeper's business; where they are mapped is sentry/loader's.
package vdso

import (
	_ "embed"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

//go:generate make -s -C src OUT=../vdso.so

//go:embed vdso.so
var image []byte

// Image returns the vDSO image. Callers must not modify it.
func Image() []byte { return image }

// ImageSize is the length of the image's mapping: the file, page aligned.
func ImageSize() uint64 { return pageRoundUp(uint64(len(image))) }

// VVarSize is the length of the vvar mapping, which goes immediately below
// the image (the image reaches it at a fixed negative offset).
const VVarSize = hostarch.PageSize

func pageRoundUp(n uint64) uint64 {
	return (n + hostarch.PageSize - 1) &^ (hostarch.PageSize - 1)
}
