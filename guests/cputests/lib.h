/*
 * cputests: the small runtime every test program shares (compiled for -m32 and -m64).
 * COM1 output by polling, a printf for %x %d %s %c (with l for long), and the exits.
 */
#ifndef CPUTESTS_LIB_H
#define CPUTESTS_LIB_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned long ulong;

#define COM1 0x3f8
#define COM_LSR 5
#define LSR_THRE 0x20
#define DEBUG_EXIT_PORT 0xf4 /* QEMU isa-debug-exit: status = value * 2 + 1 */
#define PM1A_CNT 0x604       /* q35 PMBASE 0x600 + 4 */
#define PM1_SLP_EN_S5 0x2000 /* SLP_EN with SLP_TYP 0 (QEMU's \_S5) */
#define EXIT_PASS 0x10       /* status 33: the program ran to its end */
#define EXIT_UNEXPECTED 0x11 /* status 35: an exception outside a probe */

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) {
  u8 v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

void serial_init(void);
void putc_(char c);
void puts_(const char *s);
void printf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void guest_exit(u8 code);

#endif
