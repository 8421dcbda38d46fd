/*
 * real: 16-bit protected mode and real mode, entered from the 32-bit kernel (the 16-bit code is
 * real16.S). Checks INT through a 16-bit interrupt gate, CR0.PE=0 and the far jump into real mode,
 * real-mode segment arithmetic, IVT delivery (saved CS:IP and FLAGS, IF/TF cleared) and the 16-bit
 * IRET that restores FLAGS, exceptions through the IVT (#DE, #UD, INT3, INTO, BOUND), LIDT moving
 * the IVT, an IVT entry naming another segment, far CALL/RET, an operand-size prefix, and the
 * switch back to 32-bit protected mode.
 */
#include "rt32.h"
#include "real.h"

extern char rm_start[], rm_end[], rm_res[];
extern char h41[], pm16_after41[], rm_after40[], rm_div[], rm_ud[], rm_after3[], rm_after_into[], rm_bound[], rm_wrap[];
void real_run(void);

#define O(label) ((u32)((label) - rm_start))
static u16 res(int i) { return ((volatile u16 *)(RM_BASE + O(rm_res)))[i]; }

int main(void) {
  puts_("cputests real: 16-bit protected mode and real mode\n");
  for (u32 i = 0; i < O(rm_end); i++) ((volatile u8 *)RM_BASE)[i] = (u8)rm_start[i];
  gdt[SEL_CODE16 / 8] = seg_desc(RM_BASE, 0xffff, 0x9a, 0);
  gdt[SEL_DATA16 / 8] = seg_desc(RM_BASE, 0xffff, 0x92, 0);
  /* Vector 0x41: a 16-bit interrupt gate (type 6, SDM 6.11) to the blob's handler in the 16-bit segment. */
  struct {
    u16 limit;
    u32 base;
  } __attribute__((packed)) idtr;
  __asm__ volatile("sidt %0" : "=m"(idtr));
  u32 off = O(h41);
  ((volatile u64 *)idtr.base)[0x41] =
      (off & 0xffff) | ((u64)SEL_CODE16 << 16) | (0x86ull << 40) | ((u64)(off >> 16) << 48);
  real_run();
  u16 cs;
  __asm__ volatile("mov %%cs, %0" : "=r"(cs));
  printf_("back in 32-bit protected mode: cs=0x%x cr0.pe=%u\n", cs, rdcr0() & 1);
  printf_("16-bit protected mode: msw.pe=%u\n", res(RES_PM16_MSW) & 1);
  printf_("  int 0x41 through a 16-bit gate: saved ip at pm16_after41+%d, cs=0x%x, flags&(if|tf)=0x%x; handler cs=0x%x\n",
          (int)res(RES_PM16_IP) - (int)O(pm16_after41), res(RES_PM16_CS), res(RES_PM16_FLAGS) & 0x300,
          res(RES_PM16_HCS));
  printf_("real mode: msw.pe=%u cs=0x%x\n", res(RES_RM_MSW) & 1, res(RES_RM_CS));
  printf_("  0x800:0x10 read as 0x801:0: 0x%x\n", res(RES_ALIAS));
  printf_("  int 0x40 through the ivt: saved ip at rm_after40+%d, cs=0x%x, flags&(if|cf)=0x%x; handler flags&(if|tf)=0x%x "
          "cs=0x%x\n",
          (int)res(RES_H40_IP_FIRST) - (int)O(rm_after40), res(RES_H40_SCS_FIRST), res(RES_H40_FLAGS_FIRST) & 0x201,
          res(RES_H40_HFLAGS_FIRST) & 0x300, res(RES_H40_CS_FIRST));
  printf_("  the same handler through 0x%x:xxxx: saved cs=0x%x flags&(if|cf)=0x%x\n", RM_ALIAS_SEG, res(RES_H40_SCS),
          res(RES_H40_FLAGS) & 0x201);
  printf_("  after iret (handler set zf in the saved flags): flags&(zf|cf)=0x%x\n", res(RES_FLAGS_AFTER) & 0x41);
  printf_("  #DE: saved ip at rm_div+%d\n", (int)res(RES_DE_IP) - (int)O(rm_div));
  printf_("  #UD: saved ip at rm_ud+%d\n", (int)res(RES_UD_IP) - (int)O(rm_ud));
  printf_("  int3: saved ip at rm_after3+%d\n", (int)res(RES_BP_IP) - (int)O(rm_after3));
  printf_("  into with of=1: saved ip at rm_after_into+%d\n", (int)res(RES_OF_IP) - (int)O(rm_after_into));
  printf_("  bound 30 in [10, 20]: saved ip at rm_bound+%d\n", (int)res(RES_BR_IP) - (int)O(rm_bound));
  if (res(RES_GP_IP) == 0xeeee) puts_("  word read at ds:0xffff: no exception\n");
  else printf_("  word read at ds:0xffff: #GP, saved ip at rm_wrap+%d\n", (int)res(RES_GP_IP) - (int)O(rm_wrap));
  printf_("  es:[bx+si] with bx=0xfff0 si=0x20 wraps to offset 0x10: 0x%x\n", res(RES_EA_WRAP));
  printf_("  [bp] with ds=0x801 reads through ss: 0x%x\n", res(RES_BP_SS));
  printf_("  push sp then pop: pushed sp - old sp = %d\n", (int)(short)res(RES_PUSH_SP));
  printf_("  push with sp=0: sp=0x%x, word at ss:0xfffe=0x%x\n", res(RES_SP_WRAP_SP), res(RES_SP_WRAP_VAL));
  printf_("  iretd: sp back where it was: %s\n", res(RES_IRETD_SP) == 0 ? "yes" : "no");
  printf_("  loop with ecx=0x10001: cx=0x%x, ecx high word 0x%x\n", res(RES_LOOP_CX), res(RES_LOOP_ECX_HI));
  printf_("  lidt base 0x%x: int 0x40 reached its handler: %s\n", IVT2_BASE, res(RES_MOVED) == 0x1234 ? "yes" : "no");
  printf_("  ivt entry 0x%x:xxxx: handler cs=0x%x\n", RM_ALIAS_SEG, res(RES_H40_CS));
  printf_("  lcall 0x%x:xxxx: callee cs=0x%x\n", RM_SEG, res(RES_FAR_CS));
  printf_("  mov $0x12345678, %%eax (operand-size prefix), high word 0x%x\n", res(RES_OPSIZE));
  puts_("done\n");
  return 0;
}
