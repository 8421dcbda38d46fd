/* cputests runtime: COM1 and printing (see lib.h). */
#include <stdarg.h>
#include "lib.h"

void serial_init(void) {
  outb(COM1 + 1, 0x00); /* IER: no interrupts */
  outb(COM1 + 3, 0x80); /* LCR.DLAB */
  outb(COM1 + 0, 0x01); /* divisor 1: 115200 baud */
  outb(COM1 + 1, 0x00);
  outb(COM1 + 3, 0x03); /* 8N1 */
  outb(COM1 + 2, 0xc7); /* FIFOs on, cleared */
  outb(COM1 + 4, 0x0b); /* DTR RTS OUT2 */
}

void putc_(char c) {
  if (c == '\n') putc_('\r');
  while (!(inb(COM1 + COM_LSR) & LSR_THRE)) {
  }
  outb(COM1, (u8)c);
}

void puts_(const char *s) {
  while (*s) putc_(*s++);
}

/* v / base, leaving the remainder in *rem: 16 bits at a time, so -m32 needs no libgcc helpers. */
static u64 divmod(u64 v, u32 base, u32 *rem) {
  u64 q = 0;
  u32 r = 0;
  for (int shift = 48; shift >= 0; shift -= 16) {
    u32 cur = (r << 16) | (u32)((v >> shift) & 0xffff);
    q |= (u64)(cur / base) << shift;
    r = cur % base;
  }
  *rem = r;
  return q;
}

static void put_unsigned(u64 v, unsigned base) {
  char buf[24];
  int n = 0;
  do {
    u32 d;
    v = divmod(v, base, &d);
    buf[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
  } while (v);
  while (n) putc_(buf[--n]);
}

/* %x %d %u %s %c, with an optional l (long) or ll (64-bit); no widths. */
void printf_(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  for (; *fmt; fmt++) {
    if (*fmt != '%') {
      putc_(*fmt);
      continue;
    }
    int longs = 0;
    while (*++fmt == 'l') longs++;
    u64 v = 0;
    if (*fmt == 'x' || *fmt == 'u' || *fmt == 'd') {
      if (longs >= 2) v = va_arg(ap, u64);
      else if (longs == 1) v = va_arg(ap, ulong);
      else v = va_arg(ap, u32);
    }
    switch (*fmt) {
    case 'x':
      put_unsigned(v, 16);
      break;
    case 'u':
      put_unsigned(v, 10);
      break;
    case 'd': {
      long long s = longs >= 2 ? (long long)v : longs == 1 ? (long long)(long)v : (long long)(int)(u32)v;
      if (s < 0) {
        putc_('-');
        v = (u64)-s;
      } else {
        v = (u64)s;
      }
      put_unsigned(v, 10);
      break;
    }
    case 's':
      puts_(va_arg(ap, const char *));
      break;
    case 'c':
      putc_((char)va_arg(ap, int));
      break;
    case '%':
      putc_('%');
      break;
    default:
      putc_('?');
      break;
    }
  }
  va_end(ap);
}

/* isa-debug-exit first (QEMU and vmm stop there), then the ACPI S5 power-off, then halt. */
void guest_exit(u8 code) {
  outb(DEBUG_EXIT_PORT, code);
  outw(PM1A_CNT, PM1_SLP_EN_S5);
  for (;;) __asm__ volatile("cli; hlt");
}
