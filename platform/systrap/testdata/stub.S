# The systrap stub's code, assembled by hand into stubCode in ../stub.go
# (TestStubCodeMatchesSource checks the two agree when `as` is installed).
# Offsets are from the start of the code; the Go side names each site.
	.intel_syntax noprefix
	.set SLOT_MASK, -0x4000
	.set S_STATE, 0x00
	.set S_STUB_SLEEPING, 0x04
	.set S_SENTRY_SLEEPING, 0x08
	.set S_SPIN, 0x0c
	.set S_UCTX, 0x10
	.set S_INFO, 0x18
	.set S_SIGNO, 0x20
	.set S_FSBASE, 0x28
	.set S_GSBASE, 0x30
	.set S_STACK, 0x40
	.set ST_EVENT, 2
	.set ST_RESUME, 3
	.set ST_EXIT, 4
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
# The sentry injects mmap & co here (seccomp: RET_TRACE, so only a traced
# thread can get them executed).
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
# A new application thread: r12 is its slot in the stub. It installs its
# alternate signal stack and traps into the handler to report for duty.
thread_site:
	syscall
thread_ip:
	test rax, rax
	jz thread_child
	int3
thread_child:
	lea rdi, [r12 + S_STACK]
	xor esi, esi
	mov eax, 131		# sigaltstack
	syscall
altstack_ip:
	ud2
	.p2align 4, 0xcc
# The handler of every signal the stub catches; runs on the thread's
# alternate stack, which lies in its slot: rsp rounded down is the slot.
handler:
	mov rbx, rsp
	and rbx, SLOT_MASK
	mov [rbx + S_UCTX], rdx
	mov [rbx + S_INFO], rsi
	mov [rbx + S_SIGNO], rdi
	rdfsbase rax
	mov [rbx + S_FSBASE], rax
	rdgsbase rax
	mov [rbx + S_GSBASE], rax
	mov r12, rdx
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
	pause
	dec ecx
	jg spin
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
	mov rax, [rbx + S_FSBASE]
	wrfsbase rax
	mov rax, [rbx + S_GSBASE]
	wrgsbase rax
	mov rsp, r12
	mov eax, 15		# rt_sigreturn
	syscall
sigreturn_ip:
	ud2
not_resume:
	cmp eax, ST_EXIT
	jne wait
	xor edi, edi
	mov eax, 60		# exit
	syscall
exit_ip:
	ud2
code_end:
