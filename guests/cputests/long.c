/*
 * long: 64-bit mode. Exceptions and their error codes, segment loads, far transfers to and from
 * compatibility mode, a call gate, ring 3 through IRETQ (RSP0 switch), IST, #DF, the MOV SS
 * shadow with single-stepping, SYSCALL/SYSRET, MSRs, control registers, descriptor-table and
 * segment-inspection instructions, I/O permission (IOPL and the TSS bitmap), string I/O, and a
 * return from long mode to legacy protected mode and back.
 */
#include "rt64.h"

#define FN(name) extern void name(void)
#define LBL(name) extern char name[]
#define RUN(name) probe((void (*)(long))(name), 0)
/* Offset of the faulting or interrupted RIP from a label. */
#define OFF(label) ((long)(last.rip - (u64)(label)))

/* ---- kernel-mode snippets (each ends in RET) ---- */
__asm__(".text\n"
        "k_div0: xor %ecx, %ecx\n k_div0_i: div %ecx\n ret\n"
        "k_ud2: ud2\n ret\n"
        "k_int3: int3\n k_int3_after: ret\n"
        "k_int41: int $0x41\n k_int41_after: ret\n"
        "k_into: .byte 0xce\n ret\n" /* INTO: invalid in 64-bit mode */
        "k_noncanon: movabs $0x8000000000000000, %rax\n k_noncanon_i: mov (%rax), %rax\n ret\n"
                "k_int42: int $0x42\n ret\n"
        "k_ud2_df: ud2\n ret\n"
        "k_gp_df: movabs $0x8000000000000000, %rax\n mov (%rax), %rax\n ret\n"
        /* TF set by POPF, then MOV SS: the single-step trap waits for the instruction after MOV SS. */
        "k_movss_step: pushf\n orl $0x100, (%rsp)\n mov %ss, %ax\n popf\n"
        "k_movss_l1: mov %ax, %ss\n k_movss_l2: nop\n k_movss_l3: nop\n nop\n ret\n"
        "k_sti_step: pushf\n orl $0x100, (%rsp)\n popf\n k_sti_l1: nop\n nop\n ret\n"
        /* To compatibility mode by LJMP m16:32 and back by a 32-bit LRET: DEC EAX (0x48) is a REX prefix in 64-bit mode. */
        "k_compat: mov $5, %eax\n ljmpl *compat_ptr(%rip)\n"
        "k_compat_back: mov %eax, k_result(%rip)\n ret\n"
        ".code32\n"
        "compat_code: .byte 0x48\n nop\n push $0x08\n push $k_compat_back\n lret\n"
        ".code64\n"
        ".data\n compat_ptr: .long compat_code\n .word 0x40\n .text\n"
        /* LCALL m16:32 into compatibility mode; it returns with a 32-bit LRET. */
        "k_lcall: mov $7, %eax\n lcall *lcall_ptr(%rip)\n mov %eax, k_result(%rip)\n ret\n"
        ".code32\n compat_callee: .byte 0x48\n lret\n .code64\n"
        ".data\n lcall_ptr: .long compat_callee\n .word 0x40\n .text\n"
        /* Call-gate target: records CS and the pushed frame, returns to ring 3 with LRETQ. */
        "gate_target: mov %cs, %eax\n mov %eax, gate_cs(%rip)\n mov %rsp, gate_rsp(%rip)\n"
        "  mov 8(%rsp), %rax\n mov %rax, gate_caller_cs(%rip)\n mov 24(%rsp), %rax\n mov %rax, gate_caller_ss(%rip)\n"
        "  lretq\n"
        /* SYSCALL entry: record RCX, R11 and RFLAGS, return with SYSRETQ. */
        "syscall_entry: mov %rcx, sc_rcx(%rip)\n mov %r11, sc_r11(%rip)\n pushf\n pop %rax\n"
        "  mov %rax, sc_rflags(%rip)\n mov %cs, %eax\n mov %eax, sc_cs(%rip)\n mov $0x1234, %eax\n sysretq\n"
        /* rep outsb of a string to the COM1 data register. */
        "k_outsb: lea outsb_text(%rip), %rsi\n mov $outsb_len, %ecx\n mov $0x3f8, %edx\n cld\n rep outsb\n ret\n"
        ".section .rodata\n outsb_text: .ascii \"rep outsb: ok\\r\\n\"\n .set outsb_len, . - outsb_text\n .text\n");

/* ---- ring-3 snippets (position-independent, each ends with INT 0x80) ---- */
__asm__(".text\n"
        "u_ret: mov %cs, %eax\n mov %ss, %ebx\n int $0x80\n"
        "u_cli: cli\n int $0x80\n"
        "u_hlt: hlt\n int $0x80\n"
        "u_movcr: mov %cr0, %rax\n int $0x80\n"
        "u_in80: in $0x80, %al\n int $0x80\n"
        "u_out80: out %al, $0x80\n int $0x80\n"
        "u_inw81: in $0x81, %ax\n int $0x80\n" /* port 0x81 allowed, 0x82 not */
        "u_read: mov (%rdi), %al\n int $0x80\n"
        "u_int3: int3\n int $0x80\n"
        "u_int41: int $0x41\n int $0x80\n"
        "u_syscall: mov $0x55, %eax\n syscall\n u_syscall_after: mov %cs, %ecx\n mov %ss, %edx\n"
        "  mov %eax, %ebx\n mov %ecx, %eax\n shl $16, %eax\n or %edx, %eax\n int $0x80\n"
        "u_callgate: sub $16, %rsp\n movl $0, (%rsp)\n movw $0x6b, 4(%rsp)\n lcall *(%rsp)\n"
        "  add $16, %rsp\n mov %cs, %eax\n int $0x80\n"
        "u_rdmsr: mov $0xc0000080, %ecx\n rdmsr\n int $0x80\n"
        "u_swapgs: swapgs\n int $0x80\n");

FN(k_div0); LBL(k_div0_i); FN(k_ud2); FN(k_int3); LBL(k_int3_after); FN(k_int41); LBL(k_int41_after);
FN(k_into); FN(k_noncanon); LBL(k_noncanon_i); FN(k_int42); FN(k_ud2_df); FN(k_gp_df);
FN(k_movss_step); LBL(k_movss_l1); FN(k_sti_step); LBL(k_sti_l1); FN(k_compat); FN(k_lcall); FN(gate_target);
FN(syscall_entry); FN(k_outsb);
FN(u_ret); FN(u_cli); FN(u_hlt); FN(u_movcr); FN(u_in80); FN(u_out80); FN(u_inw81); FN(u_read); FN(u_int3);
FN(u_int41); FN(u_syscall); LBL(u_syscall_after); FN(u_callgate); FN(u_rdmsr); FN(u_swapgs);

u64 gate_cs, gate_rsp, gate_caller_cs, gate_caller_ss;
u64 sc_rcx, sc_r11, sc_rflags, sc_cs;
u32 k_result;

static void step_hook(struct frame *f) { f->rflags &= ~0x100ull; }

static void load_ds(long sel) { __asm__ volatile("mov %0, %%ds; mov %1, %%ds" ::"r"((u16)sel), "r"((u16)SEL_KDATA)); }
static void load_ss(long sel) { __asm__ volatile("mov %0, %%ss; mov %1, %%ss" ::"r"((u16)sel), "r"((u16)SEL_KDATA)); }
static void load_fs(long sel) { __asm__ volatile("mov %0, %%fs; mov %1, %%fs" ::"r"((u16)sel), "r"((u16)0)); }
static void do_rdmsr(long msr) { (void)rdmsr((u32)msr); }
static void do_wrgsbase(long v) { wrmsr(0xC0000101, (u64)v); }
static void do_wrefer(long v) { wrmsr(MSR_EFER, (u64)v); }

static void segment_loads(void) {
  static const struct {
    const char *what;
    void (*fn)(long);
    u16 sel;
  } cases[] = {
      {"mov ds, null", load_ds, 0},
      {"mov ds, kernel data", load_ds, SEL_KDATA},
      {"mov ds, readable code", load_ds, SEL_KCODE64},
      {"mov ds, execute-only code", load_ds, SEL_XONLY64},
      {"mov ds, beyond gdt limit", load_ds, 0x1230},
      {"mov ds, ldt selector without ldt", load_ds, 0x0c},
      {"mov ds, tss", load_ds, SEL_TSS},
      {"mov ds, not present", load_ds, SEL_NP_DATA},
      {"mov ds, dpl 3 data", load_ds, SEL_DPL3_DATA},
      {"mov fs, rpl 3 kernel data", load_fs, SEL_KDATA | 3},
      {"mov ss, null", load_ss, 0},
      {"mov ss, rpl 3 kernel data", load_ss, SEL_KDATA | 3},
      {"mov ss, dpl 3 data", load_ss, SEL_DPL3_DATA},
      {"mov ss, not present", load_ss, SEL_NP_DATA},
      {"mov ss, code", load_ss, SEL_KCODE64},
  };
  for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++)
    print_fault(cases[i].what, probe(cases[i].fn, cases[i].sel));
}

static void exceptions(void) {
  long v = RUN(k_div0);
  print_fault("div by zero", v);
  printf_("  at k_div0_i+%ld\n", OFF(k_div0_i));
  print_fault("ud2", RUN(k_ud2));
  print_fault("into in 64-bit mode", RUN(k_into));
  v = RUN(k_noncanon);
  print_fault("non-canonical load", v);
  printf_("  at k_noncanon_i+%ld\n", OFF(k_noncanon_i));
  resume_vec[3] = 1;
  v = RUN(k_int3);
  printf_("int3 resumed: vector %lld, saved rip at k_int3_after+%ld, cs=0x%llx\n", last.vec, OFF(k_int3_after),
          last.cs);
  resume_vec[3] = 0;
  resume_vec[0x41] = 1;
  v = RUN(k_int41);
  printf_("int 0x41 resumed: %s, saved rip at k_int41_after+%ld, rflags=0x%llx\n", v < 0 ? "returned" : "left",
          OFF(k_int41_after), last.rflags & 0x3cff);
  resume_vec[0x41] = 0;
}

static void stacks(void) {
  /* (A push with a non-canonical RSP raises #SS on hardware but #GP under QEMU TCG: not checked.) */
  set_gate(0x42, stub_of(0x42), 0xe, 0, 1);
  resume_vec[0x42] = 1;
  RUN(k_int42);
  resume_vec[0x42] = 0;
  printf_("int 0x42 via ist1: frame 16-byte aligned on ist1: %s, saved ss=0x%llx\n",
          last.frame + 15 * 8 + 16 == ist1_top() - 40 ? "yes" : "no", last.ss);
  set_gate(0x42, stub_of(0x42), 0xe, 0, 0);

  /* #DF: the #GP gate is not present, so delivering #GP raises #NP, and two contributory faults make #DF. */
  u64 saved[2];
  extern u8 idt_base[] __asm__("idt");
  (void)idt_base;
  struct {
    u16 limit;
    u64 base;
  } __attribute__((packed)) idtr;
  __asm__ volatile("sidt %0" : "=m"(idtr));
  u64 *gp = (u64 *)(idtr.base + 13 * 16);
  saved[0] = gp[0];
  saved[1] = gp[1];
  gp[0] &= ~(1ull << 47);
  print_fault("#GP with its gate not present", RUN(k_gp_df));
  gp[0] = saved[0];
  u64 *ud = (u64 *)(idtr.base + 6 * 16);
  saved[0] = ud[0];
  ud[0] &= ~(1ull << 47);
  print_fault("#UD with its gate not present", RUN(k_ud2_df));
  ud[0] = saved[0];
}

static void single_step(void) {
  resume_vec[1] = 1;
  resume_hook = step_hook;
  last.vec = 0;
  RUN(k_movss_step);
  printf_("single step after mov ss: vector %lld at k_movss_l1+%ld\n", last.vec, OFF(k_movss_l1));
  last.vec = 0;
  RUN(k_sti_step);
  printf_("single step after popf: vector %lld at k_sti_l1+%ld, dr6.bs=%llu\n", last.vec, OFF(k_sti_l1),
          ({
            u64 d;
            __asm__ volatile("mov %%dr6, %0" : "=r"(d));
            (d >> 14) & 1;
          }));
  resume_vec[1] = 0;
  resume_hook = 0;
}

static void far_transfers(void) {
  k_result = 0;
  print_fault("ljmp m16:32 to compatibility mode, lret back", RUN(k_compat));
  printf_("  eax=%u (dec eax ran in compatibility mode)\n", k_result);
  k_result = 0;
  print_fault("lcall m16:32 to compatibility mode, lret back", RUN(k_lcall));
  printf_("  eax=%u\n", k_result);

  /* A 64-bit call gate (16 bytes, DPL 3) to ring-0 code, called from ring 3. */
  u64 target = (u64)gate_target;
  gdt[SEL_CALLGATE / 8] = (target & 0xffff) | ((u64)SEL_KCODE64 << 16) | (0xecull << 40) |
                          ((target >> 16) << 48);
  gdt[SEL_CALLGATE / 8 + 1] = target >> 32;
  long v = user_probe(u_callgate, 0x202, 0);
  print_fault("ring 3 lcall through a call gate", v);
  printf_("  in the gate: cs=0x%llx, on the rsp0 stack: %s, caller cs=0x%llx ss=0x%llx; back in cs=0x%llx\n",
          gate_cs, gate_rsp < rsp0_top() && gate_rsp >= rsp0_top() - RSP0_STACK_SIZE ? "yes" : "no",
          gate_caller_cs, gate_caller_ss, last.rax & 0xffff);
}

static void ring3(void) {
  long v = user_probe(u_ret, 0x202, 0);
  print_fault("iretq to ring 3 and int 0x80", v);
  printf_("  user cs=0x%llx ss=0x%llx; frame cs=0x%llx ss=0x%llx rflags=0x%llx; frame top is rsp0: %s\n",
          last.rax & 0xffff, last.rbx & 0xffff, last.cs, last.ss, last.rflags & 0x3cff,
          last.frame + 22 * 8 == rsp0_top() ? "yes" : "no");
  print_fault("ring 3 cli (iopl 0)", user_probe(u_cli, 0x202, 0));
  print_fault("ring 3 cli (iopl 3)", user_probe(u_cli, 0x3202, 0));
  print_fault("ring 3 hlt", user_probe(u_hlt, 0x202, 0));
  print_fault("ring 3 mov from cr0", user_probe(u_movcr, 0x202, 0));
  print_fault("ring 3 rdmsr", user_probe(u_rdmsr, 0x202, 0));
  print_fault("ring 3 swapgs", user_probe(u_swapgs, 0x202, 0));
  print_fault("ring 3 in 0x80 (bitmap denies)", user_probe(u_in80, 0x202, 0));
  io_bitmap()[0x80 / 8] &= (u8)~(1 << (0x80 % 8));
  io_bitmap()[0x81 / 8] &= (u8)~(1 << (0x81 % 8));
  print_fault("ring 3 in 0x80 (bitmap allows)", user_probe(u_in80, 0x202, 0));
  print_fault("ring 3 out 0x80 (bitmap allows)", user_probe(u_out80, 0x202, 0));
  print_fault("ring 3 in 0x81 word (0x82 denied)", user_probe(u_inw81, 0x202, 0));
  io_bitmap()[0x80 / 8] = 0xff;
  print_fault("ring 3 in 0x80 (iopl 3)", user_probe(u_in80, 0x3202, 0));
  print_fault("ring 3 read of a supervisor page", user_probe(u_read, 0x202, 0x100000));
  print_fault("ring 3 int3 (gate dpl 0)", user_probe(u_int3, 0x202, 0));
  set_gate(3, stub_of(3), 0xe, 3, 0);
  v = user_probe(u_int3, 0x202, 0);
  print_fault("ring 3 int3 (gate dpl 3)", v);
  printf_("  frame cs=0x%llx\n", last.cs);
  set_gate(3, stub_of(3), 0xe, 0, 0);
  print_fault("ring 3 int 0x41 (gate dpl 0)", user_probe(u_int41, 0x202, 0));
}

static void fast_syscalls(void) {
  wrmsr(0xC0000081, ((u64)(SEL_UCODE32 | 3) << 48) | ((u64)SEL_KCODE64 << 32)); /* STAR */
  wrmsr(0xC0000082, (u64)syscall_entry);                                          /* LSTAR */
  wrmsr(0xC0000084, 0x4700);                                                      /* FMASK: TF IF DF NT */
  long v = user_probe(u_syscall, 0x202, 0);
  print_fault("syscall/sysretq", v);
  printf_("  rcx at u_syscall_after+%ld, r11=0x%llx, kernel rflags=0x%llx cs=0x%llx; after sysret cs:ss=%llx eax=0x%llx\n",
          (long)(sc_rcx - ((u64)u_syscall_after + USER_ALIAS)), sc_r11 & 0x3cff, sc_rflags & 0x3cff, sc_cs,
          last.rax & 0xffffffff, last.rbx & 0xffffffff);
}

static void msrs_and_control(void) {
  printf_("efer=0x%llx\n", rdmsr(MSR_EFER));
  print_fault("rdmsr 0xc0001234 (unknown)", probe(do_rdmsr, 0xc0001234));
  print_fault("wrmsr efer reserved bit 2", probe(do_wrefer, (long)(rdmsr(MSR_EFER) | 4)));
  wrmsr(0xC0000102, 0xffff800011223344ull); /* KERNEL_GS_BASE (canonical: a non-canonical value is #GP, SDM WRMSR) */
  wrmsr(0xC0000101, 0x1000);                /* GS_BASE */
  __asm__ volatile("swapgs");
  printf_("swapgs: gs.base=0x%llx kernel_gs_base=0x%llx\n", rdmsr(0xC0000101), rdmsr(0xC0000102));
  __asm__ volatile("swapgs");
  print_fault("wrmsr gs.base non-canonical", probe(do_wrgsbase, (long)0x8000000000000000ull));
  printf_("cr0=0x%llx cr4&(pae|pge)=0x%llx\n", rdcr0() & 0x80010011, rdcr4() & (CR4_PAE | CR4_PGE));
  u32 a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
  printf_("cpuid 1: edx&(pse|tsc|msr|pae|cx8|sep|pge|cmov|pat)=0x%x\n", d & 0x1a978);
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000001), "c"(0));
  printf_("cpuid 0x80000001: edx&(syscall|nx|lm)=0x%x\n", d & 0x20100800);
}

static void descriptors(void) {
  struct {
    u16 limit;
    u64 base;
  } __attribute__((packed)) g, i;
  u16 tr, ldt;
  __asm__ volatile("sgdt %0; sidt %1; str %2; sldt %3" : "=m"(g), "=m"(i), "=r"(tr), "=r"(ldt));
  printf_("sgdt limit=0x%x base is gdt: %s; sidt limit=0x%x; str=0x%x; sldt=0x%x\n", g.limit,
          g.base == (u64)gdt ? "yes" : "no", i.limit, tr, ldt);
  static const u16 sels[] = {0, SEL_KCODE64, SEL_KDATA, SEL_UCODE32 | 3, SEL_UDATA | 3, SEL_TSS, SEL_NP_DATA,
                             SEL_XONLY64, SEL_CALLGATE, SEL_DPL3_DATA, 0x1230};
  for (unsigned k = 0; k < sizeof sels / sizeof sels[0]; k++) {
    u32 ar = 0, lim = 0;
    u8 zl, zs, zr, zw;
    __asm__ volatile("xor %0, %0; lar %5, %0; setz %1; xor %2, %2; lsl %5, %2; setz %3; verr %w5; setz %4"
                     : "=&r"(ar), "=&q"(zl), "=&r"(lim), "=&q"(zs), "=&q"(zr)
                     : "r"((u32)sels[k])
                     : "cc");
    __asm__ volatile("verw %w1; setz %0" : "=q"(zw) : "r"((u32)sels[k]) : "cc");
    printf_("selector 0x%x: lar %s0x%x, lsl %s0x%x, verr %u, verw %u\n", sels[k], zl ? "" : "(zf=0) ", ar,
            zs ? "" : "(zf=0) ", lim, zr, zw);
  }
}

int main(void) {
  puts_("cputests long: 64-bit mode\n");
  exceptions();
  segment_loads();
  stacks();
  single_step();
  far_transfers();
  ring3();
  fast_syscalls();
  msrs_and_control();
  descriptors();
  print_fault("rep outsb", RUN(k_outsb));
  puts_("done\n");
  return 0;
}
