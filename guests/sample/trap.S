/* vmm sample guest: interrupt entry stubs, SYSCALL entry, ring-3 entry/exit, fault probes. */


    .text
    .altmacro
    .macro isr v
    .balign 16
isr_\v:
    .if !(((\v) == 8) || (((\v) >= 10) && ((\v) <= 14)) || ((\v) == 17) || ((\v) == 21) || ((\v) == 29) || ((\v) == 30))
    pushq   $0                          /* uniform frame: a dummy error code */
    .endif
    pushq   $\v
    jmp     isr_common
    .endm

    .set vec, 0
    .rept 256
    isr %vec
    .set vec, vec + 1
    .endr

isr_common:
    cld
    pushq   %rax
    pushq   %rbx
    pushq   %rcx
    pushq   %rdx
    pushq   %rsi
    pushq   %rdi
    pushq   %rbp
    pushq   %r8
    pushq   %r9
    pushq   %r10
    pushq   %r11
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    movq    %rsp, %rdi
    movq    %rsp, %rbx                  /* realign the stack for C, restore it after */
    andq    $-16, %rsp
    call    trap_handler
    movq    %rbx, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %r11
    popq    %r10
    popq    %r9
    popq    %r8
    popq    %rbp
    popq    %rdi
    popq    %rsi
    popq    %rdx
    popq    %rcx
    popq    %rbx
    popq    %rax
    addq    $16, %rsp                   /* vector and error code */
    iretq

    .macro isr_addr v
    .quad   isr_\v
    .endm
    .section .rodata
    .balign 8
    .globl isr_table
isr_table:
    .set vec, 0
    .rept 256
    isr_addr %vec
    .set vec, vec + 1
    .endr

    .text
/* SYSCALL: RCX = user RIP, R11 = user RFLAGS, RAX = number, RDI/RSI/RDX = arguments.
 * FMASK cleared IF, so switching to the kernel stack cannot be interrupted. */
    .globl syscall_entry
syscall_entry:
    movq    %rsp, user_rsp_scratch(%rip)
    movq    syscall_stack_top(%rip), %rsp
    pushq   user_rsp_scratch(%rip)
    pushq   %rcx
    pushq   %r11
    pushq   %rdi
    pushq   %rsi
    pushq   %rdx
    pushq   %r8
    pushq   %r9
    pushq   %r10
    pushq   $0                          /* keeps the stack 16-byte aligned for the call */
    movq    %rdx, %rcx                  /* syscall_dispatch(nr, a0, a1, a2) */
    movq    %rsi, %rdx
    movq    %rdi, %rsi
    movq    %rax, %rdi
    call    syscall_dispatch
    addq    $8, %rsp
    popq    %r10
    popq    %r9
    popq    %r8
    popq    %rdx
    popq    %rsi
    popq    %rdi
    popq    %r11
    popq    %rcx
    popq    %rsp
    sysretq

/* long enter_user(entry, user_rsp, &saved_ksp): saves the kernel context, drops to ring 3 with
 * IRETQ. It "returns" when return_to_kernel(code, saved_ksp) unwinds to the saved context. */
    .globl enter_user
enter_user:
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    pushfq
    movq    %rsp, (%rdx)
    pushq   $0x23                       /* SS: user data, RPL 3 */
    pushq   %rsi                        /* RSP */
    pushq   $0x202                      /* RFLAGS: IF */
    pushq   $0x2B                       /* CS: user 64-bit code, RPL 3 */
    pushq   %rdi                        /* RIP */
    xorl    %eax, %eax                  /* no kernel values leak into the program */
    xorl    %ebx, %ebx
    xorl    %ecx, %ecx
    xorl    %edx, %edx
    xorl    %esi, %esi
    xorl    %edi, %edi
    xorl    %ebp, %ebp
    xorl    %r8d, %r8d
    xorl    %r9d, %r9d
    xorl    %r10d, %r10d
    xorl    %r11d, %r11d
    xorl    %r12d, %r12d
    xorl    %r13d, %r13d
    xorl    %r14d, %r14d
    xorl    %r15d, %r15d
    iretq

    .globl return_to_kernel
return_to_kernel:
    movq    %rsi, %rsp
    movq    %rdi, %rax
    popfq
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret

/* int probe_read64(va, out): 0 and *out = *(u64 *)va, or -1 if the read page-faulted. */
    .globl probe_read64, probe_read_insn, probe_read_fixup
probe_read64:
probe_read_insn:
    movq    (%rdi), %rax
    movq    %rax, (%rsi)
    xorl    %eax, %eax
    ret
probe_read_fixup:
    movl    $-1, %eax
    ret

/* uint64_t hypercall(rax, &ok): VMCALL with RAX; ok = 0 if it raised #UD (no hypervisor took it). */
    .globl hypercall, vmcall_insn, vmcall_fixup
hypercall:
    movq    %rdi, %rax
    movl    $1, (%rsi)
vmcall_insn:
    vmcall
    ret
vmcall_fixup:
    movl    $0, (%rsi)
    ret

    .bss
    .balign 8
user_rsp_scratch:
    .skip 8
