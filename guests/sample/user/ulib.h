/* vmm sample guest, user side: a tiny C library over the system calls in syscall.h. */
#ifndef ULIB_H
#define ULIB_H
#include <stdint.h>

#include "../fmt.h"
#include "syscall.h"

long syscall3(long nr, long a0, long a1, long a2);
static inline long write(int fd, const void *buf, unsigned long len) { return syscall3(SYS_WRITE, fd, (long)buf, (long)len); }
static inline __attribute__((noreturn)) void exit(int code) {
  syscall3(SYS_EXIT, code, 0, 0);
  __builtin_unreachable();
}
static inline int getpid(void) { return (int)syscall3(SYS_GETPID, 0, 0, 0); }
static inline uint64_t getticks(void) { return (uint64_t)syscall3(SYS_GETTICKS, 0, 0, 0); }
static inline void yield(void) { syscall3(SYS_YIELD, 0, 0, 0); }
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
