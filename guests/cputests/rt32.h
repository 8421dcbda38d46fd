/* cputests 32-bit runtime: selectors, control bits, page-table bits (SDM Vol. 3A 3.4-3.5, 4.3, 4.4). */
#ifndef CPUTESTS_RT32_H
#define CPUTESTS_RT32_H

/* The order SYSENTER/SYSEXIT need: code, data, then user code and data at +16 and +24. */
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UCODE 0x18
#define SEL_UDATA 0x20
#define SEL_TSS 0x28
#define GDT_TEST_FIRST 6 /* gdt[6..GDT_ENTRIES-1]: descriptors the tests fill in */
#define GDT_ENTRIES 24

#define CR0_PE 0x1
#define CR0_WP 0x10000
#define CR0_AM 0x40000
#define CR0_PG 0x80000000
#define CR4_PSE 0x10
#define CR4_PAE 0x20
#define CR4_PGE 0x80
#define CR4_SMEP 0x100000
#define MSR_EFER 0xC0000080
#define EFER_NXE 0x800

#define PTE_P 0x1
#define PTE_W 0x2
#define PTE_U 0x4
#define PTE_A 0x20
#define PTE_D 0x40
#define PTE_PS 0x80
#define PTE_G 0x100

#define EFLAGS_TF 0x100
#define EFLAGS_IF 0x200
#define EFLAGS_OF 0x800
#define EFLAGS_IOPL3 0x3000
#define EXIT_PASS 0x10

#ifndef __ASSEMBLER__
#include "lib.h"

/* What trap_common pushed, from the lowest address. */
struct frame {
  u32 gs, fs, es, ds, edi, esi, ebp, esp_pusha, ebx, edx, ecx, eax;
  u32 vec, err, eip, cs, eflags, esp, ss; /* esp, ss: only from an outer privilege level */
};

extern u64 gdt[GDT_ENTRIES];
extern u8 stack_top[];
extern volatile u32 probe_active;

long probe(void (*fn)(long), long arg);
__attribute__((noreturn)) void probe_return(long value);
__attribute__((noreturn)) void enter_user(u32 eip, u32 esp, u32 eflags, u32 arg);

/* What the last exception looked like (set by trap). */
struct fault {
  u32 vec, err, eip, cs, esp, ss, eflags, cr2, frame, eax, ebx, handler_eflags, handler_ss;
};
extern struct fault last;
/* Vectors whose handler records and returns (IRET) instead of leaving the probe. */
extern u8 resume_vec[256];
/* Called for a resumable vector before returning (may edit the frame). */
extern void (*resume_hook)(struct frame *f);

/* Gate types (SDM Vol. 3A 3.5): 32-bit interrupt, trap and call gates. */
#define GATE_INT32 0xe
#define GATE_TRAP32 0xf
#define GATE_CALL32 0xc
void set_gate(int vec, void *handler, int type, int dpl);
void *stub_of(int vec);
u64 seg_desc(u32 base, u32 limit, u32 access, u32 flags);
long user_probe(void (*fn)(void), u32 eflags, u32 arg);
u32 esp0_top(void);
u8 *io_bitmap(void);
void set_iomap_base(u16 base);
void set_ss0(u16 sel);
u32 user_stack_top(void);
#define ESP0_STACK_SIZE 8192
void print_fault(const char *what, long v);

static inline u32 rdcr0(void) { u32 v; __asm__ volatile("mov %%cr0,%0" : "=r"(v)); return v; }
static inline u32 rdcr2(void) { u32 v; __asm__ volatile("mov %%cr2,%0" : "=r"(v)); return v; }
static inline u32 rdcr3(void) { u32 v; __asm__ volatile("mov %%cr3,%0" : "=r"(v)); return v; }
static inline u32 rdcr4(void) { u32 v; __asm__ volatile("mov %%cr4,%0" : "=r"(v)); return v; }
static inline void wrcr0(u32 v) { __asm__ volatile("mov %0,%%cr0" ::"r"(v) : "memory"); }
static inline void wrcr3(u32 v) { __asm__ volatile("mov %0,%%cr3" ::"r"(v) : "memory"); }
static inline void wrcr4(u32 v) { __asm__ volatile("mov %0,%%cr4" ::"r"(v) : "memory"); }
static inline u64 rdmsr(u32 msr) {
  u32 lo, hi;
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return ((u64)hi << 32) | lo;
}
static inline void wrmsr(u32 msr, u64 v) {
  __asm__ volatile("wrmsr" ::"c"(msr), "a"((u32)v), "d"((u32)(v >> 32)));
}
static inline void invlpg(u32 a) { __asm__ volatile("invlpg (%0)" ::"r"(a) : "memory"); }
#endif
#endif
