/* vmm sample guest: freestanding string helpers and a small printf formatter.
 * Shared by the kernel and the user programs. Supports %d %u %x %X %p %s %c %%, the '0' and '-'
 * flags, a width, and the 'l' length modifier (all integers are handled as 64-bit with 'l'). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "fmt.h"

void *memset(void *d, int c, size_t n) {
  unsigned char *p = d;
  while (n--) *p++ = (unsigned char)c;
  return d;
}

void *memcpy(void *d, const void *s, size_t n) {
  unsigned char *p = d;
  const unsigned char *q = s;
  while (n--) *p++ = *q++;
  return d;
}

int memcmp(const void *a, const void *b, size_t n) {
  const unsigned char *p = a, *q = b;
  for (; n; n--, p++, q++)
    if (*p != *q) return *p - *q;
  return 0;
}

size_t strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

int strcmp(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return (unsigned char)*a - (unsigned char)*b;
}

struct out {
  char *buf;
  size_t size, len;
};

static void put(struct out *o, char c) {
  if (o->len + 1 < o->size) o->buf[o->len] = c;
  o->len++;
}

static void put_padded(struct out *o, const char *s, size_t n, int width, int left, char pad) {
  int fill = width > (int)n ? width - (int)n : 0;
  if (!left)
    while (fill-- > 0) put(o, pad);
  while (n--) put(o, *s++);
  if (left)
    while (fill-- > 0) put(o, ' ');
}

int vformat(char *buf, size_t size, const char *fmt, va_list ap) {
  struct out o = {buf, size, 0};
  char tmp[24];
  for (; *fmt; fmt++) {
    if (*fmt != '%') {
      put(&o, *fmt);
      continue;
    }
    fmt++;
    int left = 0, width = 0, longarg = 0;
    char pad = ' ';
    for (;; fmt++) {
      if (*fmt == '-') left = 1;
      else if (*fmt == '0') pad = '0';
      else break;
    }
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    while (*fmt == 'l') longarg = 1, fmt++;
    uint64_t v;
    int neg = 0, base = 10, upper = 0;
    switch (*fmt) {
      case 'c':
        tmp[0] = (char)va_arg(ap, int);
        put_padded(&o, tmp, 1, width, left, ' ');
        continue;
      case 's': {
        const char *s = va_arg(ap, const char *);
        if (!s) s = "(null)";
        put_padded(&o, s, strlen(s), width, left, ' ');
        continue;
      }
      case 'd': {
        int64_t sv = longarg ? va_arg(ap, int64_t) : va_arg(ap, int);
        neg = sv < 0;
        v = neg ? -(uint64_t)sv : (uint64_t)sv;
        break;
      }
      case 'u':
        v = longarg ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
        break;
      case 'X':
        upper = 1;
        /* fall through */
      case 'x':
        v = longarg ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
        base = 16;
        break;
      case 'p':
        v = (uint64_t)va_arg(ap, void *);
        base = 16;
        put(&o, '0');
        put(&o, 'x');
        break;
      case '\0':
        fmt--;
        continue;
      default:
        put(&o, *fmt);
        continue;
    }
    int n = 0;
    do {
      int d = (int)(v % (unsigned)base);
      tmp[sizeof(tmp) - 1 - n++] = (char)(d < 10 ? '0' + d : (upper ? 'A' : 'a') + d - 10);
      v /= (unsigned)base;
    } while (v);
    if (neg) {
      if (pad == '0') {
        put(&o, '-');
        width--;
      } else {
        tmp[sizeof(tmp) - 1 - n++] = '-';
      }
    }
    put_padded(&o, tmp + sizeof(tmp) - n, (size_t)n, width, left, pad);
  }
  if (o.size) o.buf[o.len < o.size ? o.len : o.size - 1] = '\0';
  return (int)o.len;
}
