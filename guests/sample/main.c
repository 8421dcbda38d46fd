/* vmm sample guest: boot sequence and the COM1 shell. */
#include "kernel.h"

/* The hypercall ABI this guest speaks (see guests/README.md): VMCALL with RAX = HC_GET_EXIT_COUNT
 * ("VMM\0"); the hypervisor returns its total VM-exit count in RAX. */
#define HC_GET_EXIT_COUNT 0x564D4D00ul
#define CPUID1_ECX_HYPERVISOR (1u << 31)
#define MBI_FLAG_MEM (1u << 0)
#define DEFAULT_MEMORY (16ul << 20) /* the tutorial's guest RAM when no information structure came */
#define MAX_MEMORY (1ul << 30)      /* what the kernel's physical map covers */

uint64_t hypercall(uint64_t rax, int *ok); /* trap.S */

int hypervisor_present;
char hypervisor_vendor[13];
extern char _kernel_start[], _edata[], _end[];

static const char logo[] =
    "\n"
    "__   ___ __ ___  _ __ ___\n"
    "\\ \\ / / '_ ` _ \\| '_ ` _ \\\n"
    " \\ V /| | | | | | | | | | |\n"
    "  \\_/ |_| |_| |_|_| |_| |_|   sample guest\n"
    "\n";

static uint64_t boot_memory(uint32_t magic, uint32_t info) {
  if (magic == MB_BOOTLOADER_MAGIC && info) {
    const uint32_t *mbi = phys_to_virt(info);
    kprintf("boot = multiboot information at 0x%x, flags 0x%x\n", info, mbi[0]);
    if (mbi[0] & MBI_FLAG_MEM) {
      kprintf("mem_lower = %u KiB, mem_upper = %u KiB\n", mbi[1], mbi[2]);
      return 0x100000ul + (uint64_t)mbi[2] * 1024;
    }
    return DEFAULT_MEMORY;
  }
  if (magic == MB_HEADER_MAGIC) kputs("boot = vmm BIOS (EAX=0x1BADB002, no information structure)\n");
  else kprintf("boot = unknown loader (EAX=0x%x)\n", magic);
  return DEFAULT_MEMORY;
}

static void detect_hypervisor(void) {
  uint32_t r[4];
  cpuid(1, 0, r);
  if (!(r[2] & CPUID1_ECX_HYPERVISOR)) {
    kputs("hypervisor = none\n");
    return;
  }
  hypervisor_present = 1;
  cpuid(0x40000000, 0, r);
  memcpy(hypervisor_vendor, &r[1], 4);
  memcpy(hypervisor_vendor + 4, &r[2], 4);
  memcpy(hypervisor_vendor + 8, &r[3], 4);
  for (int i = 0; i < 12; i++)
    if (hypervisor_vendor[i] < 0x20 || hypervisor_vendor[i] > 0x7E) hypervisor_vendor[i] = '.';
  kprintf("hypervisor = \"%s\" (CPUID 0x40000000, max leaf 0x%x)\n", hypervisor_vendor, r[0]);
}

/* --- shell ------------------------------------------------------------------------------------ */

static void cmd_help(void) {
  kputs("commands:\n"
        "  help     this list\n"
        "  hello    run the ring-3 greeting program\n"
        "  ticks    timer interrupts seen so far\n"
        "  mem      map a fresh page, use it, unmap it, catch the fault\n"
        "  fault    run a ring-3 program that faults and is killed\n"
        "  priv     run a ring-3 program that tries CLI and is killed\n"
        "  exits    ask the hypervisor for its VM-exit count (VMCALL)\n"
        "  crash    page-fault in the kernel on purpose: report and power off\n"
        "  poweroff switch the machine off\n"
        "programs:\n");
  print_programs();
}

static void cmd_ticks(void) {
  kprintf("ticks: %lu timer interrupts (vector 0x%x, %u Hz)\n", timer_ticks, VEC_TIMER, TICK_HZ);
}

#define MEM_PATTERN 0x5EED5EED12345678ul
static void cmd_mem(void) {
  uint64_t va = MEM_TEST_VA, value = 0;
  uint64_t pa = frame_alloc();
  if (map_page(va, pa, PTE_W | nx_mask)) panic("mem: 0x%lx is already mapped", va);
  kprintf("mem: mapped a fresh frame at 0x%lx\n", va);
  *(volatile uint64_t *)va = MEM_PATTERN;
  int r = probe_read64(va, &value);
  kprintf("mem: wrote 0x%lx, read 0x%lx: %s\n", MEM_PATTERN, value,
          r == 0 && value == MEM_PATTERN ? "ok" : "MISMATCH");
  uint64_t freed = unmap_page(va);
  frame_free(freed);
  r = probe_read64(va, &value);
  kprintf("mem: unmapped it; reading again %s\n", r ? "page-faults, and the kernel caught it: ok" : "did NOT fault");
  uint64_t again = frame_alloc();
  kprintf("mem: the frame went back to the allocator: %s\n", again == pa ? "ok" : "NO");
  frame_free(again);
}

static void cmd_exits(void) {
  if (!hypervisor_present) {
    kputs("exits: not running under a hypervisor\n");
    return;
  }
  int ok = 0;
  uint64_t n = hypercall(HC_GET_EXIT_COUNT, &ok);
  if (!ok) kprintf("exits: hypervisor \"%s\" does not implement VMCALL (#UD)\n", hypervisor_vendor);
  else if (n == HC_GET_EXIT_COUNT) /* RAX came back untouched: VMCALL was only skipped */
    kprintf("exits: hypervisor \"%s\" ignored the exit-count hypercall\n", hypervisor_vendor);
  else kprintf("exits: hypervisor \"%s\" reports %lu VM exits\n", hypervisor_vendor, n);
}

/* Nothing is mapped at CRASH_VA (PML4 slot 510, below the kernel). */
#define CRASH_VA 0xffffff7000000000ul
static void cmd_crash(void) {
  kprintf("crash: the kernel reads 0x%lx, which is not mapped\n", CRASH_VA);
  (void)*(volatile uint64_t *)CRASH_VA;
}

static void execute(const char *line) {
  if (!line[0]) return;
  if (!strcmp(line, "help")) cmd_help();
  else if (!strcmp(line, "hello") || !strcmp(line, "fault") || !strcmp(line, "priv")) run_program(line);
  else if (!strcmp(line, "crash")) cmd_crash();
  else if (!strcmp(line, "ticks")) cmd_ticks();
  else if (!strcmp(line, "mem")) cmd_mem();
  else if (!strcmp(line, "exits")) cmd_exits();
  else if (!strcmp(line, "poweroff")) poweroff();
  else kprintf("unknown command: %s (try help)\n", line);
}

#define LINE_MAX 80
static void shell(void) {
  char line[LINE_MAX + 1];
  kputs("vmm sample shell: type help\n");
  for (;;) {
    size_t len = 0;
    int last = 0;
    kputs(">> ");
    for (;;) {
      int c = uart_getc();
      if (c < 0) {
        cpu_relax(); /* the idle loop spins, as NimbOS's does: no HLT */
        continue;
      }
      if (c == '\n' && last == '\r') { /* CR LF counts as one end of line */
        last = 0;
        continue;
      }
      last = c;
      if (c == '\r' || c == '\n') {
        kputs("\n");
        break;
      }
      if (c == 0x08 || c == 0x7F) {
        if (len) {
          len--;
          kputs("\b \b");
        }
      } else if (c >= 0x20 && c < 0x7F && len < LINE_MAX) {
        line[len++] = (char)c;
        uart_putc((char)c);
      }
    }
    line[len] = '\0';
    execute(line);
  }
}

void kmain(uint32_t magic, uint32_t info) {
  uart_init();
  outb(0x21, 0xFF); /* 8259A OCW1: mask every line of both PICs, the APIC timer is our clock */
  outb(0xA1, 0xFF);
  kputs(logo);
  kputs("arch = x86_64\n"
        "platform = vmm-sample-x86_64\n");
  uint64_t mem = boot_memory(magic, info);
  if (mem > MAX_MEMORY) mem = MAX_MEMORY;
  kprintf("memory = %lu MiB, kernel image 0x%lx-0x%lx, bss up to 0x%lx\n", mem >> 20,
          virt_to_phys(_kernel_start), virt_to_phys(_edata), virt_to_phys(_end));
  kprintf("kernel base = 0x%lx (higher half)\n", (uint64_t)_kernel_start);
  kputs("Initializing kernel page tables...\n");
  mm_init(mem);
  kprintf("free frames = %lu (NX %s)\n", frames_free_count(), nx_mask ? "on" : "off");
  kputs("Initializing GDT, TSS, IDT and SYSCALL...\n");
  cpu_tables_init();
  detect_hypervisor();
  hpet_init();
  timers_calibrate();
  apic_timer_start();
  sti();
  kputs("Initializing user programs...\n");
  print_programs();
  kputs("Running tasks...\n");
  shell();
}
