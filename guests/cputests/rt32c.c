/* cputests 32-bit runtime: IDT, TSS, exception recording, ring-3 entry (see rt32.S). */
#include "rt32.h"

struct idt_gate {
  u16 off0, sel;
  u8 zero, type_attr;
  u16 off1;
};

/* SDM Vol. 3A 8.2.1, Figure 8-2. */
struct tss32 {
  u32 link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags, eax, ecx, edx, ebx, esp, ebp, esi, edi;
  u32 es, cs, ss, ds, fs, gs, ldt;
  u16 trap, iomap_base;
};

static struct idt_gate idt[256] __attribute__((aligned(16)));
/* The TSS, then the I/O permission bitmap (SDM Vol. 1 19.5.2) and its terminating 0xFF byte. */
static struct {
  struct tss32 tss;
  u8 iomap[8192 + 1];
} tss_area __attribute__((aligned(16)));
static u8 esp0_stack[ESP0_STACK_SIZE] __attribute__((aligned(16)));
static u8 user_stack[4096] __attribute__((aligned(16)));

struct fault last;
u8 resume_vec[256];
void (*resume_hook)(struct frame *f);

void *stub_of(int vec) {
  extern u8 stubs[];
  return stubs + 16 * vec;
}

void set_gate(int vec, void *handler, int type, int dpl) {
  u32 a = (u32)handler;
  idt[vec].off0 = (u16)a;
  idt[vec].sel = SEL_KCODE;
  idt[vec].zero = 0;
  idt[vec].type_attr = (u8)(0x80 | (dpl << 5) | type);
  idt[vec].off1 = (u16)(a >> 16);
}

/* A segment descriptor (SDM Vol. 3A 3.4.5): access = P|DPL|S|type byte, flags = G|D/B|L|AVL nibble. */
u64 seg_desc(u32 base, u32 limit, u32 access, u32 flags) {
  return (limit & 0xffff) | ((u64)(base & 0xffffff) << 16) | ((u64)(access & 0xff) << 40) |
         ((u64)((limit >> 16) & 0xf) << 48) | ((u64)(flags & 0xf) << 52) | ((u64)(base >> 24) << 56);
}

u32 user_stack_top(void) { return (u32)(user_stack + sizeof user_stack); }
u32 esp0_top(void) { return (u32)(esp0_stack + sizeof esp0_stack); }
u8 *io_bitmap(void) { return tss_area.iomap; }
void set_iomap_base(u16 base) { tss_area.tss.iomap_base = base; }
void set_ss0(u16 sel) { tss_area.tss.ss0 = sel; }

void rt_init(void) {
  serial_init();
  outb(0x21, 0xff); /* mask both 8259s */
  outb(0xa1, 0xff);
  for (int v = 0; v < 256; v++) set_gate(v, stub_of(v), GATE_INT32, 0);
  set_gate(0x80, stub_of(0x80), GATE_INT32, 3); /* ring 3 returns to the kernel with INT 0x80 */
  struct {
    u16 limit;
    u32 base;
  } __attribute__((packed)) idtr = {sizeof idt - 1, (u32)idt};
  __asm__ volatile("lidt %0" ::"m"(idtr));

  tss_area.tss.esp0 = esp0_top();
  tss_area.tss.ss0 = SEL_KDATA;
  tss_area.tss.iomap_base = sizeof(struct tss32);
  for (unsigned i = 0; i < sizeof tss_area.iomap; i++) tss_area.iomap[i] = 0xff;
  gdt[SEL_TSS / 8] = seg_desc((u32)&tss_area, sizeof tss_area - 1, 0x89, 0);
  __asm__ volatile("ltr %w0" ::"r"(SEL_TSS));
  __asm__ volatile("lldt %w0" ::"r"(0));
}

static const char *const names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25", "#26", "#27", "#28", "#29", "#30", "#31",
};

void trap(struct frame *f) {
  u32 fl;
  __asm__ volatile("pushf; pop %0" : "=r"(fl));
  last.handler_eflags = fl;
  __asm__ volatile("mov %%ss, %0" : "=r"(fl));
  last.handler_ss = fl & 0xffff;
  last.vec = f->vec;
  last.err = f->err;
  last.eip = f->eip;
  last.cs = f->cs;
  /* ESP and SS are in the frame only after a privilege change. */
  last.esp = (f->cs & 3) ? f->esp : 0;
  last.ss = (f->cs & 3) ? f->ss : 0;
  last.eflags = f->eflags;
  last.cr2 = f->vec == 14 ? rdcr2() : 0;
  last.frame = (u32)f;
  last.eax = f->eax;
  last.ebx = f->ebx;
  if (resume_vec[f->vec]) {
    if (resume_hook) resume_hook(f);
    return;
  }
  if (probe_active) probe_return((long)f->vec);
  printf_("UNEXPECTED vector %u err=0x%x eip=0x%x cs=0x%x cr2=0x%x\n", f->vec, f->err, f->eip, f->cs, last.cr2);
  guest_exit(EXIT_UNEXPECTED);
}

static void (*user_fn)(void);
static u32 user_flags;
static void user_entry(long arg) {
  enter_user((u32)user_fn, (u32)(user_stack + sizeof user_stack), user_flags, (u32)arg);
}

/* Run fn (code that ends with INT 0x80) in ring 3; the vector that ended it. */
long user_probe(void (*fn)(void), u32 eflags, u32 arg) {
  user_fn = fn;
  user_flags = eflags;
  return probe(user_entry, (long)arg);
}

void print_fault(const char *what, long v) {
  if (v < 0) {
    printf_("%s: no exception\n", what);
  } else if (v < 32) {
    printf_("%s: %s err=0x%x", what, names[v], last.err);
    if (v == 14) printf_(" cr2=0x%x", last.cr2);
    putc_('\n');
  } else {
    printf_("%s: vector 0x%x\n", what, (u32)v);
  }
}
