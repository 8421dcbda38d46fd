/* vmm sample guest: `priv`, a ring-3 program that executes CLI. With IOPL 0 that raises #GP at
 * CPL 3 (SDM Vol. 2A, CLI), and the kernel kills the program. */
#include "ulib.h"

int main(void) {
  printf("About to execute CLI at CPL 3...\n");
  __asm__ volatile("cli");
  printf("This line must never be printed.\n");
  return 1;
}
