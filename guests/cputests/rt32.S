/*
 * cputests 32-bit runtime: Multiboot entry (ELF32), flat protected mode with paging off, IDT stubs
 * for all 256 vectors, and probe(): run a function and return the vector of the first exception it
 * raises (-1 if none). Ring 3 uses the same flat addresses (selectors 0x18/0x20).
 */
#include "rt32.h"

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000002 /* memory info */

    .section .text.boot, "ax"
    .code32
    .globl _start
_start:
    jmp     entry
    .balign 4
    .long   MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
entry:
    movl    %eax, mb_magic
    movl    %ebx, mb_info
    lgdt    gdt_desc
    ljmp    $SEL_KCODE, $1f
1:  movw    $SEL_KDATA, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movw    %ax, %fs
    movw    %ax, %gs
    movl    $stack_top, %esp
    movl    $__bss_start, %edi
    movl    $_end, %ecx
    subl    %edi, %ecx
    xorl    %eax, %eax
    cld
    rep stosb
    call    rt_init
    call    main
    pushl   $EXIT_PASS
    call    guest_exit

/* ---- IDT stubs: push a zero error code where the CPU pushes none, then the vector ---- */
    .altmacro
.macro STUB v
    .balign 16
stub_\v:
    .if (\v == 8) || (\v == 10) || (\v == 11) || (\v == 12) || (\v == 13) || (\v == 14) || (\v == 17) || (\v == 21)
    .else
    pushl   $0
    .endif
    pushl   $\v
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
    pushal
    pushl   %ds
    pushl   %es
    pushl   %fs
    pushl   %gs
    movw    $SEL_KDATA, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    cld
    pushl   %esp
    call    trap
    addl    $4, %esp
    popl    %gs
    popl    %fs
    popl    %es
    popl    %ds
    popal
    addl    $8, %esp
    iretl

/* long probe(void (*fn)(long), long arg) */
    .globl probe
probe:
    movl    4(%esp), %eax
    movl    8(%esp), %edx
    movl    %ebx, probe_ctx + 0
    movl    %esi, probe_ctx + 4
    movl    %edi, probe_ctx + 8
    movl    %ebp, probe_ctx + 12
    movl    %esp, probe_ctx + 16
    movl    $1, probe_active
    pushl   %edx
    call    *%eax
    addl    $4, %esp
    movl    $0, probe_active
    movl    $-1, %eax
    ret

/* void probe_return(long value): back out of the probed function (called by trap) */
    .globl probe_return
probe_return:
    movl    4(%esp), %eax
    movl    $0, probe_active
    movw    $SEL_KDATA, %dx
    movw    %dx, %ds
    movw    %dx, %es
    movw    %dx, %fs
    movw    %dx, %gs
    movw    %dx, %ss
    movl    probe_ctx + 0, %ebx
    movl    probe_ctx + 4, %esi
    movl    probe_ctx + 8, %edi
    movl    probe_ctx + 12, %ebp
    movl    probe_ctx + 16, %esp
    cld
    ret

/* void enter_user(u32 eip, u32 esp, u32 eflags, u32 arg): IRET to ring 3, EDI = arg */
    .globl enter_user
enter_user:
    movl    4(%esp), %eax
    movl    8(%esp), %ecx
    movl    12(%esp), %edx
    movl    16(%esp), %edi
    movw    $(SEL_UDATA | 3), %si
    movw    %si, %ds
    movw    %si, %es
    movw    %si, %fs
    movw    %si, %gs
    pushl   $(SEL_UDATA | 3)
    pushl   %ecx
    pushl   %edx
    pushl   $(SEL_UCODE | 3)
    pushl   %eax
    iretl

    .section .data
    .balign 8
    .globl mb_magic, mb_info
mb_magic: .long 0
mb_info: .long 0
gdt_desc:
    .word   gdt_end - gdt - 1
    .long   gdt
    .balign 16
    .globl gdt
gdt:
    .quad   0
    .quad   0x00cf9a000000ffff  /* 0x08 kernel code */
    .quad   0x00cf92000000ffff  /* 0x10 kernel data */
    .quad   0x00cffa000000ffff  /* 0x18 user code */
    .quad   0x00cff2000000ffff  /* 0x20 user data */
    .quad   0                   /* 0x28 TSS (filled in by rt_init) */
    .fill   GDT_ENTRIES - GDT_TEST_FIRST, 8, 0
gdt_end:

    .section .bss
    .balign 16
    .skip 16384
    .globl stack_top
stack_top:
    .globl probe_active
probe_active: .long 0
probe_ctx: .skip 32
