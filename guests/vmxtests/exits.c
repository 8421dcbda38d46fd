/*
 * vmxtests: a guest of the rvm-tutorial policy that causes known VM exits and prints what it
 * observed. The Multiboot command line names the scenario (test/guests/vmx runs each with the
 * policy settings that make its instructions exit):
 *
 *   instr     CPUID, RDMSR/WRMSR, VMCALL, IN/OUT, INS/OUTS, HLT, INVLPG, RDTSC(P), MOV CR3, MOV DR,
 *             SGDT/LGDT/SIDT/LIDT/SLDT/STR, the x2APIC timer interrupt (external interrupt and
 *             interrupt-window exits, injection)
 *   except    #PF (read and write, with CR2), #BP, #UD, #GP with an error code, under paging
 *   ept       writes to a read-only page, a fetch from a no-execute page (GPA 0x200000, 0x201000)
 *   vector    an interrupt whose delivery writes a stack page that is EPT read-only (0x202000)
 *   nmi       self-NMIs through the ICR (x2APIC MSR, or the xAPIC page without CPUID x2APIC): one
 *             arrives once; one sent from the NMI handler arrives after the handler's IRET
 *             (NMI-window exit); one sent with IF=0 still arrives
 *   nmilint   an NMI through LINT0 in NMI mode (the guest 8259's INTR, raised by COM1's IRQ 4)
 *   nminest   a self-NMI whose delivery writes a stack page that is EPT read-only (0x202000)
 *   spin      a loop long enough for preemption-timer exits
 *   triple    an IDT of limit 0 and #UD: triple fault
 *
 * Runtime: ../cputests rt32 (flat 32-bit protected mode, paging off, IDT stubs, probe()).
 */
#include "rt32.h"

#define MB_INFO_CMDLINE 0x4
#define HYPERCALL_EXIT_COUNT 0x564d4d00
#define X2APIC_TPR 0x808
#define X2APIC_EOI 0x80b
#define X2APIC_SVR 0x80f
#define X2APIC_ICR 0x830
#define XAPIC_BASE 0xfee00000u
#define X2APIC_LVT_TIMER 0x832
#define X2APIC_LVT_LINT0 0x835
#define X2APIC_TIMER_ICR 0x838
#define X2APIC_TIMER_DCR 0x83e
#define TIMER_VECTOR 0x40
#define NMI_VECTOR 2
/* ICR (SDM Vol. 3A 11.6.1): delivery mode NMI (100b), destination shorthand self. */
#define ICR_NMI (4u << 8)
#define ICR_SELF (1u << 18)

#define EPT_RO_PAGE 0x200000u
#define EPT_NX_PAGE 0x201000u
#define EPT_STACK_PAGE 0x202000u

extern u32 mb_info;
static volatile u32 ticks;

static void timer_hook(struct frame *f) {
  if (f->vec == TIMER_VECTOR) {
    ticks++;
    wrmsr(X2APIC_EOI, 0);
  }
}

static void timer_oneshot(u32 count) {
  wrmsr(X2APIC_SVR, 0x1ff); /* APIC software-enabled, spurious vector 0xff */
  wrmsr(X2APIC_TIMER_DCR, 0xb); /* divide by 1 */
  wrmsr(X2APIC_LVT_TIMER, TIMER_VECTOR);
  wrmsr(X2APIC_TIMER_ICR, count);
}

static int streq(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b || (*a == ' ' && !*b);
}

static const char *scenario(void) {
  const u32 *info = (const u32 *)mb_info;
  const char *c = (info[0] & MB_INFO_CMDLINE) ? (const char *)info[4] : "";
  while (*c && *c != ' ') c++; /* the kernel's name */
  while (*c == ' ') c++;
  return c;
}

static inline void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d) {
  __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

/* ---- instr ---------------------------------------------------------------------------------- */

static void instr(void) {
  u32 a, b, c, d;
  cpuid(0x40000000, &a, &b, &c, &d);
  printf_("cpuid 0x40000000: %c%c%c%c\n", (char)b, (char)(b >> 8), (char)(b >> 16), (char)(b >> 24));

  wrmsr(X2APIC_TPR, 0x20);
  printf_("tpr: 0x%x\n", (u32)rdmsr(X2APIC_TPR));
  wrmsr(X2APIC_TPR, 0);

  u32 exits;
  __asm__ volatile("vmcall" : "=a"(exits) : "a"(HYPERCALL_EXIT_COUNT) : "memory");
  printf_("vmcall: exit count %s\n", exits > 10 ? "moves" : "stuck");

  printf_("lsr: 0x%x\n", inb(COM1 + COM_LSR));

  static const char msg[] = "outs: rep outsb\n";
  const char *src = msg;
  u32 n = sizeof msg - 1;
  __asm__ volatile("cld; rep outsb" : "+S"(src), "+c"(n) : "d"(COM1) : "memory");
  static u8 lsr[2];
  u8 *p = lsr;
  __asm__ volatile("cld; insb; insb" : "+D"(p) : "d"(COM1 + COM_LSR) : "memory");
  printf_("ins: 0x%x 0x%x\n", lsr[0], lsr[1]);

  u32 lo1, hi1, lo2, hi2, aux;
  __asm__ volatile("rdtsc" : "=a"(lo1), "=d"(hi1));
  for (volatile int i = 0; i < 100; i++) {
  }
  __asm__ volatile("rdtscp" : "=a"(lo2), "=d"(hi2), "=c"(aux));
  u64 t1 = ((u64)hi1 << 32) | lo1, t2 = ((u64)hi2 << 32) | lo2;
  printf_("rdtsc: %s, tsc_aux %u\n", t2 > t1 && t1 != 0 ? "moves" : "stuck", aux);

  invlpg(0x123000);
  printf_("invlpg: done\n");

  u32 cr3 = rdcr3();
  wrcr3(0x5000);
  printf_("cr3: 0x%x\n", rdcr3());
  wrcr3(cr3);

  u32 dr0;
  __asm__ volatile("mov %1, %%dr0; mov %%dr0, %0" : "=r"(dr0) : "r"(0x1234u));
  printf_("dr0: 0x%x\n", dr0);

  struct {
    u16 limit;
    u32 base;
  } __attribute__((packed)) gdtr, idtr;
  __asm__ volatile("sgdt %0" : "=m"(gdtr));
  __asm__ volatile("lgdt %0" ::"m"(gdtr));
  __asm__ volatile("sidt %0" : "=m"(idtr));
  __asm__ volatile("lidt %0" ::"m"(idtr));
  u32 ldt = 0xffff, tr = 0;
  __asm__ volatile("sldt %0" : "=r"(ldt));
  __asm__ volatile("str %0" : "=r"(tr));
  printf_("sgdt: limit 0x%x base %s, sidt limit 0x%x, sldt 0x%x, str 0x%x\n", gdtr.limit,
          gdtr.base == (u32)gdt ? "gdt" : "other", idtr.limit, ldt, tr);

  /* The timer interrupt wakes HLT. */
  resume_vec[TIMER_VECTOR] = 1;
  resume_hook = timer_hook;
  timer_oneshot(20000);
  __asm__ volatile("sti; hlt; cli");
  printf_("hlt: woken, ticks %u\n", ticks);

  /* Pending while IF=0: the interrupt window opens at STI. */
  timer_oneshot(1000);
  for (volatile int i = 0; i < 2000; i++) {
  }
  u32 before = ticks;
  __asm__ volatile("sti; nop; cli");
  printf_("window: ticks %u -> %u\n", before, ticks);
}

/* ---- except --------------------------------------------------------------------------------- */

static u32 pd[1024] __attribute__((aligned(4096)));

static void paging_on(void) {
  for (u32 i = 0; i < 64; i++) pd[i] = (i << 22) | PTE_P | PTE_W | PTE_PS; /* 256 MiB, 4 MiB pages */
  wrcr4(rdcr4() | CR4_PSE);
  wrcr3((u32)pd);
  wrcr0(rdcr0() | CR0_PG);
}

static void read_unmapped(long a) { (void)*(volatile u32 *)a; }
static void write_unmapped(long a) { *(volatile u32 *)a = 1; }
static void do_int3(long a) {
  (void)a;
  __asm__ volatile("int3");
}
static void do_ud2(long a) {
  (void)a;
  __asm__ volatile("ud2");
}
static void bad_selector(long a) { __asm__ volatile("mov %0, %%fs" ::"r"((u32)a)); }

static void except(void) {
  paging_on();
  print_fault("read 0x40000000", probe(read_unmapped, 0x40000000));
  print_fault("write 0x40001000", probe(write_unmapped, 0x40001000));
  print_fault("int3", probe(do_int3, 0));
  printf_("int3 eip after: %s (0x%x)\n", *(u8 *)(last.eip - 1) == 0xcc ? "yes" : "no", last.eip);
  print_fault("ud2", probe(do_ud2, 0));
  print_fault("mov fs, 0x1238", probe(bad_selector, 0x1238));
}

/* ---- ept ------------------------------------------------------------------------------------ */

static void ept(void) {
  volatile u32 *ro = (volatile u32 *)EPT_RO_PAGE;
  printf_("ro read: 0x%x\n", *ro);
  *ro = 0xabcd;
  printf_("ro write: 0x%x\n", *ro);
  u8 *nx = (u8 *)EPT_NX_PAGE;
  nx[0] = 0xb8; /* mov $0x5a, %eax; ret */
  nx[1] = 0x5a;
  nx[2] = nx[3] = nx[4] = 0;
  nx[5] = 0xc3;
  u32 r = ((u32(*)(void))(u32)EPT_NX_PAGE)();
  printf_("nx call: 0x%x\n", r);
}

/* ---- vector --------------------------------------------------------------------------------- */

static void vector(void) {
  resume_vec[TIMER_VECTOR] = 1;
  resume_hook = timer_hook;
  u32 saved;
  /* Run on a stack in the EPT read-only page: the interrupt's delivery writes it. */
  __asm__ volatile("mov %%esp, %0; mov %1, %%esp" : "=&r"(saved) : "r"(EPT_STACK_PAGE + 4096) : "memory");
  timer_oneshot(5000);
  __asm__ volatile("sti; hlt; cli");
  __asm__ volatile("mov %0, %%esp" ::"r"(saved) : "memory");
  /* Let another timer period pass: nothing more may arrive. */
  for (volatile int i = 0; i < 20000; i++) {
  }
  printf_("vector: ticks %u\n", ticks);
}

/* ---- nmi ------------------------------------------------------------------------------------ */

static volatile u32 nmis, nmi_depth, nmi_deepest, nmi_nest, nmi_inside;
static void nmi_hook(struct frame *f);
/* E at each handler entry, X at its IRET-bound return: nesting would show as EE. */
static volatile char nmi_log[16];
static volatile u32 nmi_log_len;

/* x2APIC MSRs, or the xAPIC page when CPUID.01H:ECX[21] is clear (the policy's apic: xapic). */
static int xapic;

static void apic_write(u32 msr, u32 v) {
  if (xapic)
    *(volatile u32 *)(XAPIC_BASE + ((msr - 0x800) << 4)) = v; /* SDM Vol. 3A 11.12.1.2 */
  else
    wrmsr(msr, v);
}

static void self_nmi(void) { apic_write(X2APIC_ICR, ICR_SELF | ICR_NMI); }

static void nmi_setup(void) {
  u32 a, b, c, d;
  cpuid(1, &a, &b, &c, &d);
  xapic = !(c & (1u << 21));
  resume_vec[NMI_VECTOR] = 1;
  resume_hook = nmi_hook;
  apic_write(X2APIC_SVR, 0x1ff);
}

static void nmi_hook(struct frame *f) {
  if (f->vec != NMI_VECTOR) {
    timer_hook(f);
    return;
  }
  nmis++;
  if (++nmi_depth > nmi_deepest) nmi_deepest = nmi_depth;
  if (nmi_log_len < sizeof nmi_log - 1) nmi_log[nmi_log_len++] = 'E';
  if (nmi_nest) {
    nmi_nest = 0;
    self_nmi(); /* blocked by NMI until this handler's IRET */
    for (volatile int i = 0; i < 100; i++) {
    }
    nmi_inside = nmis;
  }
  if (nmi_log_len < sizeof nmi_log - 1) nmi_log[nmi_log_len++] = 'X';
  nmi_depth--;
}

static void nmi(void) {
  nmi_setup();
  self_nmi();
  printf_("nmi: self %u (%s)\n", nmis, xapic ? "xapic" : "x2apic");
  nmi_nest = 1;
  self_nmi();
  printf_("nmi: nested %u, inside %u, deepest %u\n", nmis, nmi_inside, nmi_deepest);
  u32 before = nmis, during;
  __asm__ volatile("cli" ::: "memory");
  self_nmi();
  during = nmis;
  printf_("nmi: cli %u -> %u\n", before, during);
  nmi_log[nmi_log_len] = 0;
  printf_("nmi: log %s\n", (const char *)nmi_log);
}

/* LINT0 in NMI mode (SDM Vol. 3A 11.5.1), driven by the guest 8259's INTR: COM1's THR-empty IRQ 4. */
static void nmilint(void) {
  nmi_setup();
  outb(0x20, 0x11), outb(0x21, 0x20), outb(0x21, 0x04), outb(0x21, 0x01); /* ICW1-4 */
  outb(0xa0, 0x11), outb(0xa1, 0x28), outb(0xa1, 0x02), outb(0xa1, 0x01);
  outb(0x21, 0xef), outb(0xa1, 0xff); /* only IRQ 4 */
  apic_write(X2APIC_LVT_LINT0, 4u << 8); /* delivery mode NMI */
  outb(COM1 + 1, 0x02); /* IER: THR empty interrupt; the THR is empty: INTR rises */
  u32 n = nmis;
  outb(COM1 + 1, 0x00);
  printf_("nmilint: nmis %u\n", n);
}

static void nminest(void) {
  nmi_setup();
  u32 saved;
  /* Run on a stack in the EPT read-only page: the NMI's delivery writes it. */
  __asm__ volatile("mov %%esp, %0; mov %1, %%esp" : "=&r"(saved) : "r"(EPT_STACK_PAGE + 4096) : "memory");
  wrmsr(X2APIC_ICR, ICR_SELF | ICR_NMI); /* inline: no call may write the stack before the NMI */
  __asm__ volatile("mov %0, %%esp" ::"r"(saved) : "memory");
  for (volatile int i = 0; i < 1000; i++) {
  }
  printf_("nminest: nmis %u, deepest %u\n", nmis, nmi_deepest);
}

/* ---- spin, triple --------------------------------------------------------------------------- */

static void spin(void) {
  volatile u32 sum = 0;
  for (u32 i = 0; i < 200000; i++) sum += i;
  printf_("spin: sum 0x%x\n", sum);
}

static void triple(void) {
  struct {
    u16 limit;
    u32 base;
  } __attribute__((packed)) idtr = {0, 0};
  printf_("triple: lidt limit 0, ud2\n");
  __asm__ volatile("lidt %0; ud2" ::"m"(idtr));
}

void main(void) {
  const char *s = scenario();
  printf_("vmxtests exits: %s\n", s);
  if (streq(s, "instr"))
    instr();
  else if (streq(s, "except"))
    except();
  else if (streq(s, "ept"))
    ept();
  else if (streq(s, "vector"))
    vector();
  else if (streq(s, "nmi"))
    nmi();
  else if (streq(s, "nmilint"))
    nmilint();
  else if (streq(s, "nminest"))
    nminest();
  else if (streq(s, "spin"))
    spin();
  else if (streq(s, "triple"))
    triple();
  else
    printf_("unknown scenario\n");
  printf_("done\n");
}
