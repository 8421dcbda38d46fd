/* vmm sample guest: `hello`, a ring-3 program that talks to the kernel only through SYSCALL. */
#include "ulib.h"

int main(void) {
  uint16_t cs;
  __asm__ volatile("mov %%cs, %0" : "=r"(cs));
  printf("Hello from ring 3! I am pid %d, running at CPL %d.\n", getpid(), cs & 3);
  /* Wait, politely, until the timer has interrupted us at least twice. */
  uint64_t start = getticks();
  while (getticks() < start + 2) yield();
  printf("The timer is ticking while user code runs.\n");
  long bad = write(1, (const void *)0xdead0000, 4);
  printf("write() from an unmapped buffer returns %ld (EFAULT).\n", bad);
  printf("Goodbye.\n");
  return 0;
}
