// Package stubutil holds the mechanisms the stub platforms (ptrace,
// systrap) share, so that each platform keeps only what makes it what it
// is. It owns:
//
//   - tracing and driving stub threads (trace.go): exec'ing the template
//     under trace, the factory goroutine whose OS thread traces the
//     long-lived stubs, seizing a thread, waiting for its stops, reaping
//     it, reading and writing its registers and XSAVE state, resuming it,
//     and injecting a host syscall by pointing the stopped thread at a
//     site in the stub's page;
//   - the one-page stub executable (elf.go): the ELF64 header and single
//     R+X PT_LOAD of the page, the seccomp program and its sock_fprog, and
//     the capset(2) header that leaves a stub without capabilities;
//   - assembling classic BPF (bpf.go): the opcodes and seccomp constants,
//     single instructions, and a small assembler with symbolic forward
//     jumps.
//
// What a stub's page holds besides (its code, its layout, its filter) and
// how a platform runs application code stay in the platform. Errors from a
// Thread start with the name of the platform that traces it.
package stubutil
