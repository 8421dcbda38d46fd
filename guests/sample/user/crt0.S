/* vmm sample guest, user side: program entry and the system call stub. */
#include "syscall.h"

    .section .text.start, "ax"
    .globl _start
_start:
    xorl    %ebp, %ebp
    call    main
    movl    %eax, %edi
    movl    $SYS_EXIT, %eax
    syscall
    ud2

    .text
/* long syscall3(nr, a0, a1, a2) */
    .globl syscall3
syscall3:
    movq    %rdi, %rax
    movq    %rsi, %rdi
    movq    %rdx, %rsi
    movq    %rcx, %rdx
    syscall
    ret
