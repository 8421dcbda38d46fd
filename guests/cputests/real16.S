/*
 * real: the 16-bit half. A blob that real.c copies to RM_BASE and enters from 32-bit protected
 * mode through a 16-bit code segment (base RM_BASE): 16-bit protected mode first (an INT through a
 * 16-bit interrupt gate), then CR0.PE=0 and a far jump to RM_SEG:offset for the real-mode checks
 * (segment arithmetic, IVT delivery and 16-bit IRET, exceptions, LIDT, far calls), then CR0.PE=1
 * and a far jump back to the 32-bit kernel. Results go to rm_res (16-bit words) for real.c to print.
 * Everything inside the blob is addressed relative to rm_start: CS = DS = SS base = RM_BASE.
 */
#include "rt32.h"
#include "real.h"

#define O(label) ((label) - rm_start)
#define R(n) (O(rm_res) + 2 * (n))

    .text
    .code32
/* void real_run(void): the whole excursion; returns in 32-bit protected mode. */
    .globl real_run
real_run:
    cli
    pushal
    sidt    saved_idtr
    movl    %esp, saved_esp
    ljmp    $SEL_CODE16, $O(pm16_entry)
real_back:
    movw    $SEL_KDATA, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    movw    %ax, %ss
    movl    saved_esp, %esp
    lidt    saved_idtr
    popal
    ret

    .code16
    .globl rm_start, rm_end, rm_res
    .globl h41, pm16_after41, rm_after40, rm_div, rm_ud, rm_after3, rm_after_into, rm_bound, rm_wrap
rm_start:
pm16_entry:
    movw    $SEL_DATA16, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movw    %ax, %fs
    movw    %ax, %gs
    movw    $RM_STACK, %sp
    smsw    %ax
    movw    %ax, R(RES_PM16_MSW)
    int     $0x41
pm16_after41:
    movl    %cr0, %eax
    andl    $~CR0_PE, %eax
    movl    %eax, %cr0
    ljmp    $RM_SEG, $O(rm_real)

rm_real:
    movw    $RM_SEG, %ax
    movw    %ax, %ds
    movw    %ax, %ss
    movw    $RM_STACK, %sp
    xorw    %ax, %ax
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    lidt    O(ivt0_desc)
    smsw    %ax
    movw    %ax, R(RES_RM_MSW)
    movw    %cs, %ax
    movw    %ax, R(RES_RM_CS)

    /* Our handlers in the IVT at 0 (ES = 0). */
    movw    $O(h_de), %es:0 * 4
    movw    $RM_SEG, %es:0 * 4 + 2
    movw    $O(h_bp), %es:3 * 4
    movw    $RM_SEG, %es:3 * 4 + 2
    movw    $O(h_of), %es:4 * 4
    movw    $RM_SEG, %es:4 * 4 + 2
    movw    $O(h_br), %es:5 * 4
    movw    $RM_SEG, %es:5 * 4 + 2
    movw    $O(h_ud), %es:6 * 4
    movw    $RM_SEG, %es:6 * 4 + 2
    movw    $O(h_gp), %es:13 * 4
    movw    $RM_SEG, %es:13 * 4 + 2
    movw    $O(h40), %es:0x40 * 4
    movw    $RM_SEG, %es:0x40 * 4 + 2

    /* Segment arithmetic: 0x800:0x10 and 0x801:0 are the same byte. */
    movw    $0x0800, %ax
    movw    %ax, %es
    movb    $0x5a, %es:0x10
    movw    $0x0801, %ax
    movw    %ax, %fs
    movzbw  %fs:0, %ax
    movw    %ax, R(RES_ALIAS)

    /* INT through the IVT with IF=1 and CF=1; the handler sets ZF in the saved FLAGS. */
    sti
    stc
    int     $0x40
rm_after40:
    pushfw
    popw    %ax
    movw    %ax, R(RES_FLAGS_AFTER)
    cli
    /* The handler runs again below: keep what this first delivery saw. */
    movw    R(RES_H40_CS), %ax
    movw    %ax, R(RES_H40_CS_FIRST)
    movw    R(RES_H40_IP), %ax
    movw    %ax, R(RES_H40_IP_FIRST)
    movw    R(RES_H40_SCS), %ax
    movw    %ax, R(RES_H40_SCS_FIRST)
    movw    R(RES_H40_FLAGS), %ax
    movw    %ax, R(RES_H40_FLAGS_FIRST)
    movw    R(RES_H40_HFLAGS), %ax
    movw    %ax, R(RES_H40_HFLAGS_FIRST)

    /* Exceptions through the IVT. */
    xorb    %cl, %cl
    movw    $1, %ax
rm_div:
    divb    %cl
    movw    $0x5555, %ax
rm_ud:
    ud2
    int3
rm_after3:
    movb    $0x7f, %al
    addb    $1, %al
    into
rm_after_into:
    movw    $30, %ax
rm_bound:
    boundw  %ax, O(rm_bounds)

    /* A word at offset 0xffff crosses the 64 KiB segment limit: #GP(0) (SDM Vol. 3A 21.1.3). */
rm_wrap:
    movw    0xffff, %ax

    /* LIDT moves the IVT: vector 0x40 of a table at 0x9000. */
    xorw    %ax, %ax
    movw    %ax, %es
    movw    $O(h40_moved), %es:IVT2_BASE + 0x40 * 4
    movw    $RM_SEG, %es:IVT2_BASE + 0x40 * 4 + 2
    lidt    O(ivt2_desc)
    int     $0x40
    lidt    O(ivt0_desc)

    /* An IVT entry naming another segment for the same handler: CS = 0x600 inside it. */
    movw    $O(h40) + (RM_SEG - RM_ALIAS_SEG) * 16, %es:0x40 * 4
    movw    $RM_ALIAS_SEG, %es:0x40 * 4 + 2
    clc
    int     $0x40
    movw    $O(h40), %es:0x40 * 4
    movw    $RM_SEG, %es:0x40 * 4 + 2

    /* 16-bit effective addresses wrap at 64 KiB: 0xfff0 + 0x20 is offset 0x10 (SDM Vol. 1 3.7.5). */
    movw    $0x0800, %ax
    movw    %ax, %es
    movw    $0xfff0, %bx
    movw    $0x0020, %si
    movzbw  %es:(%bx,%si), %ax
    movw    %ax, R(RES_EA_WRAP)

    /* BP-based addresses default to SS, not DS. */
    movw    $0x0801, %ax
    movw    %ax, %ds
    movw    $O(rm_marker), %bp
    movw    (%bp), %ax
    movw    $RM_SEG, %cx
    movw    %cx, %ds
    movw    %ax, R(RES_BP_SS)

    /* PUSH SP pushes the value before the push. */
    movw    %sp, %dx
    pushw   %sp
    popw    %ax
    subw    %dx, %ax
    movw    %ax, R(RES_PUSH_SP)

    /* A push with SP=0 writes at SS:0xfffe. */
    movw    %sp, %dx
    movw    $SPWRAP_SEG, %ax
    movw    %ax, %ss
    xorw    %sp, %sp
    pushw   $0x4321
    movw    %sp, %cx
    movw    $RM_SEG, %ax
    movw    %ax, %ss
    movw    %dx, %sp
    movw    %cx, R(RES_SP_WRAP_SP)
    movw    $SPWRAP_SEG + 0x0fff, %ax
    movw    %ax, %es
    movw    %es:0x000e, %ax
    movw    %ax, R(RES_SP_WRAP_VAL)

    /* IRETD in real mode pops EIP, CS and EFLAGS as doublewords. */
    movw    %sp, %dx
    pushfl
    pushl   $RM_SEG
    pushl   $O(rm_after_iretd)
    iretl
rm_after_iretd:
    movw    %sp, %ax
    subw    %dx, %ax
    movw    %ax, R(RES_IRETD_SP)

    /* LOOP with a 16-bit address size counts in CX only. */
    movl    $0x00010001, %ecx
1:  loop    1b
    movw    %cx, R(RES_LOOP_CX)
    shrl    $16, %ecx
    movw    %cx, R(RES_LOOP_ECX_HI)

    /* Far call and return. */
    lcall   $RM_SEG, $O(rm_far)

    /* An operand-size prefix in real mode. */
    movl    $0x12345678, %eax
    shrl    $16, %eax
    movw    %ax, R(RES_OPSIZE)

    /* Back to protected mode, straight into the 32-bit kernel. */
    cli
    movl    %cr0, %eax
    orl     $CR0_PE, %eax
    movl    %eax, %cr0
    ljmpl   $SEL_KCODE, $real_back

/* ---- handlers (DS = RM_SEG or DATA16) ---- */
h41:                            /* 16-bit interrupt gate in 16-bit protected mode */
    pushw   %bp
    movw    %sp, %bp
    movw    2(%bp), %ax
    movw    %ax, R(RES_PM16_IP)
    movw    4(%bp), %ax
    movw    %ax, R(RES_PM16_CS)
    movw    6(%bp), %ax
    movw    %ax, R(RES_PM16_FLAGS)
    movw    %cs, %ax
    movw    %ax, R(RES_PM16_HCS)
    popw    %bp
    iret
h40:
    pushw   %bp
    movw    %sp, %bp
    movw    2(%bp), %ax
    movw    %ax, R(RES_H40_IP)
    movw    4(%bp), %ax
    movw    %ax, R(RES_H40_SCS)
    movw    6(%bp), %ax
    movw    %ax, R(RES_H40_FLAGS)
    pushfw
    popw    %ax
    movw    %ax, R(RES_H40_HFLAGS)
    movw    %cs, %ax
    movw    %ax, R(RES_H40_CS)
    orw     $0x40, 6(%bp)       /* ZF */
    popw    %bp
    iret
h40_moved:
    movw    $0x1234, R(RES_MOVED)
    iret
h_de:
    pushw   %bp
    movw    %sp, %bp
    movw    2(%bp), %ax
    movw    %ax, R(RES_DE_IP)
    addw    $2, 2(%bp)          /* past DIV CL */
    popw    %bp
    iret
h_ud:
    pushw   %bp
    movw    %sp, %bp
    movw    2(%bp), %ax
    movw    %ax, R(RES_UD_IP)
    addw    $2, 2(%bp)          /* past UD2 */
    popw    %bp
    iret
h_bp:
    pushw   %bp
    movw    %sp, %bp
    movw    2(%bp), %ax
    movw    %ax, R(RES_BP_IP)
    popw    %bp
    iret
h_of:
    pushw   %bp
    movw    %sp, %bp
    movw    2(%bp), %ax
    movw    %ax, R(RES_OF_IP)
    popw    %bp
    iret
h_br:
    pushw   %bp
    movw    %sp, %bp
    movw    2(%bp), %ax
    movw    %ax, R(RES_BR_IP)
    addw    $4, 2(%bp)          /* past BOUND AX, m16 */
    popw    %bp
    iret
h_gp:
    pushw   %bp
    movw    %sp, %bp
    movw    2(%bp), %ax
    movw    %ax, R(RES_GP_IP)
    addw    $3, 2(%bp)          /* past MOV AX, moffs16 */
    popw    %bp
    iret
rm_far:
    movw    %cs, %ax
    movw    %ax, R(RES_FAR_CS)
    lret

    .balign 4
ivt0_desc: .word 0x3ff
    .long 0
ivt2_desc: .word 0x3ff
    .long IVT2_BASE
rm_bounds: .word 10, 20
rm_marker: .word 0x2468
    .balign 2
rm_res: .fill RES_COUNT, 2, 0xeeee
rm_end:

    .code32
    .data
    .balign 4
saved_esp: .long 0
saved_idtr: .word 0
    .long 0
