/*
 * cputests 64-bit runtime: Multiboot entry (a.out kludge, so the same flat image boots under QEMU's
 * -kernel and vmm's multiboot plugin), identity paging, long mode, IDT stubs for all 256 vectors,
 * and probe(): run a function and return the vector of the first exception it raises (-1 if none).
 *
 * Memory: the image is loaded at 1 MiB. Virtual 0..1 GiB maps physical 0..1 GiB with supervisor
 * 2 MiB pages; virtual 1 GiB (USER_ALIAS) maps physical 0..2 MiB again as one user page, so ring-3
 * snippets run at their address + USER_ALIAS.
 */
#include "rt64.h"

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00010002 /* memory info, a.out kludge */

    .section .text.boot, "ax"
    .code32
    .globl _start
_start:
    jmp     entry32
    .balign 4
mb_header:
    .long   MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
    .long   mb_header, _start, _edata, _end, _start

entry32:
    movl    %eax, mb_magic
    movl    %ebx, mb_info
    lgdt    gdt_desc32
    ljmp    $SEL_KCODE32, $1f
1:  movw    $SEL_KDATA, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movw    %ax, %fs
    movw    %ax, %gs
    movl    $stack_top, %esp
    /* zero .bss */
    movl    $__bss_start, %edi
    movl    $_end, %ecx
    subl    %edi, %ecx
    xorl    %eax, %eax
    cld
    rep stosb
    call    build_tables32
    movl    %cr4, %eax
    orl     $(CR4_PAE | CR4_PGE), %eax
    movl    %eax, %cr4
    movl    $pml4, %eax
    movl    %eax, %cr3
    movl    $MSR_EFER, %ecx
    rdmsr
    orl     $(EFER_LME | EFER_NXE | EFER_SCE), %eax
    wrmsr
    movl    %cr0, %eax
    orl     $(CR0_PG | CR0_WP | CR0_PE), %eax
    movl    %eax, %cr0
    ljmp    $SEL_KCODE64, $entry64

/* PML4[0] -> pdpt; pdpt[0] -> pd (0..1 GiB supervisor 2 MiB pages); pdpt[1] -> pd_user. */
build_tables32:
    movl    $pdpt, %eax
    orl     $(PTE_P | PTE_W | PTE_U), %eax
    movl    %eax, pml4
    movl    $pd, %eax
    orl     $(PTE_P | PTE_W | PTE_U), %eax
    movl    %eax, pdpt
    movl    $pd_user, %eax
    orl     $(PTE_P | PTE_W | PTE_U), %eax
    movl    %eax, pdpt + 8
    movl    $(PTE_P | PTE_W | PTE_U | PTE_PS), pd_user
    xorl    %ecx, %ecx
1:  movl    %ecx, %eax
    shll    $21, %eax
    orl     $(PTE_P | PTE_W | PTE_PS), %eax
    movl    %eax, pd(, %ecx, 8)
    incl    %ecx
    cmpl    $512, %ecx
    jne     1b
    ret

    .code64
entry64:
    movw    $SEL_KDATA, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movq    $stack_top, %rsp
    call    rt_init
    call    main
    movl    $EXIT_PASS, %edi
    call    guest_exit

/* ---- IDT stubs: push a zero error code where the CPU pushes none, then the vector ---- */
    .altmacro
.macro STUB v
    .balign 16
stub_\v:
    .if (\v == 8) || (\v == 10) || (\v == 11) || (\v == 12) || (\v == 13) || (\v == 14) || (\v == 17) || (\v == 21)
    .else
    pushq   $0
    .endif
    pushq   $\v
    jmp     trap_common
.endm
    .balign 16
    .globl stubs
stubs:
.set v, 0
.rept 256
    STUB %v
.set v, v + 1
.endr

trap_common:
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
    movq    %rsp, %rbx
    andq    $-16, %rsp
    call    trap
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
    addq    $16, %rsp
    iretq

/* long probe(void (*fn)(long), long arg) */
    .globl probe
probe:
    movq    %rbx, probe_ctx + 0
    movq    %rbp, probe_ctx + 8
    movq    %r12, probe_ctx + 16
    movq    %r13, probe_ctx + 24
    movq    %r14, probe_ctx + 32
    movq    %r15, probe_ctx + 40
    movq    %rsp, probe_ctx + 48
    movq    $1, probe_active
    movq    %rdi, %rax
    movq    %rsi, %rdi
    call    *%rax
    movq    $0, probe_active
    movq    $-1, %rax
    ret

/* void probe_return(long value): back out of the probed function (called by trap) */
    .globl probe_return
probe_return:
    movq    $0, probe_active
    movw    $SEL_KDATA, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movq    probe_ctx + 0, %rbx
    movq    probe_ctx + 8, %rbp
    movq    probe_ctx + 16, %r12
    movq    probe_ctx + 24, %r13
    movq    probe_ctx + 32, %r14
    movq    probe_ctx + 40, %r15
    movq    probe_ctx + 48, %rsp
    movq    %rdi, %rax
    ret

/* void enter_user(ulong rip, ulong rsp, ulong rflags, ulong arg): IRETQ to ring 3, RDI = arg */
    .globl enter_user
enter_user:
    pushq   $(SEL_UDATA | 3)
    pushq   %rsi
    pushq   %rdx
    pushq   $(SEL_UCODE64 | 3)
    pushq   %rdi
    movq    %rcx, %rdi
    iretq

    .section .data
    .balign 8
    .globl mb_magic, mb_info
mb_magic: .quad 0
mb_info: .quad 0
gdt_desc32:
    .word   gdt_end - gdt - 1
    .long   gdt
    .balign 16
    .globl gdt, gdt_end
gdt:
    .quad   0
    .quad   0x00af9a000000ffff  /* 0x08 kernel code, 64-bit */
    .quad   0x00cf92000000ffff  /* 0x10 kernel data */
    .quad   0x00cffa000000ffff  /* 0x18 user code, 32-bit (compatibility mode) */
    .quad   0x00cff2000000ffff  /* 0x20 user data */
    .quad   0x00affa000000ffff  /* 0x28 user code, 64-bit */
    .quad   0, 0                /* 0x30 TSS (filled in by rt_init) */
    .quad   0x00cf9a000000ffff  /* 0x40 kernel code, 32-bit */
    .quad   0x00cf12000000ffff  /* 0x48 kernel data, not present */
    .quad   0x00cf9e000000ffff  /* 0x50 kernel code, 32-bit, conforming */
    .quad   0x00af98000000ffff  /* 0x58 kernel code, 64-bit, execute-only */
    .quad   0x00cff2000000ffff  /* 0x60 data, DPL 3 */
    .quad   0, 0                /* 0x68 call gate (filled in by tests) */
gdt_end:

    .section .bss
    .balign 4096
    .globl pml4, pdpt, pd, pd_user
pml4: .skip 4096
pdpt: .skip 4096
pd: .skip 4096
pd_user: .skip 4096
    .balign 16
    .skip 16384
    .globl stack_top
stack_top:
    .globl probe_active
probe_active: .quad 0
probe_ctx: .skip 64
