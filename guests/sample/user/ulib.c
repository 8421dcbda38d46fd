/* vmm sample guest, user side: printf over SYS_WRITE. */
#include "ulib.h"

int printf(const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vformat(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  write(1, buf, n < (int)sizeof(buf) ? (unsigned long)n : sizeof(buf) - 1);
  return n;
}
