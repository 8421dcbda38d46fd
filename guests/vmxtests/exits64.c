/*
 * vmxtests: the 64-bit exits (runtime ../cputests rt64: long mode, identity-mapped, IDT stubs).
 * MOV CR8 exists only in 64-bit mode; SGDT stores an 8-byte base there; MOV CR3 moves 64 bits.
 * Run with vmm.policy.exits={cr8-load, cr8-store, cr3-load, cr3-store, descriptor-table} to make
 * each one exit (test/guests/vmx).
 */
#include "rt64.h"

#define X2APIC_TPR 0x808

static void bad_cr8(long v) { __asm__ volatile("mov %0, %%cr8" ::"r"((u64)v)); }

void main(void) {
  printf_("vmxtests exits64\n");
  u64 cr8 = 0;
  __asm__ volatile("mov %0, %%cr8" ::"r"((u64)5));
  __asm__ volatile("mov %%cr8, %0" : "=r"(cr8));
  printf_("cr8: 0x%lx, tpr 0x%x\n", (ulong)cr8, (u32)rdmsr(X2APIC_TPR));
  __asm__ volatile("mov %0, %%cr8" ::"r"((u64)0));
  print_fault("mov cr8, 0x10", probe(bad_cr8, 0x10));

  u64 cr3;
  __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
  __asm__ volatile("mov %0, %%cr3" ::"r"(cr3) : "memory");
  printf_("cr3: %s\n", cr3 == (u64)pml4 ? "pml4" : "other");

  struct {
    u16 limit;
    u64 base;
  } __attribute__((packed)) gdtr;
  __asm__ volatile("sgdt %0" : "=m"(gdtr));
  printf_("sgdt: base %s\n", gdtr.base == (u64)gdt ? "gdt" : "other");
  printf_("done\n");
}
