/* vmm sample guest: address-space layout, shared by C, assembly and the linker script. */
#ifndef LAYOUT_H
#define LAYOUT_H

/* The kernel runs at KERNEL_OFFSET + its physical address (PML4 slot 511). All physical memory
 * below 4 GiB is mapped at the same offset, so KERNEL_OFFSET is also the physical-map base. */
#define KERNEL_OFFSET 0xffffff8000000000
#define PHYS_MAP_BASE KERNEL_OFFSET
#define KERNEL_PHYS 0x200000

/* User programs (PML4 slot 0): image at USER_BASE, stack just below USER_STACK_TOP. */
#define USER_BASE 0x400000
#define USER_STACK_TOP 0x800000
#define USER_STACK_PAGES 4
#define USER_LIMIT 0x800000000000

/* Scratch window the `mem` command maps and unmaps (PML4 slot 510). */
#define MEM_TEST_VA 0xffffff0000000000

/* Multiboot (Multiboot Specification 0.6.96 section 3.1). */
#define MB_HEADER_MAGIC 0x1BADB002
#define MB_BOOTLOADER_MAGIC 0x2BADB002
#define MB_FLAG_MEMINFO (1 << 1)
#define MB_FLAG_AOUT_KLUDGE (1 << 16)

#endif
