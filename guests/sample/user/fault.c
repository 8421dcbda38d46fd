/* vmm sample guest: `fault`, a ring-3 program that writes to an unmapped page. The kernel kills it
 * and the shell carries on. */
#include "ulib.h"

int main(void) {
  printf("About to write to 0xdead0000, which is not mapped...\n");
  *(volatile uint32_t *)0xdead0000 = 0x1234;
  printf("This line must never be printed.\n");
  return 1;
}
