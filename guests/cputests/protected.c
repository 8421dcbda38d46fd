/*
 * protected: 32-bit protected mode. IDT delivery with error codes (interrupt and trap gates, INT n,
 * INT3, INTO, BOUND, gates not present or beyond the IDT limit), segment limit checks (#GP for
 * data, #SS for the stack, expand-down segments, granularity), ring 3 through IRET with the TSS
 * ESP0 stack switch, IOPL and the I/O bitmap, a call gate that copies parameters, SYSENTER/SYSEXIT,
 * the task register, then 32-bit paging (4 KiB pages, 4 MiB pages with CR4.PSE) and PAE paging
 * (4 KiB and 2 MiB pages, execute-disable) with #PF error codes, CR0.WP and accessed/dirty flags.
 */
#include "rt32.h"

#define FN(name) extern void name(void)
#define LBL(name) extern char name[]
#define RUN(name) probe((void (*)(long))(name), 0)
#define OFF(label) ((long)(last.eip - (u32)(label)))
#define BARRIER() __asm__ volatile("" ::: "memory")

/* Test descriptors in gdt[GDT_TEST_FIRST..]. */
enum {
  D_LIMIT = GDT_TEST_FIRST, /* data, byte limit 0xfff */
  D_GLIMIT,                 /* data, G=1, limit 0: 0xfff */
  D_RO,                     /* read-only data */
  D_XONLY,                  /* execute-only code */
  D_RCODE,                  /* readable code */
  D_DOWN32,                 /* expand-down data, B=1 */
  D_DOWN16,                 /* expand-down data, B=0 */
  D_SS_UP,                  /* stack, expand-up, limit = end of ss_area's first page */
  D_SS_DOWN,                /* stack, expand-down, B=1 */
  D_NP,                     /* data, not present */
  D_KDATA2,                 /* a second flat kernel data segment, for TSS.SS0 */
  D_GATE,                   /* call gate, filled in by call_gate() */
};
#define SEL(d) ((d) * 8)
#define SEL_GATE SEL(D_GATE)

/* ---- kernel-mode snippets (cdecl, each ends in RET) ---- */
__asm__(".text\n"
        "k_int3: int3\n k_int3_after: ret\n"
        "k_int41: int $0x41\n k_int41_after: ret\n"
        "k_int42: int $0x42\n k_int42_after: ret\n"
        "k_into0: xor %eax, %eax\n into\n ret\n"
        "k_into1: mov $0x7fffffff, %eax\n add $1, %eax\n k_into1_i: into\n k_into1_after: ret\n"
        "k_bound: mov 4(%esp), %eax\n k_bound_i: bound %eax, bound_pair\n ret\n"
        "k_div0: xor %ecx, %ecx\n xor %edx, %edx\n mov $1, %eax\n k_div0_i: div %ecx\n ret\n"
        "k_ud2: ud2\n ret\n"
        /* A stack access at ss_off(%esp) with SS = ss_sel and ESP = ss_esp (both flat-based). */
        "k_ss_access: mov %esp, ss_saved_esp\n mov ss_sel, %eax\n mov ss_esp, %ecx\n mov ss_off, %edx\n"
        "  mov %ax, %ss\n mov %ecx, %esp\n k_ss_access_i: mov (%esp,%edx), %eax\n"
        "  mov $0x10, %eax\n mov %ax, %ss\n mov ss_saved_esp, %esp\n ret\n"
        /* Call-gate target: records CS, the stack and the copied parameters, returns with LRET 8. */
        "gate_target: mov %cs, %eax\n mov %eax, gate_cs\n mov %esp, gate_esp\n"
        "  mov 4(%esp), %eax\n mov %eax, gate_caller_cs\n mov 8(%esp), %eax\n mov %eax, gate_p0\n"
        "  mov 12(%esp), %eax\n mov %eax, gate_p1\n mov 20(%esp), %eax\n mov %eax, gate_caller_ss\n"
        "  lret $8\n"
        /* SYSENTER entry: records CS, SS, ESP and EFLAGS, returns with SYSEXIT (EDX, ECX untouched). */
        "sysenter_entry: mov %cs, %eax\n mov %eax, se_cs\n mov %ss, %eax\n mov %eax, se_ss\n"
        "  mov %esp, se_esp\n pushf\n pop %eax\n mov %eax, se_eflags\n sysexit\n"
        ".data\n .balign 4\n bound_pair: .long 10, 20\n .text\n");

/* ---- ring-3 snippets (each ends with INT 0x80), argument in EDI ---- */
__asm__(".text\n"
        "u_ret: mov %cs, %eax\n mov %ss, %ebx\n int $0x80\n"
        "u_cli: cli\n int $0x80\n"
        "u_hlt: hlt\n int $0x80\n"
        "u_movcr: mov %cr0, %eax\n int $0x80\n"
        "u_in80: in $0x80, %al\n int $0x80\n"
        "u_inw81: in $0x81, %ax\n int $0x80\n"
        "u_int41: int $0x41\n int $0x80\n"
        "u_int3: int3\n int $0x80\n"
        "u_read: mov (%edi), %al\n int $0x80\n"
        "u_write: movb $0x77, (%edi)\n int $0x80\n"
        "u_fetch: call *%edi\n int $0x80\n"
        "u_segs: mov %fs, %eax\n mov %gs, %ebx\n int $0x80\n"
        "u_read32: mov (%edi), %eax\n int $0x80\n"
        "u_into: mov $0x7fffffff, %eax\n add $1, %eax\n into\n int $0x80\n"
        "u_bound: mov $30, %eax\n bound %eax, bound_pair\n int $0x80\n"
        "u_lcall_kcode: lcall $0x08, $0\n int $0x80\n"
        /* POPF at CPL 3 trying to clear IF and set IOPL 3. */
        "u_popf: pushf\n pop %eax\n and $~0x200, %eax\n or $0x3000, %eax\n push %eax\n popf\n pushf\n pop %eax\n"
        "  int $0x80\n"
        "u_callgate: mov %esp, %esi\n push $0x1111\n push $0x2222\n lcall *(%edi)\n"
        "  mov %cs, %eax\n mov %esp, %ebx\n sub %esi, %ebx\n int $0x80\n"
        "u_sysenter: mov %esp, %ecx\n mov $u_sysenter_back, %edx\n mov $0x55, %eax\n sysenter\n"
        "u_sysenter_back: mov %esp, %edx\n sub %ecx, %edx\n mov %edx, se_delta\n mov %cs, %eax\n mov %ss, %ebx\n"
        "  int $0x80\n"
        "u_sysexit: sysexit\n int $0x80\n");

FN(k_int3); LBL(k_int3_after); FN(k_int41); LBL(k_int41_after); FN(k_int42); FN(k_into0); FN(k_into1);
LBL(k_into1_i); LBL(k_into1_after); FN(k_bound); LBL(k_bound_i); FN(k_div0); LBL(k_div0_i); FN(k_ud2);
FN(k_ss_access); LBL(k_ss_access_i); FN(gate_target); FN(sysenter_entry);
FN(u_ret); FN(u_cli); FN(u_hlt); FN(u_movcr); FN(u_in80); FN(u_inw81); FN(u_int41); FN(u_int3); FN(u_read);
FN(u_write); FN(u_fetch); FN(u_segs); FN(u_read32); FN(u_into); FN(u_bound); FN(u_lcall_kcode); FN(u_popf); FN(u_callgate); FN(u_sysenter); FN(u_sysexit);

u32 ss_saved_esp, ss_sel, ss_esp, ss_off;
u32 gate_cs, gate_esp, gate_caller_cs, gate_caller_ss, gate_p0, gate_p1;
u32 se_cs, se_ss, se_esp, se_eflags, se_delta;
static u8 ss_area[8192] __attribute__((aligned(4096)));
static u8 seg_buf[8192] __attribute__((aligned(4096)));
static u8 se_stack[1024] __attribute__((aligned(16)));

static void load_ds(long sel) { __asm__ volatile("mov %0, %%ds; mov %1, %%ds" ::"r"((u16)sel), "r"((u16)SEL_KDATA)); }
static void load_ss(long sel) { __asm__ volatile("mov %0, %%ss; mov %1, %%ss" ::"r"((u16)sel), "r"((u16)SEL_KDATA)); }
static void load_es(long sel) { __asm__ volatile("mov %0, %%es; mov %1, %%es" ::"r"((u16)sel), "r"((u16)SEL_KDATA)); }

/* FS-relative accesses: FS = fs_sel, offset = the argument. */
static u16 fs_sel;
static void fs_read8(long off) {
  __asm__ volatile("mov %0, %%fs; movb %%fs:(%1), %%al; mov %2, %%fs" ::"r"(fs_sel), "r"(off), "r"((u16)0)
                   : "eax", "memory");
}
static void fs_read32(long off) {
  __asm__ volatile("mov %0, %%fs; movl %%fs:(%1), %%eax; mov %2, %%fs" ::"r"(fs_sel), "r"(off), "r"((u16)0)
                   : "eax", "memory");
}
static void fs_write8(long off) {
  __asm__ volatile("mov %0, %%fs; movb $1, %%fs:(%1); mov %2, %%fs" ::"r"(fs_sel), "r"(off), "r"((u16)0)
                   : "memory");
}
static long fs_probe(void (*fn)(long), u16 sel, u32 off) {
  fs_sel = sel;
  return probe(fn, (long)off);
}
static long ss_probe(u16 sel, u32 esp, u32 off) {
  ss_sel = sel, ss_esp = esp, ss_off = off;
  return RUN(k_ss_access);
}

static struct {
  u16 limit;
  u32 base;
} __attribute__((packed)) idtr;
static u64 *idt_gate(int vec) { return (u64 *)(idtr.base + 8 * vec); }


static void load_ds(long sel);
static u64 saved_gp;
static void interrupts(void) {
  __asm__ volatile("sidt %0" : "=m"(idtr));
  resume_vec[3] = 1;
  RUN(k_int3);
  printf_("int3: vector %u, saved eip at k_int3_after+%ld, cs=0x%x\n", last.vec, OFF(k_int3_after), last.cs);
  resume_vec[3] = 0;

  resume_vec[0x41] = 1;
  __asm__ volatile("sti");
  RUN(k_int41);
  printf_("int 0x41 through an interrupt gate: saved eip at k_int41_after+%ld, saved if=%u, handler if=%u\n",
          OFF(k_int41_after), (last.eflags >> 9) & 1, (last.handler_eflags >> 9) & 1);
  set_gate(0x41, stub_of(0x41), GATE_TRAP32, 0);
  RUN(k_int41);
  printf_("int 0x41 through a trap gate: saved if=%u, handler if=%u\n", (last.eflags >> 9) & 1,
          (last.handler_eflags >> 9) & 1);
  __asm__ volatile("cli");
  set_gate(0x41, stub_of(0x41), GATE_INT32, 0);
  resume_vec[0x41] = 0;

  print_fault("into with of=0", RUN(k_into0));
  resume_vec[4] = 1;
  last.vec = 0;
  long v = RUN(k_into1);
  printf_("into with of=1: vector %u, %s, saved eip at k_into1_after+%ld\n", last.vec,
          v < 0 ? "resumed" : "left", OFF(k_into1_after));
  resume_vec[4] = 0;
  print_fault("bound 15 in [10, 20]", probe((void (*)(long))k_bound, 15));
  print_fault("bound 20 in [10, 20]", probe((void (*)(long))k_bound, 20));
  print_fault("bound 9 in [10, 20]", probe((void (*)(long))k_bound, 9));
  printf_("  at k_bound_i+%ld\n", OFF(k_bound_i));
  print_fault("bound 21 in [10, 20]", probe((void (*)(long))k_bound, 21));
  print_fault("div by zero", RUN(k_div0));
  printf_("  at k_div0_i+%ld\n", OFF(k_div0_i));
  print_fault("ud2", RUN(k_ud2));
  /* #GP while its gate is not present: #NP, and two contributory exceptions make #DF (SDM 6.15). */
  saved_gp = *idt_gate(13);
  *idt_gate(13) &= ~(1ull << 47);
  print_fault("#GP with its gate not present", probe(load_ds, 0x1230));
  *idt_gate(13) = saved_gp;

  u64 saved = *idt_gate(0x42);
  *idt_gate(0x42) &= ~(1ull << 47);
  print_fault("int 0x42, gate not present", RUN(k_int42));
  *idt_gate(0x42) = saved;
  saved = *idt_gate(6);
  *idt_gate(6) &= ~(1ull << 47);
  print_fault("#UD with its gate not present", RUN(k_ud2));
  *idt_gate(6) = saved;
  /* An IDT limit that ends before vector 0x42's gate (SDM 6.10: #GP with the IDT bit). */
  struct {
    u16 limit;
    u32 base;
  } __attribute__((packed)) small = {0x42 * 8 - 1, idtr.base};
  __asm__ volatile("lidt %0" ::"m"(small));
  print_fault("int 0x42 beyond the idt limit", RUN(k_int42));
  __asm__ volatile("lidt %0" ::"m"(idtr));
  set_gate(0x42, stub_of(0x42), 0x1, 0); /* not a gate type */
  print_fault("int 0x42 through a gate of type 1", RUN(k_int42));
  set_gate(0x42, stub_of(0x42), GATE_INT32, 0);
}

static void segment_limits(void) {
  u32 b = (u32)seg_buf;
  gdt[D_LIMIT] = seg_desc(b, 0xfff, 0x92, 0x4);
  gdt[D_GLIMIT] = seg_desc(b, 0, 0x92, 0xc);
  gdt[D_RO] = seg_desc(b, 0xfff, 0x90, 0x4);
  gdt[D_XONLY] = seg_desc(0, 0xfffff, 0x98, 0xc);
  gdt[D_RCODE] = seg_desc(b, 0xfff, 0x9a, 0x4);
  gdt[D_DOWN32] = seg_desc(b - 0x1000, 0xfff, 0x96, 0x4);
  gdt[D_DOWN16] = seg_desc(b - 0x1000, 0xfff, 0x96, 0x0);
  gdt[D_SS_UP] = seg_desc(0, (u32)ss_area >> 12, 0x92, 0xc);
  gdt[D_SS_DOWN] = seg_desc(0, (u32)ss_area >> 12, 0x96, 0xc);
  gdt[D_NP] = seg_desc(0, 0xfffff, 0x12, 0xc);

  print_fault("read byte at limit 0xfff", fs_probe(fs_read8, SEL(D_LIMIT), 0xfff));
  print_fault("read dword at 0xffc, limit 0xfff", fs_probe(fs_read32, SEL(D_LIMIT), 0xffc));
  print_fault("read dword at 0xffd, limit 0xfff", fs_probe(fs_read32, SEL(D_LIMIT), 0xffd));
  print_fault("read byte at 0x1000, limit 0xfff", fs_probe(fs_read8, SEL(D_LIMIT), 0x1000));
  print_fault("g=1 limit 0: read byte at 0xfff", fs_probe(fs_read8, SEL(D_GLIMIT), 0xfff));
  print_fault("g=1 limit 0: read byte at 0x1000", fs_probe(fs_read8, SEL(D_GLIMIT), 0x1000));
  print_fault("read-only data: read", fs_probe(fs_read8, SEL(D_RO), 0x10));
  print_fault("read-only data: write", fs_probe(fs_write8, SEL(D_RO), 0x10));
  print_fault("readable code in fs: read", fs_probe(fs_read8, SEL(D_RCODE), 0x10));
  print_fault("readable code in fs: write", fs_probe(fs_write8, SEL(D_RCODE), 0x10));
  print_fault("mov fs, execute-only code", fs_probe(fs_read8, SEL(D_XONLY), 0x10));
  print_fault("null fs: read", fs_probe(fs_read8, 0, 0x10));
  print_fault("mov ds, beyond the gdt limit", probe(load_ds, 0x1230));
  print_fault("mov ds, not present", probe(load_ds, SEL(D_NP)));
  print_fault("mov es, the tss", probe(load_es, SEL_TSS));
  print_fault("mov ds, rpl 3 kernel data", probe(load_ds, SEL_KDATA | 3));
  print_fault("expand-down b=1 limit 0xfff: read at 0x800", fs_probe(fs_read8, SEL(D_DOWN32), 0x800));
  print_fault("expand-down b=1 limit 0xfff: read at 0xfff", fs_probe(fs_read8, SEL(D_DOWN32), 0xfff));
  print_fault("expand-down b=1 limit 0xfff: read at 0x1000", fs_probe(fs_read8, SEL(D_DOWN32), 0x1000));
  print_fault("expand-down b=1: dword at 0xfffffffe", fs_probe(fs_read32, SEL(D_DOWN32), 0xfffffffe));
  print_fault("expand-down b=0 limit 0xfff: read at 0xffff", fs_probe(fs_read8, SEL(D_DOWN16), 0xffff));
  print_fault("expand-down b=0 limit 0xfff: read at 0x10000", fs_probe(fs_read8, SEL(D_DOWN16), 0x10000));
  print_fault("expand-down b=0: dword at 0xfffe", fs_probe(fs_read32, SEL(D_DOWN16), 0xfffe));

  u32 top = (u32)ss_area + 0x1000; /* the expand-up stack's limit is top - 1 */
  print_fault("ss limit: read at esp-4 (inside)", ss_probe(SEL(D_SS_UP), top, (u32)-4));
  long v = ss_probe(SEL(D_SS_UP), top, 0);
  print_fault("ss limit: read at esp (beyond)", v);
  if (v >= 0) printf_("  at k_ss_access_i+%ld\n", OFF(k_ss_access_i));
  else puts_("  (no fault)\n");
  top = (u32)ss_area + 0x2000; /* expand-down: valid above ss_area + 0xfff */
  print_fault("expand-down ss: read at esp-0x800 (valid)", ss_probe(SEL(D_SS_DOWN), top, (u32)-0x800));
  print_fault("expand-down ss: read at esp-0x1800 (below the limit)", ss_probe(SEL(D_SS_DOWN), top, (u32)-0x1800));
  print_fault("mov ss, not present", probe(load_ss, SEL(D_NP)));
  print_fault("mov ss, read-only data", probe(load_ss, SEL(D_RO)));
  print_fault("mov ss, null", probe(load_ss, 0));
  print_fault("mov ss, user data (dpl 3)", probe(load_ss, SEL_UDATA | 3));
}

u32 iret_args[4]; /* eip, esp, cs, ss */
__asm__(".text\n"
        "k_iret_segs: mov $0x10, %eax\n mov %ax, %fs\n mov $0x23, %eax\n mov %ax, %gs\n mov %ax, %ds\n mov %ax, %es\n"
        "  push $0x23\n push iret_args + 4\n push $0x202\n push $0x1b\n push iret_args\n iret\n");
FN(k_iret_segs);
/* IRET with the frame in iret_args (EFLAGS 0x202). */
__asm__(".text\n k_iret_any: push iret_args + 12\n push iret_args + 4\n push $0x202\n push iret_args + 8\n"
        "  push iret_args\n iret\n");
FN(k_iret_any);
static void rd32_ac(long a) {
  __asm__ volatile("pushf; orl $0x40000, (%%esp); popf; movl (%0), %%eax; pushf; andl $~0x40000, (%%esp); popf" ::"r"(a)
                   : "eax", "memory", "cc");
}

static void ring3(void) {
  long v = user_probe(u_ret, 0x202, 0);
  print_fault("iret to ring 3 and int 0x80", v);
  printf_("  user cs=0x%x ss=0x%x; frame cs=0x%x ss=0x%x eflags=0x%x; frame ends at esp0: %s\n", last.eax & 0xffff,
          last.ebx & 0xffff, last.cs, last.ss, last.eflags & 0x3cff,
          last.frame + sizeof(struct frame) == esp0_top() ? "yes" : "no");
  printf_("  handler ss=0x%x (tss.ss0)\n", last.handler_ss);
  gdt[D_KDATA2] = seg_desc(0, 0xfffff, 0x92, 0xc);
  set_ss0(SEL(D_KDATA2));
  user_probe(u_ret, 0x202, 0);
  printf_("tss.ss0=0x%x: handler ss=0x%x, frame ends at esp0: %s\n", SEL(D_KDATA2), last.handler_ss,
          last.frame + sizeof(struct frame) == esp0_top() ? "yes" : "no");
  set_ss0(SEL_KDATA);
  /* IRET to ring 3 nulls a data segment register whose DPL is below the new CPL (SDM Vol. 2A IRET). */
  iret_args[0] = (u32)u_segs, iret_args[1] = user_stack_top();
  print_fault("iret to ring 3 with fs=kernel data, gs=user data", RUN(k_iret_segs));
  printf_("  in ring 3: fs=0x%x gs=0x%x\n", last.eax & 0xffff, last.ebx & 0xffff);
  iret_args[2] = SEL_UCODE | 3, iret_args[3] = SEL_KDATA;
  print_fault("iret to ring 3 with ss = kernel data (dpl 0)", RUN(k_iret_any));
  iret_args[2] = SEL_KCODE | 3, iret_args[3] = SEL_UDATA | 3;
  print_fault("iret to cs = kernel code with rpl 3", RUN(k_iret_any));
  iret_args[2] = SEL_UCODE | 3, iret_args[3] = SEL_UDATA;
  print_fault("iret to ring 3 with ss rpl 0", RUN(k_iret_any));
  iret_args[2] = SEL_UCODE | 3, iret_args[3] = SEL(D_NP);
  print_fault("iret to ring 3 with ss dpl 0 not present", RUN(k_iret_any));
  /* (A not-present SS with the right DPL is #SS in the SDM's IRET pseudocode but #NP in its exception list.) */
  iret_args[2] = SEL_UCODE | 3, iret_args[3] = SEL_UDATA | 3;
  print_fault("iret to ring 3 (valid)", RUN(k_iret_any));
  /* Alignment checking: CR0.AM, EFLAGS.AC and CPL 3 (SDM 6.15, #AC). */
  static u32 aligned_words[2];
  u32 cr0 = rdcr0();
  wrcr0(cr0 | CR0_AM);
  print_fault("ring 3 misaligned dword read, cr0.am=1 eflags.ac=1", user_probe(u_read32, 0x40202, (u32)aligned_words + 1));
  print_fault("ring 3 aligned dword read, cr0.am=1 eflags.ac=1", user_probe(u_read32, 0x40202, (u32)aligned_words));
  print_fault("ring 3 misaligned dword read, cr0.am=1 eflags.ac=0", user_probe(u_read32, 0x202, (u32)aligned_words + 1));
  print_fault("ring 0 misaligned dword read, cr0.am=1 eflags.ac=1", probe(rd32_ac, (long)aligned_words + 1));
  wrcr0(cr0);
  print_fault("ring 3 misaligned dword read, cr0.am=0 eflags.ac=1", user_probe(u_read32, 0x40202, (u32)aligned_words + 1));
  print_fault("ring 3 cli (iopl 0)", user_probe(u_cli, 0x202, 0));
  print_fault("ring 3 cli (iopl 3)", user_probe(u_cli, 0x3202, 0));
  print_fault("ring 3 hlt", user_probe(u_hlt, 0x202, 0));
  print_fault("ring 3 mov from cr0", user_probe(u_movcr, 0x202, 0));
  print_fault("ring 3 int 0x41 (gate dpl 0)", user_probe(u_int41, 0x202, 0));
  print_fault("ring 3 int3 (gate dpl 0)", user_probe(u_int3, 0x202, 0));
  set_gate(3, stub_of(3), GATE_INT32, 3);
  print_fault("ring 3 int3 (gate dpl 3)", user_probe(u_int3, 0x202, 0));
  printf_("  frame cs=0x%x ss=0x%x\n", last.cs, last.ss);
  set_gate(3, stub_of(3), GATE_INT32, 0);
  print_fault("ring 3 into with of=1 (gate dpl 0)", user_probe(u_into, 0x202, 0));
  print_fault("ring 3 bound 30 in [10, 20] (gate dpl 0)", user_probe(u_bound, 0x202, 0));
  print_fault("ring 3 lcall to dpl 0 code", user_probe(u_lcall_kcode, 0x202, 0));
  v = user_probe(u_popf, 0x202, 0);
  print_fault("ring 3 popf clearing if, setting iopl (iopl 0)", v);
  printf_("  eflags&(iopl|if)=0x%x\n", last.eax & 0x3200);
  v = user_probe(u_popf, 0x1202, 0);
  print_fault("ring 3 popf clearing if, setting iopl (iopl 1)", v);
  printf_("  eflags&(iopl|if)=0x%x\n", last.eax & 0x3200);
  v = user_probe(u_popf, 0x3202, 0);
  print_fault("ring 3 popf clearing if (iopl 3)", v);
  printf_("  eflags&(iopl|if)=0x%x\n", last.eax & 0x3200);
  print_fault("ring 3 in 0x80 (bitmap denies)", user_probe(u_in80, 0x202, 0));
  io_bitmap()[0x80 / 8] &= (u8)~(1 << (0x80 % 8));
  io_bitmap()[0x81 / 8] &= (u8)~(1 << (0x81 % 8));
  print_fault("ring 3 in 0x80 (bitmap allows)", user_probe(u_in80, 0x202, 0));
  print_fault("ring 3 in 0x81 word (0x82 denied)", user_probe(u_inw81, 0x202, 0));
  set_iomap_base(0xffff);
  print_fault("ring 3 in 0x80 (bitmap beyond the tss limit)", user_probe(u_in80, 0x202, 0));
  print_fault("ring 3 in 0x80 (iopl 3)", user_probe(u_in80, 0x3202, 0));
  set_iomap_base(104);
  io_bitmap()[0x80 / 8] = 0xff;
}

static void call_gate(void) {
  u32 t = (u32)gate_target;
  static u32 far_ptr[2];
  far_ptr[0] = 0;
  far_ptr[1] = SEL_GATE | 3;
  /* 32-bit call gate (SDM 5.8.3): DPL 3, two parameters. */
  gdt[SEL_GATE / 8] = (t & 0xffff) | ((u64)SEL_KCODE << 16) | (2ull << 32) | (0xecull << 40) | ((u64)(t >> 16) << 48);
  long v = user_probe(u_callgate, 0x202, (u32)far_ptr);
  print_fault("ring 3 lcall through a call gate with 2 parameters", v);
  printf_("  in the gate: cs=0x%x, on the esp0 stack: %s, params 0x%x 0x%x, caller cs=0x%x ss=0x%x\n", gate_cs,
          gate_esp < esp0_top() && gate_esp >= esp0_top() - ESP0_STACK_SIZE ? "yes" : "no", gate_p0, gate_p1,
          gate_caller_cs, gate_caller_ss);
  printf_("  frame size on esp0: %u; back in cs=0x%x, user esp restored: %s\n", esp0_top() - gate_esp,
          last.eax & 0xffff, last.ebx == 0 ? "yes" : "no");
  gdt[SEL_GATE / 8] &= ~(3ull << 45);
  print_fault("ring 3 lcall through a dpl 0 call gate", user_probe(u_callgate, 0x202, (u32)far_ptr));
  gdt[SEL_GATE / 8] |= 3ull << 45;
  gdt[SEL_GATE / 8] &= ~(1ull << 47);
  print_fault("ring 3 lcall through a not-present call gate", user_probe(u_callgate, 0x202, (u32)far_ptr));
  gdt[SEL_GATE / 8] = 0;
}

static void sysenter_sysexit(void) {
  u32 a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
  printf_("cpuid 1: edx.sep=%u\n", (d >> 11) & 1);
  wrmsr(0x174, 0); /* IA32_SYSENTER_CS */
  print_fault("ring 3 sysenter with sysenter_cs=0", user_probe(u_sysenter, 0x202, 0));
  wrmsr(0x174, SEL_KCODE);
  wrmsr(0x175, (u32)(se_stack + sizeof se_stack));
  wrmsr(0x176, (u32)sysenter_entry);
  long v = user_probe(u_sysenter, 0x202, 0);
  print_fault("ring 3 sysenter, sysexit", v);
  printf_("  kernel cs=0x%x ss=0x%x esp is sysenter_esp: %s eflags.if=%u; user cs=0x%x ss=0x%x, esp - ecx = %d\n",
          se_cs, se_ss, se_esp == (u32)(se_stack + sizeof se_stack) ? "yes" : "no", (se_eflags >> 9) & 1,
          last.eax & 0xffff, last.ebx & 0xffff, (int)se_delta);
  print_fault("ring 3 sysexit", user_probe(u_sysexit, 0x202, 0));
}

static void ltr_busy(long sel) { __asm__ volatile("ltr %w0" ::"r"((u16)sel)); }
static void task_register(void) {
  u16 tr;
  __asm__ volatile("str %0" : "=r"(tr));
  printf_("str=0x%x, tss descriptor access byte 0x%x (busy)\n", tr, (u32)(gdt[SEL_TSS / 8] >> 40) & 0xff);
  print_fault("ltr of the busy tss", probe(ltr_busy, SEL_TSS));
  print_fault("ltr of a data segment", probe(ltr_busy, SEL_KDATA));
  print_fault("ltr of null", probe(ltr_busy, 0));
  gdt[SEL_TSS / 8] &= ~(2ull << 40); /* available again */
  print_fault("ltr of the tss made available", probe(ltr_busy, SEL_TSS));
  printf_("  access byte 0x%x\n", (u32)(gdt[SEL_TSS / 8] >> 40) & 0xff);
}

/* ---- paging ---- */
#define TEST_VA 0x40000000u
static u32 pd32[1024] __attribute__((aligned(4096)));
static u32 pt32_id[1024] __attribute__((aligned(4096)));
static u32 pt32_t[1024] __attribute__((aligned(4096)));
static u64 pdpt_pae[4] __attribute__((aligned(32)));
static u64 pd_pae0[512] __attribute__((aligned(4096)));
static u64 pd_pae1[512] __attribute__((aligned(4096)));
static u64 pt_pae[512] __attribute__((aligned(4096)));
enum { PG_A, PG_B, PG_X, PG_COUNT };
static u8 pages[PG_COUNT][4096] __attribute__((aligned(4096)));
enum { S_A, S_NP, S_RO, S_SUP, S_X, S_NX, S_RSVD, S_TLB };

static void fill_pages(void) {
  for (int i = 0; i < 1024; i++) {
    ((u32 *)pages[PG_A])[i] = 0xa0000000u + (u32)i;
    ((u32 *)pages[PG_B])[i] = 0xb0000000u + (u32)i;
  }
  pages[PG_X][0] = 0xc3; /* ret */
}
static void rd8(long a) { (void)*(volatile u8 *)a; BARRIER(); }
static void wr8(long a) { *(volatile u8 *)a = 0x5a; BARRIER(); }
static void call_at(long a) { ((void (*)(void))a)(); BARRIER(); }
static u32 peek32(u32 va) {
  u32 v = *(volatile u32 *)va;
  BARRIER();
  return v;
}
static long probe_u(void (*fn)(void), u32 va) { return user_probe(fn, 0x202, va); }
static const char *ad(u64 e) {
  static const char *const s[4] = {"--", "A-", "-D", "AD"};
  return s[((e >> 5) & 1) | (((e >> 6) & 1) << 1)];
}

/* Faults common to both paging modes: va(slot) is the slot's address. */
static void common_faults(u32 (*va)(int)) {
  print_fault("  read, not present", probe(rd8, (long)va(S_NP) + 0x10));
  print_fault("  write, not present", probe(wr8, (long)va(S_NP) + 0x11));
  print_fault("  fetch, not present", probe(call_at, (long)va(S_NP)));
  print_fault("  user read, not present", probe_u(u_read, va(S_NP) + 0x12));
  print_fault("  user read of a supervisor page", probe_u(u_read, va(S_SUP) + 0x13));
  print_fault("  user write to a supervisor page", probe_u(u_write, va(S_SUP) + 0x14));
  print_fault("  user write to a read-only page", probe_u(u_write, va(S_RO) + 0x15));
  u32 cr0 = rdcr0();
  wrcr0(cr0 & ~(u32)CR0_WP);
  print_fault("  cr0.wp=0: supervisor write to a read-only page", probe(wr8, (long)va(S_RO) + 0x16));
  wrcr0(cr0 | CR0_WP);
  print_fault("  cr0.wp=1: supervisor write to a read-only page", probe(wr8, (long)va(S_RO) + 0x17));
  wrcr0(cr0);
  print_fault("  fetch from an executable page", probe(call_at, (long)va(S_X)));
  fill_pages();
}

static u32 va32(int slot) { return TEST_VA + (u32)slot * 4096; }
static void paging32(void) {
  for (u32 i = 0; i < 1024; i++) pt32_id[i] = (i << 12) | PTE_P | PTE_W | PTE_U;
  pd32[0] = (u32)pt32_id | PTE_P | PTE_W | PTE_U;
  pd32[TEST_VA >> 22] = (u32)pt32_t | PTE_P | PTE_W | PTE_U;
  pd32[(TEST_VA >> 22) + 1] = 0 | PTE_PS | PTE_P | PTE_W | PTE_U;          /* 4 MiB page at 0 */
  pd32[(TEST_VA >> 22) + 2] = (1u << 21) | PTE_PS | PTE_P | PTE_W | PTE_U; /* bit 21 reserved */
  pd32[(TEST_VA >> 22) + 3] = (u32)pt32_t | PTE_P | PTE_W;                  /* supervisor PDE */
  pt32_t[S_A] = (u32)pages[PG_A] | PTE_P | PTE_W | PTE_U;
  pt32_t[S_RO] = (u32)pages[PG_A] | PTE_P | PTE_U;
  pt32_t[S_SUP] = (u32)pages[PG_A] | PTE_P | PTE_W;
  pt32_t[S_X] = (u32)pages[PG_X] | PTE_P | PTE_W | PTE_U;
  fill_pages();
  *(volatile u32 *)(0x400000 + (u32)pages[PG_B] + 0x44) = 0x4b4b4b4bu;

  wrcr4(rdcr4() & ~(u32)(CR4_PSE | CR4_PAE | CR4_PGE));
  wrcr3((u32)pd32);
  wrcr0(rdcr0() | CR0_PG | CR0_WP);
  printf_("32-bit paging on: cr0&(pg|wp|pe)=0x%x cr4&(pse|pae)=0x%x\n", rdcr0() & 0x80010001, rdcr4() & 0x30);
  printf_("  4k page read: 0x%x\n", peek32(va32(S_A) + 0x20));
  common_faults(va32);
  print_fault("  user read through a supervisor pde", probe_u(u_read, TEST_VA + 0xc00000 + 0x18));

  u32 *pde = &pd32[TEST_VA >> 22], *pte = &pt32_t[S_A];
  *pde &= ~(u32)(PTE_A | PTE_D), *pte &= ~(u32)(PTE_A | PTE_D), wrcr3(rdcr3());
  rd8((long)va32(S_A));
  printf_("  4k read: pde %s pte %s\n", ad(*pde), ad(*pte));
  wr8((long)va32(S_A) + 1);
  printf_("  4k write: pde %s pte %s\n", ad(*pde), ad(*pte));
  fill_pages();

  wrcr4(rdcr4() | CR4_PSE);
  u32 *pde4m = &pd32[(TEST_VA >> 22) + 1];
  *pde4m &= ~(u32)(PTE_A | PTE_D), wrcr3(rdcr3());
  printf_("cr4.pse=1: 4m page read: 0x%x\n", peek32(TEST_VA + 0x400000 + (u32)pages[PG_B] + 0x24));
  printf_("  4m pde after a read: %s\n", ad(*pde4m));
  wr8((long)(TEST_VA + 0x400000 + (u32)pages[PG_B] + 0x30));
  printf_("  4m pde after a write: %s\n", ad(*pde4m));
  fill_pages();
  print_fault("  read, 4m pde bit 21 set", probe(rd8, (long)(TEST_VA + 0x800000 + 0x19)));
  /* INVLPG of any address in a 4 MiB page invalidates the whole page (SDM 4.10.4.1). */
  u32 off = (u32)pages[PG_B] + 0x44; /* the marker at physical 4 MiB + off was written before paging */
  u32 before = peek32(TEST_VA + 0x400000 + off);
  *pde4m = 0x400000 | PTE_PS | PTE_P | PTE_W | PTE_U;
  invlpg(TEST_VA + 0x400000 + 0x3ff000);
  printf_("  4m pde changed, invlpg of another 4k of the page: 0x%x then 0x%x\n", before,
          peek32(TEST_VA + 0x400000 + off));
  wrcr0(rdcr0() & ~(u32)CR0_PG);
  wrcr4(rdcr4() & ~(u32)CR4_PSE);
  printf_("paging off: cr0.pg=%u\n", rdcr0() >> 31);
}

static void load_cr3(long v) { wrcr3((u32)v); }
static u32 va_pae(int slot) { return TEST_VA + (u32)slot * 4096; }
static void paging_pae(void) {
  pdpt_pae[0] = (u32)pd_pae0 | PTE_P;
  pdpt_pae[1] = (u32)pd_pae1 | PTE_P;
  pd_pae0[0] = 0 | PTE_PS | PTE_P | PTE_W | PTE_U;  /* 0..2 MiB, the image */
  pd_pae1[0] = (u32)pt_pae | PTE_P | PTE_W | PTE_U; /* 1 GiB: 4K slots */
  pd_pae1[1] = 0 | PTE_PS | PTE_P | PTE_W | PTE_U;  /* 1 GiB + 2 MiB: 2 MiB page at 0 */
  pd_pae1[2] = (1ull << 13) | PTE_PS | PTE_P | PTE_W | PTE_U;
  pd_pae1[3] = (u32)pt_pae | PTE_P | PTE_W | PTE_U | (1ull << 63); /* XD on the PDE */
  pt_pae[S_A] = (u32)pages[PG_A] | PTE_P | PTE_W | PTE_U;
  pt_pae[S_RO] = (u32)pages[PG_A] | PTE_P | PTE_U;
  pt_pae[S_SUP] = (u32)pages[PG_A] | PTE_P | PTE_W;
  pt_pae[S_X] = (u32)pages[PG_X] | PTE_P | PTE_W | PTE_U;
  pt_pae[S_NX] = (u32)pages[PG_X] | PTE_P | PTE_W | PTE_U | (1ull << 63);
  pt_pae[S_RSVD] = (u32)pages[PG_A] | PTE_P | PTE_W | PTE_U | (1ull << 51);
  fill_pages();

  u32 a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000001), "c"(0));
  printf_("cpuid 0x80000001: edx.nx=%u\n", (d >> 20) & 1);
  wrcr4(rdcr4() | CR4_PAE);
  wrcr3((u32)pdpt_pae);
  wrcr0(rdcr0() | CR0_PG | CR0_WP);
  printf_("pae paging on: cr0&(pg|wp|pe)=0x%x cr4&(pse|pae)=0x%x efer.nxe=%u\n", rdcr0() & 0x80010001,
          rdcr4() & 0x30, (u32)(rdmsr(MSR_EFER) >> 11) & 1);
  printf_("  4k page read: 0x%x\n", peek32(va_pae(S_A) + 0x20));
  printf_("  2m page read: 0x%x\n", peek32(TEST_VA + 0x200000 + (u32)pages[PG_B] + 0x24));
  common_faults(va_pae);
  print_fault("  efer.nxe=0: read of a page with bit 63 set", probe(rd8, (long)va_pae(S_NX) + 0x1a));
  print_fault("  read, pte bit 51 set", probe(rd8, (long)va_pae(S_RSVD) + 0x1b));
  print_fault("  write, pte bit 51 set", probe(wr8, (long)va_pae(S_RSVD) + 0x1c));
  print_fault("  read, 2m pde bit 13 set", probe(rd8, (long)(TEST_VA + 0x400000 + 0x1d)));
  wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
  wrcr3(rdcr3()); /* WRMSR is not a TLB invalidation (SDM 4.10.4.1) */
  print_fault("  efer.nxe=1: fetch, not present", probe(call_at, (long)va_pae(S_NP)));
  print_fault("  efer.nxe=1: fetch from an xd page", probe(call_at, (long)va_pae(S_NX)));
  print_fault("  efer.nxe=1: read of an xd page", probe(rd8, (long)va_pae(S_NX) + 0x1e));
  print_fault("  efer.nxe=1: fetch through an xd pde", probe(call_at, (long)(TEST_VA + 0x600000 + S_X * 4096)));
  print_fault("  efer.nxe=1: user fetch from an xd page", probe_u(u_fetch, va_pae(S_NX)));
  wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~(u64)EFER_NXE);
  wrcr3(rdcr3());

  /* PAE PDPTEs are loaded by MOV CR3: a present one with a reserved bit (R/W, bit 1) is #GP(0) (SDM 4.4.1). */
  pdpt_pae[2] = (u32)pd_pae1 | PTE_P | PTE_W;
  print_fault("  mov cr3, a pdpte with reserved bit 1", probe(load_cr3, (long)pdpt_pae));
  pdpt_pae[2] = 0;
  wrcr3((u32)pdpt_pae);
  /* The PDPTE registers, not memory, translate until the next MOV CR3 (SDM 4.4.1). */
  pdpt_pae[1] = 0;
  print_fault("  pdpte cleared in memory, no mov cr3: read", probe(rd8, (long)va_pae(S_A) + 0x1f));
  pdpt_pae[1] = (u32)pd_pae1 | PTE_P;
  wrcr3((u32)pdpt_pae);

  u64 *pdpte = &pdpt_pae[1], *pde = &pd_pae1[0], *pte = &pt_pae[S_A];
  *pde &= ~(u64)(PTE_A | PTE_D), *pte &= ~(u64)(PTE_A | PTE_D), wrcr3(rdcr3());
  wr8((long)va_pae(S_A) + 1);
  printf_("  4k write: pdpte 0x%x pde %s pte %s\n", (u32)*pdpte & 0xfff, ad(*pde), ad(*pte));
  fill_pages();
  wrcr0(rdcr0() & ~(u32)CR0_PG);
  wrcr4(rdcr4() & ~(u32)CR4_PAE);
  printf_("paging off: cr0.pg=%u\n", rdcr0() >> 31);
}

int main(void) {
  puts_("cputests protected: 32-bit protected mode\n");
  interrupts();
  segment_limits();
  ring3();
  call_gate();
  sysenter_sysexit();
  task_register();
  paging32();
  paging_pae();
  puts_("done\n");
  return 0;
}
