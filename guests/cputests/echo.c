/*
 * echo: a Multiboot 1 ELF32 kernel that prints what the loader handed over (the command line and
 * the modules, with each module's size and first bytes) and exits through isa-debug-exit with the
 * value after "exit=" on its command line (default 0x10). test/machines/pc-multiboot.test.ts
 * uses it to check that --append and --initrd reach the kernel.
 */
#include "lib.h"

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-aligned modules, memory info */
#define MB_INFO_CMDLINE 0x4
#define MB_INFO_MODS 0x8

__asm__(".section .text.boot, \"ax\"\n"
        ".globl _start\n"
        "_start: jmp 1f\n"
        ".balign 4\n"
        ".long 0x1BADB002, 0x00000003, -(0x1BADB002 + 0x00000003)\n"
        "1: mov $stack_top, %esp\n"
        "push %ebx\n push %eax\n call echo_main\n"
        ".bss\n .balign 16\n .skip 8192\n stack_top:\n .text\n");

struct mb_module {
  u32 start, end, string, reserved;
};

static u32 parse_exit(const char *s) {
  for (; *s; s++) {
    if (s[0] == 'e' && s[1] == 'x' && s[2] == 'i' && s[3] == 't' && s[4] == '=') {
      u32 v = 0;
      for (s += 5; *s >= '0' && *s <= '9'; s++) v = v * 10 + (u32)(*s - '0');
      return v;
    }
  }
  return 0x10;
}

void echo_main(u32 magic, const u32 *info) {
  serial_init();
  printf_("echo: magic=0x%x\n", magic);
  const char *cmdline = (info[0] & MB_INFO_CMDLINE) ? (const char *)info[4] : "";
  printf_("cmdline: [%s]\n", cmdline);
  u32 count = (info[0] & MB_INFO_MODS) ? info[5] : 0;
  printf_("modules: %u\n", count);
  const struct mb_module *m = (info[0] & MB_INFO_MODS) ? (const struct mb_module *)info[6] : 0;
  for (u32 i = 0; i < count; i++) {
    const u8 *data = (const u8 *)m[i].start;
    u32 size = m[i].end - m[i].start;
    printf_("module %u: [%s] %u bytes, page aligned: %s, starts [", i, (const char *)m[i].string, size,
            m[i].start % 4096 ? "no" : "yes");
    for (u32 k = 0; k < size && k < 16 && data[k] >= 0x20 && data[k] < 0x7f; k++) putc_((char)data[k]);
    puts_("]\n");
  }
  guest_exit((u8)parse_exit(cmdline));
}
