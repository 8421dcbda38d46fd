/* vmm sample guest: COM1 16550 console (polled, no interrupts), kprintf, panic, power-off. */
#include "kernel.h"

/* PC16550D register offsets from the base port; DLL/DLM overlay RBR/THR/IER while LCR.DLAB=1. */
#define COM1 0x3F8
#define UART_RBR 0
#define UART_THR 0
#define UART_DLL 0
#define UART_IER 1
#define UART_DLM 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LCR_DLAB 0x80
#define LCR_8N1 0x03
#define FCR_ENABLE_CLEAR_14 0xC7 /* FIFO enable, clear RX and TX FIFOs, RX trigger 14 bytes */
#define MCR_DTR_RTS_OUT2 0x0B
#define LSR_DR 0x01   /* data ready */
#define LSR_THRE 0x20 /* transmit holding register empty */

/* The same sequence NimbOS uses: 115200 baud (divisor 1), 8N1, FIFOs on, interrupts off. */
void uart_init(void) {
  outb(COM1 + UART_IER, 0x00);
  outb(COM1 + UART_LCR, LCR_DLAB);
  outb(COM1 + UART_DLL, 0x01);
  outb(COM1 + UART_DLM, 0x00);
  outb(COM1 + UART_LCR, LCR_8N1);
  outb(COM1 + UART_FCR, FCR_ENABLE_CLEAR_14);
  outb(COM1 + UART_MCR, MCR_DTR_RTS_OUT2);
  outb(COM1 + UART_IER, 0x00);
}

void uart_putc(char c) {
  while (!(inb(COM1 + UART_LSR) & LSR_THRE)) cpu_relax();
  outb(COM1 + UART_THR, (uint8_t)c);
}

int uart_getc(void) {
  if (!(inb(COM1 + UART_LSR) & LSR_DR)) return -1;
  return inb(COM1 + UART_RBR);
}

/* Console output turns "\n" into "\r\n". */
void kwrite(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\n') uart_putc('\r');
    uart_putc(s[i]);
  }
}

void kputs(const char *s) { kwrite(s, strlen(s)); }

static int kvprintf(const char *fmt, va_list ap) {
  char buf[256];
  int n = vformat(buf, sizeof(buf), fmt, ap);
  kwrite(buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
  return n;
}

int kprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = kvprintf(fmt, ap);
  va_end(ap);
  return n;
}

void panic(const char *fmt, ...) {
  cli();
  va_list ap;
  va_start(ap, fmt);
  kputs("\n*** kernel panic: ");
  kvprintf(fmt, ap);
  va_end(ap);
  kputs("\n");
  poweroff();
}

/* q35 ACPI PM1a control (ICH9 PMBASE 0x600 + 4): SLP_EN (bit 13) with SLP_TYP 0 = soft off, as
 * NimbOS does. If that port is not wired, QEMU's isa-debug-exit at 0xF4 ends the run instead. */
#define PM1A_CNT 0x604
#define PM1_SLP_EN 0x2000
#define ISA_DEBUG_EXIT 0xF4
#define POWEROFF_GRACE_SPINS (1u << 20) /* a machine may take a moment to act on SLP_EN */
void poweroff(void) {
  cli();
  kputs("Powering off.\n");
  outw(PM1A_CNT, PM1_SLP_EN);
  for (volatile uint32_t i = 0; i < POWEROFF_GRACE_SPINS; i++) cpu_relax();
  outb(ISA_DEBUG_EXIT, 0x10);
  for (;;) __asm__ volatile("hlt");
}
