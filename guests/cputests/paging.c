/*
 * paging: 4-level paging (SDM Vol. 3A 4.5-4.10). 4 KiB, 2 MiB and 1 GiB pages; accessed and dirty
 * flags at each level; #PF error codes and CR2 for not-present, read-only (CR0.WP), user/supervisor,
 * execute-disable, reserved bits, SMEP and SMAP (with RFLAGS.AC); instruction fetches and data
 * accesses that cross into an unmapped page; and only the TLB behaviour the architecture guarantees:
 * INVLPG, MOV CR3, CR4.PGE toggles, #PF invalidation, and no caching of not-present entries.
 *
 * The runtime's identity map stays in PML4[0]; everything tested lives under PML4[1] (TEST_BASE),
 * built from the tables below, so the code, stacks and handlers never depend on what is tested.
 */
#include "rt64.h"

#define TEST_BASE 0x8000000000ull    /* PML4[1] */
#define PS_RSVD_BASE 0x10000000000ull /* PML4[2]: a PML4E with PS set (reserved) */
#define GIB 0x40000000ull
#define MIB2 0x200000ull
#define PTE_XD (1ull << 63)
#define PTE_RSVD51 (1ull << 51) /* above any MAXPHYADDR up to 51 */
#define PTE_LARGE_RSVD13 (1ull << 13) /* 2 MiB / 1 GiB leaf: address bits below the page size */
#define PTE_PWT 0x8
#define PTE_PCD 0x10
#define ADDR_MASK 0x000ffffffffff000ull

/* Virtual addresses under TEST_BASE. */
#define V1G(phys) (TEST_BASE + (u64)(phys))                  /* PDPT[0]: 1 GiB page at physical 0 */
#define V1G_RSVD (TEST_BASE + 2 * GIB)                       /* PDPT[2]: 1 GiB page, bit 13 set */
#define VPD(i) (TEST_BASE + GIB + (u64)(i) * MIB2)           /* PDPT[1] -> pd_t: PD[i] */
#define V2M(phys) (VPD(0) + (u64)(phys))                     /* PD[0]: 2 MiB page at physical 0 */
#define V4K(slot) (VPD(1) + (u64)(slot) * 4096)              /* PD[1] -> pt_t: PT[slot] */
#define VPT_VIA(pdi, slot) (VPD(pdi) + (u64)(slot) * 4096)   /* PD[pdi] -> the same pt_t */

/* PT slots. */
enum { S_A, S_NP, S_URO, S_SUP, S_NX, S_X, S_X_NEXT, S_RSVD, S_TLB, S_GLOBAL, S_SRO, S_AD, S_W, S_W_NEXT, S_XC, S_XC_NEXT, S_CODE, S_CODE_W, S_GAP, S_BK };
/* PD entries. */
enum { PD_2M, PD_PT, PD_2M_RSVD, PD_PT_RSVD, PD_PT_NX, PD_PT_SUP, PD_PT_RO, PD_2M_AD, PD_2M_TLB };

static u64 pdpt_t[512] __attribute__((aligned(4096)));
static u64 pd_t[512] __attribute__((aligned(4096)));
static u64 pt_t[512] __attribute__((aligned(4096)));
enum { PG_A, PG_B, PG_C, PG_X, PG_W, PG_CODE, PG_COUNT };
static u8 pages[PG_COUNT][4096] __attribute__((aligned(4096)));
/* Two 2 MiB-aligned physical frames would not fit in the image: 2 MiB pages map physical 0 and 2 MiB. */

#define FN(name) extern void name(void)
/* ---- ring-3 snippets (position-independent, each ends with INT 0x80), address in RDI ---- */
__asm__(".text\n"
        "u_read: mov (%rdi), %al\n int $0x80\n"
        "u_write: movb $0x77, (%rdi)\n int $0x80\n"
        "u_fetch: call *%rdi\n int $0x80\n");
FN(u_read); FN(u_write); FN(u_fetch);

/* ---- string instructions (operands in str_*) ---- */
u64 str_src, str_dst, str_cnt;
__asm__(".text\n"
        "k_rep_stosb: mov str_dst(%rip), %rdi\n mov str_cnt(%rip), %rcx\n mov $0x5a, %al\n cld\n rep stosb\n ret\n"
        "k_rep_stosb_down: mov str_dst(%rip), %rdi\n mov str_cnt(%rip), %rcx\n mov $0x6b, %al\n std\n rep stosb\n"
        "  cld\n ret\n"
        "k_rep_movsq: mov str_src(%rip), %rsi\n mov str_dst(%rip), %rdi\n mov str_cnt(%rip), %rcx\n cld\n rep movsq\n"
        "  ret\n"
        "k_rep_movsl: mov str_src(%rip), %rsi\n mov str_dst(%rip), %rdi\n mov str_cnt(%rip), %rcx\n cld\n rep movsl\n"
        "  ret\n");
FN(k_rep_stosb); FN(k_rep_stosb_down); FN(k_rep_movsq); FN(k_rep_movsl);

/* The CPU writes the paging structures (A and D flags): the compiler must reload them after an access. */
#define BARRIER() __asm__ volatile("" ::: "memory")
static void rd8(long a) { (void)*(volatile u8 *)a; BARRIER(); }
static void wr8(long a) { *(volatile u8 *)a = 0x5a; BARRIER(); }
static void rd32(long a) { (void)*(volatile u32 *)a; BARRIER(); }
static void wr32(long a) { *(volatile u32 *)a = 0x11223344; BARRIER(); }
static void call_at(long a) { ((void (*)(void))a)(); BARRIER(); }
static u64 pa(const void *p) { return (u64)p; } /* the image is identity-mapped */

static void flush_all(void) { wrcr3(rdcr3()); }
static u32 peek32(u64 va) {
  u32 v = *(volatile u32 *)va;
  BARRIER();
  return v;
}
static long probe_u(void (*fn)(void), u64 va) { return user_probe(fn, 0x202, va); }

/* Distinct, known contents: a read tells which physical page a translation reached. */
static void fill_pages(void) {
  for (int i = 0; i < 1024; i++) {
    ((u32 *)pages[PG_A])[i] = 0xa0000000u + (u32)i;
    ((u32 *)pages[PG_B])[i] = 0xb0000000u + (u32)i;
    ((u32 *)pages[PG_C])[i] = 0xc0000000u + (u32)i;
  }
}

static void setup(void) {
  pml4[1] = pa(pdpt_t) | PTE_P | PTE_W | PTE_U;
  pml4[2] = pa(pdpt_t) | PTE_P | PTE_W | PTE_U | PTE_PS;
  pdpt_t[0] = 0 | PTE_P | PTE_W | PTE_U | PTE_PS;
  pdpt_t[1] = pa(pd_t) | PTE_P | PTE_W | PTE_U;
  pdpt_t[2] = GIB | PTE_LARGE_RSVD13 | PTE_P | PTE_W | PTE_U | PTE_PS;
  pd_t[PD_2M] = 0 | PTE_P | PTE_W | PTE_U | PTE_PS;
  pd_t[PD_PT] = pa(pt_t) | PTE_P | PTE_W | PTE_U;
  pd_t[PD_2M_RSVD] = 0 | PTE_LARGE_RSVD13 | PTE_P | PTE_W | PTE_U | PTE_PS;
  pd_t[PD_PT_RSVD] = pa(pt_t) | PTE_RSVD51 | PTE_P | PTE_W | PTE_U;
  pd_t[PD_PT_NX] = pa(pt_t) | PTE_XD | PTE_P | PTE_W | PTE_U;
  pd_t[PD_PT_SUP] = pa(pt_t) | PTE_P | PTE_W;
  pd_t[PD_PT_RO] = pa(pt_t) | PTE_P | PTE_U;
  pd_t[PD_2M_AD] = 0 | PTE_P | PTE_W | PTE_U | PTE_PS;
  pt_t[S_A] = pa(pages[PG_A]) | PTE_P | PTE_W | PTE_U;
  pt_t[S_URO] = pa(pages[PG_A]) | PTE_P | PTE_U;
  pt_t[S_SUP] = pa(pages[PG_A]) | PTE_P | PTE_W;
  pt_t[S_NX] = pa(pages[PG_X]) | PTE_XD | PTE_P | PTE_W | PTE_U;
  pt_t[S_X] = pa(pages[PG_X]) | PTE_P | PTE_W | PTE_U;
  pt_t[S_RSVD] = pa(pages[PG_A]) | PTE_RSVD51 | PTE_P | PTE_W | PTE_U;
  pt_t[S_SRO] = pa(pages[PG_A]) | PTE_P;
  pt_t[S_W] = pa(pages[PG_W]) | PTE_P | PTE_W;
  fill_pages();
  pages[PG_X][0] = 0xc3; /* ret */
  /* At the end of PG_X: MOV EAX, imm32 (5 bytes) starting 2 bytes before the page boundary. */
  pages[PG_X][4094] = 0xb8;
  pages[PG_X][4095] = 0x01;
  flush_all();
}

static void sizes(void) {
  u32 a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000001), "c"(0));
  printf_("cpuid 0x80000001 edx.pdpe1gb=%u\n", (d >> 26) & 1);
  u64 o = 0x124;
  printf_("4k page read: 0x%x\n", peek32(V4K(S_A) + o));
  printf_("2m page read: 0x%x\n", peek32(V2M(pa(pages[PG_B])) + o));
  printf_("1g page read: 0x%x\n", peek32(V1G(pa(pages[PG_C])) + o));
  *(volatile u32 *)(V1G(pa(pages[PG_C])) + 0x10) = 0x1badf00d;
  *(volatile u32 *)(V2M(pa(pages[PG_C])) + 0x14) = 0x2badf00d;
  *(volatile u32 *)(V4K(S_A) + 0x18) = 0x3badf00d;
  printf_("writes through 1g, 2m, 4k pages seen at the physical pages: 0x%x 0x%x 0x%x\n",
          ((u32 *)pages[PG_C])[4], ((u32 *)pages[PG_C])[5], ((u32 *)pages[PG_A])[6]);
  fill_pages();
}

static const char *ad(u64 e) {
  static const char *const s[4] = {"--", "A-", "-D", "AD"};
  return s[((e >> 5) & 1) | (((e >> 6) & 1) << 1)];
}
static void clear_ad(u64 *e) { *e &= ~(u64)(PTE_A | PTE_D); }

static void accessed_dirty(void) {
  u64 *l4 = &pml4[1], *l3 = &pdpt_t[1], *l2 = &pd_t[PD_PT], *l1 = &pt_t[S_AD];
  *l1 = pa(pages[PG_A]) | PTE_P | PTE_W | PTE_U;
  clear_ad(l4), clear_ad(l3), clear_ad(l2), flush_all();
  printf_("before access: pml4e %s pdpte %s pde %s pte %s\n", ad(*l4), ad(*l3), ad(*l2), ad(*l1));
  rd8((long)V4K(S_AD));
  printf_("4k read: pml4e %s pdpte %s pde %s pte %s\n", ad(*l4), ad(*l3), ad(*l2), ad(*l1));
  wr8((long)V4K(S_AD) + 1);
  printf_("4k write after a read (translation cached clean): pte %s\n", ad(*l1));
  clear_ad(l4), clear_ad(l3), clear_ad(l2), clear_ad(l1), flush_all();
  wr8((long)V4K(S_AD) + 1);
  printf_("4k write: pml4e %s pdpte %s pde %s pte %s\n", ad(*l4), ad(*l3), ad(*l2), ad(*l1));

  u64 *p2 = &pd_t[PD_2M_AD];
  clear_ad(l4), clear_ad(l3), clear_ad(p2), flush_all();
  rd8((long)(VPD(PD_2M_AD) + pa(pages[PG_A])));
  printf_("2m read: pml4e %s pdpte %s pde %s\n", ad(*l4), ad(*l3), ad(*p2));
  wr8((long)(VPD(PD_2M_AD) + pa(pages[PG_A])) + 1);
  printf_("2m write: pde %s\n", ad(*p2));

  u64 *p1 = &pdpt_t[0];
  clear_ad(l4), clear_ad(p1), flush_all();
  rd8((long)V1G(pa(pages[PG_A])));
  printf_("1g read: pml4e %s pdpte %s\n", ad(*l4), ad(*p1));
  wr8((long)V1G(pa(pages[PG_A])) + 1);
  printf_("1g write: pdpte %s\n", ad(*p1));

  /* A fault on a not-present PTE sets no A or D flag in it (SDM 4.8: only entries used to translate). */
  clear_ad(l1), *l1 &= ~(u64)PTE_P, flush_all();
  print_fault("read of a not-present pte", probe(rd8, (long)V4K(S_AD)));
  printf_("  pte %s\n", ad(*l1));
  /* A write fault on a read-only PTE does not set its D flag. */
  *l1 = pa(pages[PG_A]) | PTE_P | PTE_U, flush_all();
  print_fault("write to a read-only pte", probe(wr8, (long)V4K(S_AD)));
  printf_("  pte.d=%llu\n", (*l1 >> 6) & 1); /* whether A is set by a faulting access is model-specific */
  fill_pages();
}

static void faults(void) {
  print_fault("supervisor read, pte not present", probe(rd8, (long)V4K(S_NP) + 0x123));
  print_fault("supervisor write, pte not present", probe(wr8, (long)V4K(S_NP) + 0x456));
  print_fault("supervisor read, pml4e not present", probe(rd8, (long)(TEST_BASE * 3 + 0x10)));
  print_fault("supervisor read, pdpte not present", probe(rd8, (long)(TEST_BASE + 5 * GIB + 8)));
  print_fault("supervisor read, pde not present", probe(rd8, (long)(VPD(100) + 0x20)));
  print_fault("supervisor fetch, pte not present", probe(call_at, (long)V4K(S_NP)));
  printf_("  rip is the target: %s\n", last.rip == V4K(S_NP) ? "yes" : "no");

  /* CR0.WP: supervisor writes to read-only pages (user and supervisor). */
  u64 cr0 = rdcr0();
  wrcr0(cr0 & ~(u64)CR0_WP);
  print_fault("cr0.wp=0: supervisor write to a read-only supervisor page", probe(wr8, (long)V4K(S_SRO) + 3));
  print_fault("cr0.wp=0: supervisor write to a read-only user page", probe(wr8, (long)V4K(S_URO) + 4));
  print_fault("cr0.wp=0: supervisor write through a read-only pde", probe(wr8, (long)VPT_VIA(PD_PT_RO, S_A) + 5));
  print_fault("cr0.wp=0: user write to a read-only user page", probe_u(u_write, V4K(S_URO) + 6));
  wrcr0(cr0 | CR0_WP);
  print_fault("cr0.wp=1: supervisor write to a read-only supervisor page", probe(wr8, (long)V4K(S_SRO) + 3));
  print_fault("cr0.wp=1: supervisor write to a read-only user page", probe(wr8, (long)V4K(S_URO) + 4));
  print_fault("cr0.wp=1: supervisor write through a read-only pde", probe(wr8, (long)VPT_VIA(PD_PT_RO, S_A) + 5));
  print_fault("cr0.wp=1: user write to a read-only user page", probe_u(u_write, V4K(S_URO) + 6));
  fill_pages();

  /* User/supervisor. */
  print_fault("user read of a user page", probe_u(u_read, V4K(S_A) + 7));
  print_fault("user read of a supervisor page", probe_u(u_read, V4K(S_SUP) + 8));
  print_fault("user write to a supervisor page", probe_u(u_write, V4K(S_SUP) + 9));
  print_fault("user read through a supervisor pde", probe_u(u_read, VPT_VIA(PD_PT_SUP, S_A) + 10));
  print_fault("user read, pte not present", probe_u(u_read, V4K(S_NP) + 11));
  print_fault("user fetch from a supervisor page", probe_u(u_fetch, V4K(S_SUP)));
  fill_pages();

  /* Execute-disable (EFER.NXE=1 from the runtime). */
  print_fault("fetch from an executable page", probe(call_at, (long)V4K(S_X)));
  print_fault("fetch from an xd page", probe(call_at, (long)V4K(S_NX)));
  printf_("  rip is the target: %s\n", last.rip == V4K(S_NX) ? "yes" : "no");
  print_fault("read of an xd page", probe(rd8, (long)V4K(S_NX)));
  print_fault("fetch through an xd pde", probe(call_at, (long)VPT_VIA(PD_PT_NX, S_X)));
  print_fault("user fetch from an xd page", probe_u(u_fetch, V4K(S_NX)));

  /* Reserved bits: P=1 and RSVD=1 in the error code. */
  print_fault("read, pte bit 51 set", probe(rd8, (long)V4K(S_RSVD) + 12));
  print_fault("write, pte bit 51 set", probe(wr8, (long)V4K(S_RSVD) + 13));
  print_fault("user read, pte bit 51 set", probe_u(u_read, V4K(S_RSVD) + 14));
  print_fault("read through a pde with bit 51 set", probe(rd8, (long)VPT_VIA(PD_PT_RSVD, S_A) + 15));
  print_fault("read, 2m pde bit 13 set", probe(rd8, (long)VPD(PD_2M_RSVD) + 16));
  print_fault("read, 1g pdpte bit 13 set", probe(rd8, (long)V1G_RSVD + 17));
  print_fault("read, pml4e ps set", probe(rd8, (long)PS_RSVD_BASE + 18));
  print_fault("fetch, pte bit 51 set", probe(call_at, (long)V4K(S_RSVD)));
  /* With EFER.NXE=0, bit 63 is reserved; and a fetch fault reports I/D=0 without SMEP (SDM 4.7). */
  u64 efer = rdmsr(MSR_EFER);
  wrmsr(MSR_EFER, efer & ~(u64)EFER_NXE);
  flush_all(); /* WRMSR to EFER is not among the operations that invalidate TLBs (SDM 4.10.4.1) */
  print_fault("efer.nxe=0: read of a page with bit 63 set", probe(rd8, (long)V4K(S_NX) + 19));
  print_fault("efer.nxe=0: fetch, pte not present", probe(call_at, (long)V4K(S_NP)));
  wrmsr(MSR_EFER, efer);
  flush_all();

  /* Crossing into an unmapped page: CR2 is the first byte that cannot be accessed. */
  u32 saved = ((u32 *)pages[PG_X])[0];
  print_fault("fetch of an instruction that crosses into a not-present page", probe(call_at, (long)V4K(S_X) + 4094));
  printf_("  rip is the instruction: %s\n", last.rip == V4K(S_X) + 4094 ? "yes" : "no");
  pt_t[S_XC] = pa(pages[PG_X]) | PTE_P | PTE_W;
  pt_t[S_XC_NEXT] = pa(pages[PG_C]) | PTE_XD | PTE_P | PTE_W;
  flush_all();
  print_fault("fetch of an instruction that crosses into an xd page", probe(call_at, (long)V4K(S_XC) + 4094));
  print_fault("4-byte read crossing into a not-present page", probe(rd32, (long)V4K(S_X) + 4094));
  print_fault("4-byte write crossing into a not-present page", probe(wr32, (long)V4K(S_W) + 4094));
  printf_("  first page left unwritten: %s\n", pages[PG_W][4094] == 0 && pages[PG_W][4095] == 0 ? "yes" : "no");
  pt_t[S_W_NEXT] = pa(pages[PG_C]) | PTE_P | PTE_U;
  flush_all();
  print_fault("4-byte write crossing into a read-only page", probe(wr32, (long)V4K(S_W) + 4094));
  printf_("  first page left unwritten: %s\n", pages[PG_W][4094] == 0 && pages[PG_W][4095] == 0 ? "yes" : "no");
  pt_t[S_W_NEXT] = 0;
  flush_all();
  ((u32 *)pages[PG_X])[0] = saved;
}

static void smep_smap(void) {
  extern void user_ret(void);
  __asm__ volatile(".pushsection .text\n user_ret: ret\n .popsection");
  u64 uva = (u64)user_ret + USER_ALIAS; /* the runtime's user alias of the image */
  u64 cr4 = rdcr4();
  print_fault("cr4.smep=0: supervisor fetch from a user page", probe(call_at, (long)uva));
  wrcr4(cr4 | CR4_SMEP);
  print_fault("cr4.smep=1: supervisor fetch from a user page", probe(call_at, (long)uva));
  printf_("  cr2 is the target: %s\n", last.cr2 == uva ? "yes" : "no");
  print_fault("cr4.smep=1: supervisor read of a user page", probe(rd8, (long)V4K(S_A)));
  print_fault("cr4.smep=1: user fetch from a user page", probe_u(u_fetch, V4K(S_X)));
  wrcr4(cr4);

  print_fault("cr4.smap=0: supervisor read of a user page", probe(rd8, (long)V4K(S_A) + 0x20));
  wrcr4(cr4 | CR4_SMAP);
  __asm__ volatile("clac");
  print_fault("cr4.smap=1 ac=0: supervisor read of a user page", probe(rd8, (long)V4K(S_A) + 0x21));
  print_fault("cr4.smap=1 ac=0: supervisor write to a user page", probe(wr8, (long)V4K(S_A) + 0x22));
  print_fault("cr4.smap=1 ac=0: supervisor read of a supervisor page", probe(rd8, (long)V4K(S_SUP) + 0x23));
  print_fault("cr4.smap=1 ac=0: supervisor fetch from a user page", probe(call_at, (long)V4K(S_X)));
  print_fault("cr4.smap=1 ac=0: user read of a user page", probe_u(u_read, V4K(S_A) + 0x24));
  __asm__ volatile("stac");
  print_fault("cr4.smap=1 stac: supervisor read of a user page", probe(rd8, (long)V4K(S_A) + 0x25));
  print_fault("cr4.smap=1 stac: supervisor write to a user page", probe(wr8, (long)V4K(S_A) + 0x26));
  __asm__ volatile("clac");
  print_fault("cr4.smap=1 clac: supervisor read of a user page", probe(rd8, (long)V4K(S_A) + 0x27));
  __asm__ volatile("pushf; orl $0x40000, (%%rsp); popf" ::: "memory", "cc");
  print_fault("cr4.smap=1 ac=1 by popf: supervisor read of a user page", probe(rd8, (long)V4K(S_A) + 0x28));
  __asm__ volatile("clac");
  wrcr4(cr4);
  fill_pages();
}

/* MOV EAX, imm32; RET at the start of PG_CODE, written through a second (writable) mapping. */
static u32 code_alias(u32 imm) {
  volatile u8 *w = (volatile u8 *)V4K(S_CODE_W);
  w[0] = 0xb8;
  for (int i = 0; i < 4; i++) w[1 + i] = (u8)(imm >> (8 * i));
  w[5] = 0xc3;
  u32 r = ((u32(*)(void))V4K(S_CODE))();
  BARRIER();
  return r;
}

static void modified_code(void) {
  pt_t[S_CODE] = pa(pages[PG_CODE]) | PTE_P;
  pt_t[S_CODE_W] = pa(pages[PG_CODE]) | PTE_P | PTE_W | PTE_XD;
  flush_all();
  u32 first = code_alias(0x11111111);
  u32 second = code_alias(0x22222222);
  printf_("code written through an alias mapping, then run: 0x%x then 0x%x\n", first, second);
  print_fault("fetch from the xd alias", probe(call_at, (long)V4K(S_CODE_W)));
}

/* A #PF in the middle of a REP string instruction leaves RCX/RSI/RDI at the faulting element. */
static u64 f_rcx, f_rsi, f_rdi;
static void capture_and_leave(struct frame *f) {
  __asm__ volatile("cld"); /* the interrupted code may have set DF */
  f_rcx = f->rcx, f_rsi = f->rsi, f_rdi = f->rdi;
  probe_return((long)f->vec);
}
static long str_probe(void (*fn)(void), u64 src, u64 dst, u64 cnt) {
  str_src = src, str_dst = dst, str_cnt = cnt;
  f_rcx = f_rsi = f_rdi = 0;
  resume_vec[14] = 1;
  resume_hook = capture_and_leave;
  long v = probe((void (*)(long))fn, 0);
  resume_vec[14] = 0;
  resume_hook = 0;
  __asm__ volatile("cld");
  return v;
}
static int all_bytes(const u8 *p, u32 n, u8 v) {
  for (u32 i = 0; i < n; i++)
    if (p[i] != v) return 0;
  return 1;
}

static void strings(void) {
  pt_t[S_W] = pa(pages[PG_W]) | PTE_P | PTE_W;
  pt_t[S_W_NEXT] = 0;
  pt_t[S_GAP] = 0;
  pt_t[S_BK] = pa(pages[PG_B]) | PTE_P | PTE_W;
  flush_all();
  for (int i = 0; i < 4096; i++) pages[PG_W][i] = 0;
  long v = str_probe(k_rep_stosb, 0, V4K(S_W) + 0x800, 0x2000);
  print_fault("rep stosb 0x2000 bytes from 0x800 into a not-present page", v);
  printf_("  rcx=0x%llx, rdi at the next page: %s, bytes up to the boundary written: %s\n", f_rcx,
          f_rdi == V4K(S_W_NEXT) ? "yes" : "no", all_bytes(pages[PG_W] + 0x800, 0x800, 0x5a) ? "yes" : "no");
  v = str_probe(k_rep_stosb_down, 0, V4K(S_BK) + 0xf, 0x20);
  print_fault("rep stosb df=1, 0x20 bytes down from 0xf into a not-present page", v);
  printf_("  rcx=0x%llx, rdi is the byte below the page: %s, bytes 0..0xf written: %s\n", f_rcx,
          f_rdi == V4K(S_BK) - 1 ? "yes" : "no", all_bytes(pages[PG_B], 0x10, 0x6b) ? "yes" : "no");
  v = str_probe(k_rep_movsq, V4K(S_A) + 0xfe0, V4K(S_W), 8);
  print_fault("rep movsq 8 qwords, source runs into a not-present page", v);
  printf_("  rcx=0x%llx, rsi at the next page: %s, rdi advanced by 0x%llx, copied: 0x%x 0x%x\n", f_rcx,
          f_rsi == V4K(S_NP) ? "yes" : "no", f_rdi - V4K(S_W), ((u32 *)pages[PG_W])[0], ((u32 *)pages[PG_W])[7]);
  v = str_probe(k_rep_movsl, V4K(S_A) + 0xffe, V4K(S_W) + 0x100, 4);
  print_fault("rep movsd, the first dword crosses into a not-present page", v);
  printf_("  rcx=0x%llx, rsi unchanged: %s, rdi unchanged: %s\n", f_rcx, f_rsi == V4K(S_A) + 0xffe ? "yes" : "no",
          f_rdi == V4K(S_W) + 0x100 ? "yes" : "no");
  print_fault("rep stosb with rcx=0 at a not-present page", str_probe(k_rep_stosb, 0, V4K(S_NP), 0));
  fill_pages();
}

/* Faults while delivering an event: the frame goes to a not-present stack (SDM 6.14.4, 6.15 #DF). */
__asm__(".text\n k_int42: int $0x42\n ret\n");
FN(k_int42);
static u64 *tss_ist(int n) {
  u16 tr;
  __asm__ volatile("str %0" : "=r"(tr));
  u64 d = gdt[tr / 8];
  u64 base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24) | (gdt[tr / 8 + 1] << 32);
  return (u64 *)(base + 36 + 8 * (u64)(n - 1)); /* IST1 at offset 0x24 (SDM Figure 8-11) */
}

static void delivery(void) {
  u64 top = V4K(S_NP) + 0x1000;
  *tss_ist(2) = top;
  set_gate(0x42, stub_of(0x42), 0xe, 0, 2);
  long v = probe((void (*)(long))k_int42, 0);
  /* Which push of the frame faults first is model-specific: CR2 is only checked to be inside the frame. */
  printf_("int 0x42 with its ist stack not present: vector %ld err=0x%llx, cr2 inside the 40-byte frame: %s\n", v,
          last.err, last.cr2 >= top - 40 && last.cr2 < top ? "yes" : "no");
  set_gate(14, stub_of(14), 0xe, 0, 2);
  set_gate(8, stub_of(8), 0xe, 0, 1);
  v = probe((void (*)(long))k_int42, 0);
  print_fault("the same, #PF delivered on the same ist stack", v);
  printf_("  #DF frame on ist1: %s\n", last.frame + 22 * 8 == ist1_top() ? "yes" : "no");
  set_gate(14, stub_of(14), 0xe, 0, 0);
  set_gate(8, stub_of(8), 0xe, 0, 0);
  set_gate(0x42, stub_of(0x42), 0xe, 0, 0);
  *tss_ist(2) = 0;
}

static void tlb(void) {
  /* INVLPG makes a changed PTE visible. */
  pt_t[S_TLB] = pa(pages[PG_A]) | PTE_P | PTE_W;
  flush_all();
  u32 before = peek32(V4K(S_TLB) + 0x40);
  pt_t[S_TLB] = pa(pages[PG_B]) | PTE_P | PTE_W;
  invlpg(V4K(S_TLB));
  printf_("pte changed, invlpg: 0x%x then 0x%x\n", before, peek32(V4K(S_TLB) + 0x40));
  pt_t[S_TLB] = pa(pages[PG_C]) | PTE_P | PTE_W;
  flush_all();
  printf_("pte changed, mov cr3: 0x%x\n", peek32(V4K(S_TLB) + 0x40));

  /* INVLPG of any address in a 2 MiB page invalidates the whole page (SDM 4.10.4.1). */
  u64 off = pa(pages[PG_B]) + 0x44; /* below 2 MiB: the image's page, then the same offset past 2 MiB */
  *(volatile u32 *)(MIB2 + off) = 0x2b2b2b2bu;
  pd_t[PD_2M_TLB] = 0 | PTE_P | PTE_W | PTE_PS;
  flush_all();
  before = peek32(VPD(PD_2M_TLB) + off);
  pd_t[PD_2M_TLB] = MIB2 | PTE_P | PTE_W | PTE_PS;
  invlpg(VPD(PD_2M_TLB) + 0x1ff000);
  printf_("2m pde changed, invlpg of another 4k of the page: 0x%x then 0x%x\n", before,
          peek32(VPD(PD_2M_TLB) + off));

  /* Not-present entries are not cached: making one present needs no invalidation (SDM 4.10.2.3). */
  pt_t[S_TLB] = 0;
  flush_all();
  print_fault("read of a not-present pte", probe(rd8, (long)V4K(S_TLB)));
  pt_t[S_TLB] = pa(pages[PG_A]) | PTE_P;
  long v = probe(rd32, (long)V4K(S_TLB));
  print_fault("same read after setting p, no invlpg", v);
  printf_("  reads 0x%x\n", peek32(V4K(S_TLB)));
  /* A #PF invalidates the faulting address's translations (SDM 4.10.4.2). */
  print_fault("write to a read-only pte", probe(wr32, (long)V4K(S_TLB) + 0x80));
  pt_t[S_TLB] = pa(pages[PG_A]) | PTE_P | PTE_W;
  print_fault("same write after setting r/w, no invlpg", probe(wr32, (long)V4K(S_TLB) + 0x80));
  printf_("  page reads 0x%x\n", ((u32 *)pages[PG_A])[0x20]);
  fill_pages();

  /* Global pages: only the invalidations the SDM guarantees (4.10.4.1). */
  u64 cr4 = rdcr4();
  printf_("cr4.pge=%llu\n", (cr4 >> 7) & 1);
  pt_t[S_GLOBAL] = pa(pages[PG_A]) | PTE_P | PTE_W | PTE_G;
  flush_all();
  before = peek32(V4K(S_GLOBAL) + 0x48);
  pt_t[S_GLOBAL] = pa(pages[PG_B]) | PTE_P | PTE_W | PTE_G;
  invlpg(V4K(S_GLOBAL));
  printf_("global pte changed, invlpg: 0x%x then 0x%x\n", before, peek32(V4K(S_GLOBAL) + 0x48));
  pt_t[S_GLOBAL] = pa(pages[PG_C]) | PTE_P | PTE_W | PTE_G;
  wrcr4(cr4 & ~(u64)CR4_PGE);
  wrcr4(cr4);
  printf_("global pte changed, cr4.pge toggled: 0x%x\n", peek32(V4K(S_GLOBAL) + 0x48));
  wrcr4(cr4 & ~(u64)CR4_PGE);
  (void)peek32(V4K(S_GLOBAL) + 0x48);
  pt_t[S_GLOBAL] = pa(pages[PG_A]) | PTE_P | PTE_W | PTE_G;
  flush_all();
  printf_("cr4.pge=0: global pte changed, mov cr3: 0x%x\n", peek32(V4K(S_GLOBAL) + 0x48));
  wrcr4(cr4);

  /* CR3.PWT/PCD (bits 3, 4; CR4.PCIDE=0) are memory types, not address bits. */
  u64 cr3 = rdcr3();
  wrcr3(cr3 | PTE_PWT | PTE_PCD);
  printf_("cr3 with pcd|pwt: reads back 0x%llx, 4k page reads 0x%x\n", rdcr3() & 0xfff, peek32(V4K(S_A) + 0x4c));
  wrcr3(cr3);
  printf_("cr3 restored: low bits 0x%llx\n", rdcr3() & 0xfff);
}

int main(void) {
  puts_("cputests paging: 4-level paging\n");
  setup();
  sizes();
  accessed_dirty();
  faults();
  smep_smap();
  modified_code();
  strings();
  delivery();
  tlb();
  puts_("done\n");
  return 0;
}
