# The systrap stub's code, assembled by hand into stubCode in ../stub.go
# (TestStubCodeMatchesSource checks the bytes and every label's offset
# against this file when `as` is installed). It is loaded at CODE, the
# second page of the stub image; the Go side names each site.
	.intel_syntax noprefix
	.set STUB, 0x7fc000000000
	.set CODE, STUB + 0x1000
	.set FPROG_APP, STUB + 0x0e0
	.set REQ, STUB + 0x4000		# executor requests: read-only here
	.set LDR, STUB + 0x5000		# the executor's own page
	.set SLOTS, 0x7fc008000000
	.set SLOT_MASK, -0x4000
	.set CTX_FD, 1
	.set INTERRUPT_SIGNAL, 17

	# Slot control block.
	.set S_STATE, 0x00
	.set S_STUB_SLEEPING, 0x04
	.set S_SENTRY_SLEEPING, 0x08
	.set S_SPIN, 0x0c
	.set S_UCTX, 0x10
	.set S_INFO, 0x18
	.set S_SIGNO, 0x20
	.set S_FSBASE, 0x28
	.set S_GSBASE, 0x30
	.set S_FAST, 0x38
	.set S_STACK, 0x40
	.set FAST_STACK, 0xe00		# top of a few bytes of stack for pushfq
	.set FAST_INFO, 0xf00
	.set FAST_UC, 0x1000		# the fast path's ucontext
	.set FMC, FAST_UC + 40		# its uc_mcontext
	.set FAST_FP, 0x1140		# its XSAVE image
	.set UC_R12, 40 + 0x20
	.set UC_RIP, 40 + 0x80
	.set ST_EVENT, 2
	.set ST_RESUME, 3
	.set ST_EXIT, 4

	# Executor request page.
	.set R_SEQ, 0x00
	.set R_SENTRY_SLEEPING, 0x04
	.set R_DONE, 0x08
	.set R_NOPS, 0x0c
	.set R_SPIN, 0x10
	.set R_DONE_OFF, 0x18
	.set R_OPS, 0x40
	.set OP_SIZE, 0x40
	.set MAX_OPS, 63
	# Executor page.
	.set L_SLEEPING, 0x00
	.set L_SEQBUF, 0x08
	.set L_RESULTS, 0x40

	.text
	.globl code
code:
# A process's leader parks here until the sentry seizes it.
loop:
	mov eax, 34		# pause
	syscall
loop_ip:
	jmp loop
	.p2align 4, 0xcc
# The sentry injects into traced stubs here (seccomp: RET_TRACE, so only a
# thread traced with PTRACE_O_TRACESECCOMP gets them executed).
sys_site:
	syscall
sys_ip:
	int3
	.p2align 4, 0xcc
# fork of the template: the child parks in the loop.
fork_site:
	syscall
fork_ip:
	test rax, rax
	jz loop
	int3
	.p2align 4, 0xcc

# The executor: a stub's leader runs this for the stub's life, carrying out
# the address-space operations the sentry lists in the request page and
# making application threads. r15 is the last request done.
exec_start:
	movabs rbx, REQ
	movabs rbp, LDR
	xor r15d, r15d
exec_wait:
	mov ecx, [rbx + R_SPIN]
exec_spin:
	mov eax, [rbx + R_SEQ]
	cmp eax, r15d
	jne exec_work
	test ecx, ecx
	jle exec_sleep
	pause
	dec ecx
	jmp exec_spin
exec_sleep:
	mov eax, 1
	xchg [rbp + L_SLEEPING], eax
	lea rdi, [rbx + R_SEQ]
	xor esi, esi		# FUTEX_WAIT
	mov edx, r15d
	xor r10d, r10d
	mov eax, 202		# futex
	syscall
exec_wait_ip:
	mov dword ptr [rbp + L_SLEEPING], 0
	jmp exec_wait
exec_work:
	mov r15d, eax
	xor r13d, r13d
	lea r14, [rbx + R_OPS]
exec_op:
	cmp r13d, MAX_OPS
	jae exec_done
	cmp r13d, [rbx + R_NOPS]
	jae exec_done
	mov rax, [r14]
	mov rdi, [r14 + 8]
	mov rsi, [r14 + 16]
	mov rdx, [r14 + 24]
	mov r10, [r14 + 32]
	mov r8, [r14 + 40]
	mov r9, [r14 + 48]
	mov r12, [r14 + 56]
	cmp eax, 56
	je exec_clone
	syscall
exec_ip:
exec_result:
	mov [rbp + r13 * 8 + L_RESULTS], rax
	inc r13d
	add r14, OP_SIZE
	jmp exec_op
exec_clone:
	syscall
clone_ip:
	test rax, rax
	jnz exec_result
# A new application thread, r12 its slot. It has a copy of the leader's
# FD table: it empties it, installs its alternate signal stack in the slot,
# takes the application threads' extra filter (after which it may make no
# call but futex, rt_sigreturn and exit from here) and reports for duty
# through the handler (ud2).
	xor edi, edi
	mov esi, -1
	xor edx, edx
	mov eax, 436		# close_range
	syscall
closerange_ip:
	lea rdi, [r12 + S_STACK]
	xor esi, esi
	mov eax, 131		# sigaltstack
	syscall
altstack_ip:
	mov edi, 1		# SECCOMP_SET_MODE_FILTER
	xor esi, esi
	movabs rdx, FPROG_APP
	mov eax, 317		# seccomp
	syscall
seccomp_ip:
	ud2
exec_done:
	mov [rbp + L_SEQBUF], r15d
	mov edi, CTX_FD
	lea rsi, [rbp + L_SEQBUF]
	mov edx, 4
	mov r10, [rbx + R_DONE_OFF]
	mov eax, 18		# pwrite64: the one completion the application cannot forge
	syscall
pwrite_ip:
	mfence			# the completion before the look at the sentry's flag
	cmp dword ptr [rbx + R_SENTRY_SLEEPING], 0
	je exec_wait
	lea rdi, [rbx + R_DONE]
	mov esi, 1		# FUTEX_WAKE
	mov edx, 1
	mov eax, 202		# futex
	syscall
exec_wake_ip:
	jmp exec_wait
	.p2align 4, 0xcc

# The handler of every signal the stub catches; runs on the thread's
# alternate stack, which lies in its slot: rsp rounded down is the slot.
handler:
	mov rbx, rsp
	and rbx, SLOT_MASK
	cmp edi, INTERRUPT_SIGNAL
	jne handler_report
	# An interrupt that found the thread in the fast path: before it has
	# handed over, or while it waits, the event on its way makes the
	# sentry look; once resumed, the thread reports the interrupt with
	# the frame it is returning through.
	mov rax, [rdx + UC_RIP]
	movabs rcx, fast_start - code + CODE
	sub rax, rcx
	cmp rax, fast_exit - fast_start
	jb handler_ignore
	cmp rax, fast_end - fast_start
	jae handler_report
	mov r12, [rdx + UC_R12]
	mov [rbx + S_UCTX], r12
	mov [rbx + S_SIGNO], rdi
	jmp publish
handler_ignore:
	mov rsp, rdx
	jmp do_sigreturn
handler_report:
	mov [rbx + S_UCTX], rdx
	mov [rbx + S_INFO], rsi
	mov [rbx + S_SIGNO], rdi
	mov dword ptr [rbx + S_FAST], 0
	rdfsbase rax
	mov [rbx + S_FSBASE], rax
	rdgsbase rax
	mov [rbx + S_GSBASE], rax
	mov r12, rdx
	jmp publish

# The fast path: a rewritten syscall site jumps to a trampoline record,
# which sets r11 to the syscall number and rcx to the address after the
# original syscall instruction and comes here. rax, rcx and r11 are free
# (the syscall would have clobbered them), the flags are the
# application's: they ride in rcx's top 16 bits until there is room. With
# the GS base at this thread's slot the registers are stored as a signal
# frame there and handed over like a signal; otherwise the original
# syscall instruction runs (and traps).
fast_start:
# Not at a slot: restore the flags and the number and run the original
# syscall instruction, which traps.
fast_fallback:
	mov rax, rcx
	shr rax, 48
	shl rcx, 16
	shr rcx, 16
	add al, 0x7f
	sahf
	mov rax, r11
	lea rcx, [rcx - 2]
	jmp rcx
fast_entry:
	lahf
	seto al
	shl rax, 48
	or rcx, rax
	rdgsbase rax
	shr rax, 27
	cmp eax, SLOTS >> 27
	jne fast_fallback
	rdgsbase rax
	mov [rax + FMC + 0x00], r8
	mov [rax + FMC + 0x08], r9
	mov [rax + FMC + 0x10], r10
	mov [rax + FMC + 0x20], r12
	mov [rax + FMC + 0x28], r13
	mov [rax + FMC + 0x30], r14
	mov [rax + FMC + 0x38], r15
	mov [rax + FMC + 0x40], rdi
	mov [rax + FMC + 0x48], rsi
	mov [rax + FMC + 0x50], rbp
	mov [rax + FMC + 0x58], rbx
	mov [rax + FMC + 0x60], rdx
	mov [rax + FMC + 0x68], r11
	mov [rax + FMC + 0x78], rsp
	mov rbx, rax
	lea rsp, [rbx + FAST_STACK]
	mov rdx, rcx
	shl rcx, 16
	shr rcx, 16
	mov [rbx + FMC + 0x70], rcx
	mov [rbx + FMC + 0x80], rcx
	pushfq
	pop rax
	and eax, ~0x8d5
	shr rdx, 48
	movzx ecx, dh
	and ecx, 0xd5
	or eax, ecx
	test dl, dl
	jz 1f
	or eax, 0x800
1:
	mov [rbx + FMC + 0x88], rax
	mov [rbx + FMC + 0x18], rax
	rdfsbase rcx
	mov [rbx + S_FSBASE], rcx
	mov [rbx + S_GSBASE], rbx
	mov eax, -1
	mov edx, -1
	xsave64 [rbx + FAST_FP]
	lea r12, [rbx + FAST_UC]
	mov [rbx + S_UCTX], r12
	lea rcx, [rbx + FAST_INFO]
	mov [rbx + S_INFO], rcx
	mov qword ptr [rbx + S_SIGNO], 31
	mov dword ptr [rbx + S_FAST], 1
# Hand the event to the sentry (rbx: the slot, r12: the frame) and wait
# for its answer.
publish:
	mov eax, ST_EVENT
	xchg [rbx + S_STATE], eax
	cmp dword ptr [rbx + S_SENTRY_SLEEPING], 0
	je wait
	mov rdi, rbx
	mov esi, 1		# FUTEX_WAKE
	mov edx, 1
	mov eax, 202		# futex
	syscall
wake_ip:
wait:
	mov ecx, [rbx + S_SPIN]
spin:
	mov eax, [rbx + S_STATE]
	cmp eax, ST_EVENT
	jne woken
	test ecx, ecx
	jle sleep
	pause
	dec ecx
	cmp dword ptr [rbx + S_SPIN], 0
	jne spin
sleep:
	mov eax, 1
	xchg [rbx + S_STUB_SLEEPING], eax
	mov rdi, rbx
	xor esi, esi		# FUTEX_WAIT
	mov edx, ST_EVENT
	xor r10d, r10d
	mov eax, 202		# futex
	syscall
waitfutex_ip:
	mov dword ptr [rbx + S_STUB_SLEEPING], 0
	jmp wait
woken:
	cmp eax, ST_RESUME
	jne not_resume
fast_exit:
	mov rax, [rbx + S_FSBASE]
	wrfsbase rax
	mov rax, [rbx + S_GSBASE]
	wrgsbase rax
	mov rsp, r12
do_sigreturn:
	mov eax, 15		# rt_sigreturn
	syscall
sigreturn_ip:
	ud2
fast_end:
not_resume:
	cmp eax, ST_EXIT
	jne wait
	xor edi, edi
	mov eax, 60		# exit
	syscall
exit_ip:
	ud2
code_end:
