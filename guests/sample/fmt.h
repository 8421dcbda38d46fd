/* vmm sample guest: string helpers and formatter shared by the kernel and user programs. */
#ifndef FMT_H
#define FMT_H
#include <stdarg.h>
#include <stddef.h>

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int vformat(char *buf, size_t size, const char *fmt, va_list ap);

#endif
