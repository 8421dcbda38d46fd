/* vmm sample guest: GDT with TSS, IDT, exception and interrupt dispatch, SYSCALL MSRs. */
#include "kernel.h"

/* Selectors. SYSCALL loads CS=STAR[47:32], SS=+8; 64-bit SYSRET loads CS=STAR[63:48]+16 and
 * SS=STAR[63:48]+8, both with RPL 3 (SDM Vol. 2B, SYSCALL/SYSRET), hence this order. */
#define SEL_KERNEL_CODE 0x08
#define SEL_KERNEL_DATA 0x10
#define SEL_USER_BASE 0x18 /* 32-bit user code (unused), the SYSRET base */
#define SEL_USER_DATA 0x20
#define SEL_USER_CODE 0x28
#define SEL_TSS 0x30

struct PACKED tss64 {
  uint32_t reserved0;
  uint64_t rsp[3];
  uint64_t reserved1;
  uint64_t ist[7];
  uint64_t reserved2;
  uint16_t reserved3, iomap_base;
};

struct PACKED idt_gate {
  uint16_t offset_lo, selector;
  uint8_t ist, type_attr;
  uint16_t offset_mid;
  uint32_t offset_hi, reserved;
};

struct PACKED table_register {
  uint16_t limit;
  uint64_t base;
};

static uint64_t gdt[8] ALIGNED(16) = {
    0,
    0x00AF9A000000FFFF, /* 0x08 kernel code: 64-bit (L), DPL 0 */
    0x00CF92000000FFFF, /* 0x10 kernel data */
    0x00CFFA000000FFFF, /* 0x18 user code, 32-bit, DPL 3 (not used) */
    0x00CFF2000000FFFF, /* 0x20 user data, DPL 3 */
    0x00AFFA000000FFFF, /* 0x28 user code: 64-bit, DPL 3 */
    0,                  /* 0x30 TSS (16 bytes), filled in below */
    0,
};
static struct tss64 tss ALIGNED(16);
static struct idt_gate idt[256] ALIGNED(16);
static uint8_t trap_stack[16384] ALIGNED(16);
uint64_t syscall_stack_top;

extern uint64_t isr_table[256]; /* trap.S */
extern char probe_read_insn[], probe_read_fixup[], vmcall_insn[], vmcall_fixup[];

volatile uint64_t timer_ticks;
volatile uint64_t spurious_count;

void set_kernel_trap_stack(uint64_t top) {
  tss.rsp[0] = top;
  syscall_stack_top = top;
}

void cpu_tables_init(void) {
  uint64_t base = (uint64_t)&tss, limit = sizeof(tss) - 1;
  gdt[6] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ul << 40) /* present, 64-bit TSS */ |
           (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56);
  gdt[7] = base >> 32;
  tss.iomap_base = sizeof(tss); /* no I/O permission bitmap: ring 3 gets no ports */
  set_kernel_trap_stack((uint64_t)trap_stack + sizeof(trap_stack));

  struct table_register gdtr = {sizeof(gdt) - 1, (uint64_t)gdt};
  __asm__ volatile(
      "lgdt %0\n\t"
      "pushq %1\n\t"
      "leaq 1f(%%rip), %%rax\n\t"
      "pushq %%rax\n\t"
      "lretq\n"
      "1:\n\t"
      "movw %w2, %%ss\n\t"
      "ltr %w3\n\t" ::"m"(gdtr),
      "i"(SEL_KERNEL_CODE), "r"(SEL_KERNEL_DATA), "r"(SEL_TSS)
      : "rax", "memory");

  for (int v = 0; v < 256; v++) {
    uint64_t h = isr_table[v];
    idt[v] = (struct idt_gate){(uint16_t)h, SEL_KERNEL_CODE, 0, 0x8E /* present, interrupt gate */,
                               (uint16_t)(h >> 16), (uint32_t)(h >> 32), 0};
  }
  struct table_register idtr = {sizeof(idt) - 1, (uint64_t)idt};
  __asm__ volatile("lidt %0" ::"m"(idtr));

  wrmsr(MSR_IA32_EFER, rdmsr(MSR_IA32_EFER) | EFER_SCE);
  wrmsr(MSR_IA32_STAR, ((uint64_t)SEL_USER_BASE << 48) | ((uint64_t)SEL_KERNEL_CODE << 32));
  wrmsr(MSR_IA32_LSTAR, (uint64_t)syscall_entry);
  /* Clear TF, DF, IF and AC on entry, so the kernel starts on its stack with interrupts off. */
  wrmsr(MSR_IA32_FMASK, 0x40700);
}

static const char *const exception_names[32] = {
    "divide error", "debug", "NMI", "breakpoint", "overflow", "bound range", "invalid opcode",
    "device not available", "double fault", "coprocessor overrun", "invalid TSS", "segment not present",
    "stack fault", "general protection", "page fault", "reserved", "x87 FP error", "alignment check",
    "machine check", "SIMD FP error", "virtualization", "control protection",
};

static const char *exception_name(uint64_t v) {
  return v < 32 && exception_names[v] ? exception_names[v] : "exception";
}

void trap_handler(struct trapframe *tf) {
  uint64_t v = tf->vector;
  int from_user = (tf->cs & 3) == 3;
  if (v == VEC_TIMER) {
    timer_ticks++;
    apic_eoi();
    return;
  }
  if (v == VEC_SPURIOUS) { /* no EOI for the spurious vector (SDM Vol. 3A 11.9) */
    spurious_count++;
    return;
  }
  if (v >= 32) {
    apic_eoi();
    return;
  }
  /* Kernel probes that are allowed to fault: continue at their fixup label instead. */
  if (!from_user && v == 14 && tf->rip == (uint64_t)probe_read_insn) {
    tf->rip = (uint64_t)probe_read_fixup;
    return;
  }
  if (!from_user && v == 6 && tf->rip == (uint64_t)vmcall_insn) {
    tf->rip = (uint64_t)vmcall_fixup;
    return;
  }
  uint64_t cr2 = v == 14 ? read_cr2() : 0;
  /* A user program (or a system call working for one on a user address) is killed. */
  if (in_user_program() && (from_user || (v == 14 && cr2 < USER_LIMIT))) {
    if (v == 14) kill_current("page fault", "", cr2);
    kill_current(exception_name(v), "rip ", tf->rip);
  }
  kprintf("\nunhandled %s (vector %lu) in kernel, error code 0x%lx\n", exception_name(v), v, tf->error);
  kprintf("RIP=0x%016lx CS=0x%lx RFLAGS=0x%lx RSP=0x%016lx CR2=0x%016lx\n", tf->rip, tf->cs, tf->rflags,
          tf->rsp, cr2);
  panic("unrecoverable exception");
}
