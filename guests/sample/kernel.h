/* vmm sample guest: shared kernel definitions. */
#ifndef KERNEL_H
#define KERNEL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

#define NORETURN __attribute__((noreturn))
#define PACKED __attribute__((packed))
#define ALIGNED(n) __attribute__((aligned(n)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* --- port I/O and MSRs --------------------------------------------------------------------- */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) {
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline uint64_t rdmsr(uint32_t msr) {
  uint32_t lo, hi;
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v) {
  __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}
static inline uint64_t read_cr2(void) {
  uint64_t v;
  __asm__ volatile("mov %%cr2, %0" : "=r"(v));
  return v;
}
static inline uint64_t read_cr3(void) {
  uint64_t v;
  __asm__ volatile("mov %%cr3, %0" : "=r"(v));
  return v;
}
static inline void write_cr3(uint64_t v) { __asm__ volatile("mov %0, %%cr3" ::"r"(v) : "memory"); }
static inline void invlpg(uint64_t va) { __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline uint32_t mmio_read32(uint64_t a) { return *(volatile uint32_t *)a; }
static inline void mmio_write32(uint64_t a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline uint64_t mmio_read64(uint64_t a) { return *(volatile uint64_t *)a; }
static inline void mmio_write64(uint64_t a, uint64_t v) { *(volatile uint64_t *)a = v; }

/* MSRs (SDM Vol. 4, table 2-2). */
#define MSR_IA32_APIC_BASE 0x1B
#define MSR_IA32_EFER 0xC0000080
#define MSR_IA32_STAR 0xC0000081
#define MSR_IA32_LSTAR 0xC0000082
#define MSR_IA32_FMASK 0xC0000084
#define EFER_SCE (1u << 0)

#include "fmt.h"

/* --- console (console.c) ------------------------------------------------------------------- */
void uart_init(void);
void uart_putc(char c);
int uart_getc(void);  /* -1 when no byte is waiting */
void kputs(const char *s);
void kwrite(const char *s, size_t n);
int kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
NORETURN void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
NORETURN void poweroff(void);

/* --- memory (mm.c) ------------------------------------------------------------------------- */
#define PAGE_SIZE 4096ul
#define PTE_P (1ul << 0)
#define PTE_W (1ul << 1)
#define PTE_U (1ul << 2)
#define PTE_PWT (1ul << 3)
#define PTE_PCD (1ul << 4)
#define PTE_PS (1ul << 7)
#define PTE_G (1ul << 8)
#define PTE_NX (1ul << 63)
#define PTE_ADDR 0x000FFFFFFFFFF000ul
extern uint64_t nx_mask;  /* PTE_NX when EFER.NXE is on, else 0 */
static inline void *phys_to_virt(uint64_t pa) { return (void *)(pa + PHYS_MAP_BASE); }
static inline uint64_t virt_to_phys(const void *va) { return (uint64_t)va - KERNEL_OFFSET; }
void mm_init(uint64_t mem_top);
uint64_t frame_alloc(void);  /* zeroed frame, physical address; panics when out of memory */
void frame_free(uint64_t pa);
uint64_t frames_free_count(void);
int map_page(uint64_t va, uint64_t pa, uint64_t flags);
uint64_t unmap_page(uint64_t va);  /* returns the frame that was mapped, 0 if none */
uint64_t *lookup_pte(uint64_t va);
void unmap_user_space(void);
int user_range_ok(uint64_t va, uint64_t len, int write);
/* Reads a u64 from va; returns 0 on success, -1 if the access faulted (see trap.c fixups). */
int probe_read64(uint64_t va, uint64_t *out);

/* --- traps and CPU tables (cpu.c, trap.S) -------------------------------------------------- */
struct trapframe {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector, error;
  uint64_t rip, cs, rflags, rsp, ss;  /* pushed by the CPU */
};
void cpu_tables_init(void);
void trap_handler(struct trapframe *tf);
void set_kernel_trap_stack(uint64_t top);
extern volatile uint64_t timer_ticks;
extern volatile uint64_t spurious_count;

/* --- timers (timer.c) ---------------------------------------------------------------------- */
#define VEC_TIMER 0xF0
#define VEC_SPURIOUS 0xF1
#define VEC_APIC_ERROR 0xF2
#define TICK_HZ 100
void hpet_init(void);
void timers_calibrate(void);
void apic_timer_start(void);
void apic_eoi(void);
extern int apic_x2;

/* --- processes (proc.c) -------------------------------------------------------------------- */
int run_program(const char *name);  /* returns exit code, or -1 when killed / unknown */
void print_programs(void);
NORETURN void kill_current(const char *what, const char *where, uint64_t addr);
int in_user_program(void);
long syscall_dispatch(long nr, long a0, long a1, long a2);
/* trap.S */
long enter_user(uint64_t entry, uint64_t user_rsp, uint64_t *saved_ksp);
NORETURN void return_to_kernel(long code, uint64_t saved_ksp);
void syscall_entry(void);
extern uint64_t syscall_stack_top;

/* --- hypervisor (main.c) ------------------------------------------------------------------- */
extern int hypervisor_present;
extern char hypervisor_vendor[13];

#endif
