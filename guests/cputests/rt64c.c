/* cputests 64-bit runtime: IDT, TSS, exception recording, ring-3 entry (see rt64.S). */
#include "rt64.h"

struct idt_gate {
  u16 off0, sel;
  u8 ist, type_attr;
  u16 off1;
  u32 off2, zero;
};

struct tss64 {
  u32 reserved0;
  u64 rsp[3];
  u64 reserved1;
  u64 ist[7];
  u64 reserved2;
  u16 reserved3, iomap_base;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16)));
/* The TSS, then the I/O permission bitmap (SDM Vol. 1 19.5.2) and its terminating 0xFF byte. */
static struct {
  struct tss64 tss;
  u8 iomap[8192 + 1];
} tss_area __attribute__((aligned(16)));
static u8 rsp0_stack[8192] __attribute__((aligned(16)));
static u8 ist1_stack[4096] __attribute__((aligned(16)));
static u8 user_stack[4096] __attribute__((aligned(16)));

struct fault last;
u8 resume_vec[256];
void (*resume_hook)(struct frame *f);

void *stub_of(int vec) {
  extern u8 stubs[];
  return stubs + 16 * vec;
}

void set_gate(int vec, void *handler, int type, int dpl, int ist) {
  u64 a = (u64)handler;
  idt[vec].off0 = (u16)a;
  idt[vec].sel = SEL_KCODE64;
  idt[vec].ist = (u8)ist;
  idt[vec].type_attr = (u8)(0x80 | (dpl << 5) | type);
  idt[vec].off1 = (u16)(a >> 16);
  idt[vec].off2 = (u32)(a >> 32);
  idt[vec].zero = 0;
}

u64 rsp0_top(void) { return (u64)(rsp0_stack + sizeof rsp0_stack); }
u64 ist1_top(void) { return (u64)(ist1_stack + sizeof ist1_stack); }
u8 *io_bitmap(void) { return tss_area.iomap; }

void rt_init(void) {
  serial_init();
  outb(0x21, 0xff); /* mask both 8259s: SeaBIOS leaves the PIT running on IRQ 0 */
  outb(0xa1, 0xff);
  for (int v = 0; v < 256; v++) set_gate(v, stub_of(v), 0xe, 0, 0);
  set_gate(0x80, stub_of(0x80), 0xe, 3, 0); /* ring 3 returns to the kernel with INT 0x80 */
  struct {
    u16 limit;
    u64 base;
  } __attribute__((packed)) idtr = {sizeof idt - 1, (u64)idt};
  __asm__ volatile("lidt %0" ::"m"(idtr));

  tss_area.tss.rsp[0] = rsp0_top();
  tss_area.tss.ist[0] = ist1_top();
  tss_area.tss.iomap_base = sizeof(struct tss64);
  for (unsigned i = 0; i < sizeof tss_area.iomap; i++) tss_area.iomap[i] = 0xff;
  u64 base = (u64)&tss_area;
  u64 limit = sizeof tss_area - 1;
  gdt[SEL_TSS / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
                     (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
  gdt[SEL_TSS / 8 + 1] = base >> 32;
  __asm__ volatile("ltr %w0" ::"r"(SEL_TSS));
  __asm__ volatile("lldt %w0" ::"r"(0));
}

static const char *const names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25", "#26", "#27", "#28", "#29", "#30", "#31",
};

void trap(struct frame *f) {
  last.vec = f->vec;
  last.err = f->err;
  last.rip = f->rip;
  last.cs = f->cs;
  last.rsp = f->rsp;
  last.ss = f->ss;
  last.rflags = f->rflags;
  last.cr2 = f->vec == 14 ? rdcr2() : 0;
  last.frame = (u64)f;
  last.rax = f->rax;
  last.rbx = f->rbx;
  if (resume_vec[f->vec]) {
    if (resume_hook) resume_hook(f);
    return;
  }
  if (probe_active) probe_return((long)f->vec);
  printf_("UNEXPECTED vector %llu err=0x%llx rip=0x%llx cs=0x%llx cr2=0x%llx\n", f->vec, f->err, f->rip, f->cs,
          last.cr2);
  guest_exit(EXIT_UNEXPECTED);
}

static void (*user_fn)(void);
static u64 user_flags;
static void user_entry(long arg) {
  enter_user((u64)user_fn + USER_ALIAS, (u64)(user_stack + sizeof user_stack) + USER_ALIAS, user_flags,
             (u64)arg);
}

/* Run fn (position-independent code that ends with INT 0x80) in ring 3; the vector that ended it. */
long user_probe(void (*fn)(void), u64 rflags, u64 arg) {
  user_fn = fn;
  user_flags = rflags;
  return probe(user_entry, (long)arg);
}

void print_fault(const char *what, long v) {
  if (v < 0) {
    printf_("%s: no exception\n", what);
  } else if (v < 32) {
    printf_("%s: %s err=0x%llx", what, names[v], last.err);
    if (v == 14) printf_(" cr2=0x%llx", last.cr2);
    putc_('\n');
  } else {
    printf_("%s: vector 0x%llx\n", what, (u64)v);
  }
}
