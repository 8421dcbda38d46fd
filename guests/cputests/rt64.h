/* cputests 64-bit runtime: selectors, control bits, page-table bits (SDM Vol. 3A 2.5, 4.5). */
#ifndef CPUTESTS_RT64_H
#define CPUTESTS_RT64_H

#define SEL_KCODE64 0x08
#define SEL_KDATA 0x10
#define SEL_UCODE32 0x18
#define SEL_UDATA 0x20
#define SEL_UCODE64 0x28
#define SEL_TSS 0x30
#define SEL_KCODE32 0x40
#define SEL_NP_DATA 0x48
#define SEL_CONFORMING32 0x50
#define SEL_XONLY64 0x58
#define SEL_DPL3_DATA 0x60
#define SEL_CALLGATE 0x68

#define CR0_PE 0x1
#define CR0_WP 0x10000
#define CR0_PG 0x80000000
#define CR4_PSE 0x10
#define CR4_PAE 0x20
#define CR4_PGE 0x80
#define CR4_SMEP 0x100000
#define CR4_SMAP 0x200000
#define MSR_EFER 0xC0000080
#define EFER_SCE 0x1
#define EFER_LME 0x100
#define EFER_NXE 0x800

#define PTE_P 0x1
#define PTE_W 0x2
#define PTE_U 0x4
#define PTE_A 0x20
#define PTE_D 0x40
#define PTE_PS 0x80
#define PTE_G 0x100

#define USER_ALIAS 0x40000000
#define EXIT_PASS 0x10

#ifndef __ASSEMBLER__
#include "lib.h"

struct frame {
  u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
  u64 vec, err, rip, cs, rflags, rsp, ss;
};

extern u64 pml4[512], pdpt[512], pd[512], pd_user[512];
extern u64 gdt[];
extern u8 stack_top[];
extern volatile u64 probe_active;

long probe(void (*fn)(long), long arg);
__attribute__((noreturn)) void probe_return(long value);
__attribute__((noreturn)) void enter_user(ulong rip, ulong rsp, ulong rflags, ulong arg);

/* What the last exception looked like (set by trap). */
struct fault {
  u64 vec, err, rip, cs, rsp, ss, rflags, cr2, frame, rax, rbx;
};
extern struct fault last;
/* Vectors whose handler records and returns (IRETQ) instead of leaving the probe. */
extern u8 resume_vec[256];
/* Called for a resumable vector before returning (may edit the frame). */
extern void (*resume_hook)(struct frame *f);

void set_gate(int vec, void *handler, int type, int dpl, int ist);
void *stub_of(int vec);
long user_probe(void (*fn)(void), u64 rflags, u64 arg);
u64 rsp0_top(void);
u64 ist1_top(void);
u8 *io_bitmap(void);
#define RSP0_STACK_SIZE 8192
#define IST1_STACK_SIZE 4096
void print_fault(const char *what, long v);

static inline u64 rdcr0(void) { u64 v; __asm__ volatile("mov %%cr0,%0" : "=r"(v)); return v; }
static inline u64 rdcr2(void) { u64 v; __asm__ volatile("mov %%cr2,%0" : "=r"(v)); return v; }
static inline u64 rdcr3(void) { u64 v; __asm__ volatile("mov %%cr3,%0" : "=r"(v)); return v; }
static inline u64 rdcr4(void) { u64 v; __asm__ volatile("mov %%cr4,%0" : "=r"(v)); return v; }
static inline void wrcr0(u64 v) { __asm__ volatile("mov %0,%%cr0" ::"r"(v) : "memory"); }
static inline void wrcr3(u64 v) { __asm__ volatile("mov %0,%%cr3" ::"r"(v) : "memory"); }
static inline void wrcr4(u64 v) { __asm__ volatile("mov %0,%%cr4" ::"r"(v) : "memory"); }
static inline u64 rdmsr(u32 msr) {
  u32 lo, hi;
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return ((u64)hi << 32) | lo;
}
static inline void wrmsr(u32 msr, u64 v) {
  __asm__ volatile("wrmsr" ::"c"(msr), "a"((u32)v), "d"((u32)(v >> 32)));
}
static inline void invlpg(u64 a) { __asm__ volatile("invlpg (%0)" ::"r"(a) : "memory"); }
#endif
#endif
