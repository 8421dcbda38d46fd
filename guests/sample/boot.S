/*
 * vmm sample guest: entry at physical 0x200000 in 32-bit protected mode, switch to long mode.
 *
 * Entered either by the vmm BIOS (EAX=0x1BADB002, EBX=0) or by a Multiboot loader such as
 * QEMU's -kernel (EAX=0x2BADB002, EBX=information structure). Paging is off, so until the jump
 * to the higher half every absolute address is written as (symbol - KERNEL_OFFSET).
 */
#include "layout.h"

#define PHYS(x) ((x) - KERNEL_OFFSET)
#define CR0_PE (1 << 0)
#define CR0_MP (1 << 1)
#define CR0_TS (1 << 3)
#define CR0_NE (1 << 5)
#define CR0_WP (1 << 16)
#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)
#define CR4_PGE (1 << 7)
#define EFER_LME (1 << 8)
#define EFER_NXE (1 << 11)
#define MSR_EFER 0xC0000080
#define LARGE_PAGE 0x83 /* P | W | PS: a 2 MiB page in a page directory */
#define MB_FLAGS (MB_FLAG_MEMINFO | MB_FLAG_AOUT_KLUDGE)

    .section .text.boot, "ax"
    .code32
    .globl _start
_start:
    movl    %eax, %esi                  /* keep the boot magic and information pointer */
    movl    %ebx, %ebp
    jmp     entry32

    /* Multiboot header: within the first 8 KiB, 4-byte aligned. The a.out kludge fields say
     * where the flat image goes, so the loader needs no ELF. */
    .balign 4
multiboot_header:
    .long   MB_HEADER_MAGIC
    .long   MB_FLAGS
    .long   -(MB_HEADER_MAGIC + MB_FLAGS)
    .long   PHYS(multiboot_header)      /* header_addr */
    .long   PHYS(_start)                /* load_addr */
    .long   PHYS(_edata)                /* load_end_addr */
    .long   PHYS(_end)                  /* bss_end_addr */
    .long   PHYS(_start)                /* entry_addr */

entry32:
    lgdt    PHYS(boot_gdt_descriptor)
    ljmp    $0x08, $PHYS(1f)            /* our own flat 32-bit code segment */
1:  movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movw    %ax, %fs
    movw    %ax, %gs

    /* Zero .bss (the vmm BIOS copies the file only; a Multiboot loader zeroes it too). */
    movl    $PHYS(__bss_start), %edi
    movl    $PHYS(_end), %ecx
    subl    %edi, %ecx
    xorl    %eax, %eax
    rep stosb

    /* Temporary tables: PML4[0] and PML4[511] -> one PDPT whose entry 0 maps 0..1 GiB with
     * 2 MiB pages (identity for this code, higher half for the kernel). */
    movl    $PHYS(boot_pdpt) + 3, %eax
    movl    %eax, PHYS(boot_pml4)
    movl    %eax, PHYS(boot_pml4) + 511 * 8
    movl    $PHYS(boot_pd) + 3, %eax
    movl    %eax, PHYS(boot_pdpt)
    movl    $PHYS(boot_pd), %edi
    movl    $LARGE_PAGE, %eax
    movl    $512, %ecx
2:  movl    %eax, (%edi)
    addl    $0x200000, %eax
    addl    $8, %edi
    loop    2b

    movl    %cr4, %eax
    orl     $(CR4_PAE | CR4_PGE), %eax
    movl    %eax, %cr4
    movl    $PHYS(boot_pml4), %eax
    movl    %eax, %cr3

    /* EFER.LME, plus EFER.NXE when CPUID 0x80000001 EDX bit 20 says NX exists. */
    movl    $0x80000000, %eax
    cpuid
    xorl    %edi, %edi
    cmpl    $0x80000001, %eax
    jb      3f
    movl    $0x80000001, %eax
    cpuid
    btl     $20, %edx
    jnc     3f
    movl    $EFER_NXE, %edi
3:  movl    $MSR_EFER, %ecx
    rdmsr
    orl     $EFER_LME, %eax
    orl     %edi, %eax
    wrmsr
    movl    %edi, PHYS(boot_efer_nxe)

    movl    $(CR0_PE | CR0_MP | CR0_TS | CR0_NE | CR0_WP | CR0_PG), %eax
    movl    %eax, %cr0
    ljmp    $0x18, $PHYS(entry64_low)

    .code64
entry64_low:
    movabsq $entry64, %rax              /* leave the identity map for the higher half */
    jmp     *%rax
entry64:
    xorl    %eax, %eax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    movw    $0x10, %ax
    movw    %ax, %ss
    movabsq $boot_stack_top, %rsp
    movl    %esi, %edi                  /* kmain(magic, info) */
    movl    %ebp, %esi
    movabsq $kmain, %rax
    call    *%rax
4:  hlt
    jmp     4b

    .section .rodata
    .balign 8
boot_gdt:
    .quad   0
    .quad   0x00CF9A000000FFFF          /* 0x08: 32-bit flat code */
    .quad   0x00CF92000000FFFF          /* 0x10: flat data */
    .quad   0x00AF9A000000FFFF          /* 0x18: 64-bit code (L=1) */
boot_gdt_end:
boot_gdt_descriptor:
    .word   boot_gdt_end - boot_gdt - 1
    .long   PHYS(boot_gdt)

    .section .bss
    .balign 4096
    .globl boot_pml4
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4096
    .globl boot_stack_top
boot_stack: .skip 65536
boot_stack_top:
    .globl boot_efer_nxe
boot_efer_nxe: .skip 4
