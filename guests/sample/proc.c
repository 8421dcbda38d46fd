/* vmm sample guest: user programs in ring 3 and their system calls.
 *
 * One program runs at a time, in PML4 slot 0 of the kernel's own address space. The shell calls
 * run_program(), which copies the embedded flat image to fresh user pages and enters ring 3; the
 * program comes back through SYS_EXIT or is killed by an exception (return_to_kernel). */
#include "kernel.h"
#include "user/syscall.h"

struct program {
  const char *name, *about;
  const uint8_t *start, *end;
};

extern const uint8_t app_hello_start[], app_hello_end[], app_fault_start[], app_fault_end[];
extern const uint8_t app_priv_start[], app_priv_end[];
static const struct program programs[] = {
    {"hello", "greets from ring 3 through system calls", app_hello_start, app_hello_end},
    {"fault", "touches an unmapped address and gets killed", app_fault_start, app_fault_end},
    {"priv", "tries CLI in ring 3 and gets killed by #GP", app_priv_start, app_priv_end},
};

static uint64_t saved_ksp;
static int current_pid; /* 0 when no program runs */
static int next_pid = 1;

int in_user_program(void) { return current_pid != 0; }

void print_programs(void) {
  for (size_t i = 0; i < ARRAY_SIZE(programs); i++)
    kprintf("  %-9s%s (%lu bytes)\n", programs[i].name, programs[i].about,
            (uint64_t)(programs[i].end - programs[i].start));
}

static void end_program(void) {
  unmap_user_space();
  current_pid = 0;
}

/* "[pid] killed: page fault at 0xADDR" or "[pid] killed: general protection at rip 0xADDR". */
void kill_current(const char *what, const char *where, uint64_t addr) {
  kprintf("[%d] killed: %s at %s0x%lx\n", current_pid, what, where, addr);
  end_program();
  return_to_kernel(-1, saved_ksp);
}

int run_program(const char *name) {
  const struct program *p = NULL;
  for (size_t i = 0; i < ARRAY_SIZE(programs); i++)
    if (!strcmp(programs[i].name, name)) p = &programs[i];
  if (!p) return -1;

  uint64_t size = (uint64_t)(p->end - p->start);
  for (uint64_t off = 0; off < size; off += PAGE_SIZE) {
    uint64_t pa = frame_alloc();
    uint64_t n = size - off < PAGE_SIZE ? size - off : PAGE_SIZE;
    memcpy(phys_to_virt(pa), p->start + off, n);
    map_page(USER_BASE + off, pa, PTE_U | PTE_W);
  }
  for (uint64_t i = 1; i <= USER_STACK_PAGES; i++)
    map_page(USER_STACK_TOP - i * PAGE_SIZE, frame_alloc(), PTE_U | PTE_W | nx_mask);

  current_pid = next_pid++;
  kprintf("[%d] started %s\n", current_pid, p->name);
  long code = enter_user(USER_BASE, USER_STACK_TOP, &saved_ksp);
  return (int)code;
}

static long sys_write(long fd, uint64_t buf, uint64_t len) {
  if (fd != 1 && fd != 2) return -SYS_EBADF;
  if (!user_range_ok(buf, len, 0)) return -SYS_EFAULT;
  kwrite((const char *)buf, len);
  return (long)len;
}

long syscall_dispatch(long nr, long a0, long a1, long a2) {
  switch (nr) {
    case SYS_WRITE:
      return sys_write(a0, (uint64_t)a1, (uint64_t)a2);
    case SYS_EXIT: {
      int pid = current_pid;
      kprintf("[%d] exited with code %ld\n", pid, a0);
      end_program();
      return_to_kernel(a0, saved_ksp);
    }
    case SYS_GETPID:
      return current_pid;
    case SYS_GETTICKS:
      return (long)timer_ticks;
    case SYS_YIELD:
      /* Nothing else to run: let pending interrupts in, then return. */
      sti();
      cpu_relax();
      cli();
      return 0;
    default:
      (void)a2;
      return -SYS_ENOSYS;
  }
}
