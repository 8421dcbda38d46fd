/* real: shared by real.c and real16.S (the 16-bit blob and its result slots). */
#ifndef CPUTESTS_REAL_H
#define CPUTESTS_REAL_H

#define RM_BASE 0x7000     /* where the blob runs: 16-bit segments' base, real-mode segment RM_SEG */
#define RM_SEG 0x0700
#define RM_ALIAS_SEG 0x0600 /* another segment that reaches the same bytes with larger offsets */
#define RM_STACK 0xf000    /* SP: linear RM_BASE + 0xf000 */
#define IVT2_BASE 0x9000   /* a second IVT for LIDT in real mode */
#define SPWRAP_SEG 0x1000  /* a stack segment for the SP=0 push: linear 0x10000 + 0xfffe */
#define SEL_CODE16 0x30    /* gdt[6]: 16-bit code, base RM_BASE, limit 0xffff */
#define SEL_DATA16 0x38    /* gdt[7]: 16-bit data, base RM_BASE, limit 0xffff */

#define RES_PM16_MSW 0
#define RES_PM16_IP 1
#define RES_PM16_CS 2
#define RES_PM16_FLAGS 3
#define RES_PM16_HCS 4
#define RES_RM_MSW 5
#define RES_RM_CS 6
#define RES_ALIAS 7
#define RES_H40_IP 8
#define RES_H40_SCS 9
#define RES_H40_FLAGS 10
#define RES_H40_HFLAGS 11
#define RES_H40_CS 12
#define RES_H40_CS_FIRST 13
#define RES_FLAGS_AFTER 14
#define RES_DE_IP 15
#define RES_UD_IP 16
#define RES_BP_IP 17
#define RES_OF_IP 18
#define RES_BR_IP 19
#define RES_MOVED 20
#define RES_FAR_CS 21
#define RES_OPSIZE 22
#define RES_H40_IP_FIRST 23
#define RES_H40_SCS_FIRST 24
#define RES_H40_FLAGS_FIRST 25
#define RES_H40_HFLAGS_FIRST 26
#define RES_GP_IP 27
#define RES_EA_WRAP 28
#define RES_BP_SS 29
#define RES_PUSH_SP 30
#define RES_SP_WRAP_SP 31
#define RES_SP_WRAP_VAL 32
#define RES_IRETD_SP 33
#define RES_LOOP_CX 34
#define RES_LOOP_ECX_HI 35
#define RES_COUNT 36

#endif
