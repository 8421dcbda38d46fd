/*
 * vmm tiny BIOS: real mode at 0x8000 -> 32-bit protected mode -> jmp 0x200000.
 *
 * Contract (docs/TUTORIAL-SYSTEM.md, "Guest memory and boot"): the image is loaded at and entered
 * at physical 0x8000 in real mode (CS=0, IP=0x8000). It leaves the CPU in the state the Multiboot
 * Specification 0.6.96 section 3.2 describes: flat 32-bit CS (selector 0x08) and data segments
 * (0x10), CR0.PE=1, paging off, interrupts off, ESP=0x7000, then jumps to the kernel at 0x200000.
 *
 * Two builds from this one file:
 *   bios.bin      EAX=0x1BADB002, EBX=0 (no information structure), like rvm-bios.bin.
 *   bios-mbi.bin  (-DWITH_MBI) EAX=0x2BADB002, EBX=address of a Multiboot information structure
 *                 built at run time from the configuration block at image offset 0x100
 *                 (physical 0x8100), which a loader may patch:
 *                   +0x00 u32 magic 'VMMB' (0x424D4D56), identifies the block
 *                   +0x04 u32 memory size in bytes (default 16 MiB), at least 1 MiB
 *                   +0x08 char[56] NUL-terminated kernel command line
 */
#define LOAD_ADDR       0x8000
#define KERNEL_ENTRY    0x200000
#define STACK_TOP       0x7000
#define SEL_CODE32      0x08
#define SEL_DATA32      0x10

/* Multiboot 0.6.96 section 3.3: information structure flags and offsets. */
#define MBI_FLAG_MEM    (1 << 0)
#define MBI_FLAG_CMDLINE (1 << 2)
#define MBI_FLAG_MMAP   (1 << 6)
#define MBI_MEM_LOWER   4
#define MBI_MEM_UPPER   8
#define MBI_CMDLINE     16
#define MBI_MMAP_LENGTH 44
#define MBI_MMAP_ADDR   48
#define MBI_SIZE        52
#define MMAP_ENTRY_SIZE 24      /* u32 size (=20, excludes itself), u64 base, u64 length, u32 type */
#define MMAP_AVAILABLE  1
#define MMAP_RESERVED   2

#define CONFIG_OFFSET   0x100
#define CONFIG_MAGIC    0x424D4D56
#define DEFAULT_MEMORY  0x1000000

    .code16
    .text
    .globl _start
_start:
    cli
    cld
    xorw    %ax, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    lgdtl   gdt_descriptor
    movl    %cr0, %eax
    orl     $1, %eax                    /* CR0.PE */
    movl    %eax, %cr0
    ljmpl   $SEL_CODE32, $protected_mode

    .code32
protected_mode:
    movw    $SEL_DATA32, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    movw    %ax, %ss
    movl    $STACK_TOP, %esp
#ifdef WITH_MBI
    /* mem_upper = KiB above 1 MiB; the high mmap entry covers [1 MiB, memory size). */
    movl    config_memory, %eax
    subl    $0x100000, %eax
    movl    %eax, mmap_high_length
    shrl    $10, %eax
    movl    %eax, mbi + MBI_MEM_UPPER
    movl    $0x2BADB002, %eax
    movl    $mbi, %ebx
#else
    movl    $0x1BADB002, %eax
    xorl    %ebx, %ebx
#endif
    jmp     KERNEL_ENTRY

    .balign 8
gdt:
    .quad   0                           /* null descriptor */
    .quad   0x00CF9A000000FFFF          /* 0x08: code, base 0, limit 4 GiB, 32-bit, DPL 0 */
    .quad   0x00CF92000000FFFF          /* 0x10: data, base 0, limit 4 GiB, writable */
gdt_end:
gdt_descriptor:
    .word   gdt_end - gdt - 1
    .long   gdt

#ifdef WITH_MBI
    .org    CONFIG_OFFSET
config:
    .long   CONFIG_MAGIC
config_memory:
    .long   DEFAULT_MEMORY
config_cmdline:
    .asciz  "sample.bin"
    .org    config + 64

    .balign 8
mbi:
    .long   MBI_FLAG_MEM | MBI_FLAG_CMDLINE | MBI_FLAG_MMAP
    .long   640                         /* mem_lower: KiB of conventional memory */
    .long   0                           /* mem_upper: filled in at run time */
    .long   0                           /* boot_device (flag not set) */
    .long   config_cmdline
    .long   0, 0                        /* mods_count, mods_addr (flag not set) */
    .long   0, 0, 0, 0                  /* syms (flag not set) */
    .long   mmap_end - mmap             /* mmap_length */
    .long   mmap                        /* mmap_addr */
mmap:
    .long   20
    .quad   0, 0xA0000
    .long   MMAP_AVAILABLE
    .long   20
    .quad   0xF0000, 0x10000
    .long   MMAP_RESERVED
    .long   20
    .quad   0x100000
mmap_high_length:
    .quad   0                           /* filled in at run time */
    .long   MMAP_AVAILABLE
mmap_end:
#endif
