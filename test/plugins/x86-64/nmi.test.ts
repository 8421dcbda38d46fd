/**
 * NMI blocking (SDM Vol. 3A 6.7.1): an NMI handler runs with NMIs blocked until the next IRET,
 * and that IRET unblocks them even when it faults.
 */
import { describe, expect, it } from 'vitest';
import { assemble, load, testMachine } from './helpers.js';

const CODE = 0x8000;

/**
 * A GDT (flat code 0x08, data 0x10) and an IDT with the NMI (2) and #GP (13) handlers; a write
 * to port 0x80 has the test raise an NMI, first once they are set up. The first NMI's handler returns through an IRET whose frame names CS 0x50, beyond the GDT: #GP(0x50). The
 * #GP handler writes port 0x80 (where the test raises a second NMI), then prints G and stops. The
 * second NMI's handler prints N and stops.
 */
const PROGRAM = `.code32
  lgdt [gdtr]
  lidt [idtr]
  mov esp, 0x7000
  out 0x80, al
1: jmp 1b

nmi:
  inc dword ptr [count]
  cmp dword ptr [count], 1
  jne 2f
  mov dword ptr [esp + 4], 0x50
  iretd
2:
  mov al, 'N'
  out 0xe9, al
  out 0xeb, al

gp:
  out 0x80, al
  mov al, 'G'
  out 0xe9, al
  out 0xeb, al

.align 8
gdt:
  .quad 0
  .quad 0x00cf9b000000ffff
  .quad 0x00cf93000000ffff
gdtr:
  .word 23
  .long gdt
idt:
  .quad 0, 0
  .word nmi, 8, 0x8e00, 0
  .fill 10, 8, 0
  .word gp, 8, 0x8e00, 0
idtr:
  .word 14 * 8 - 1
  .long idt
count:
  .long 0
`;

describe('x86-64 NMI blocking', () => {
  it('an IRET that faults still unblocks NMIs: the next NMI arrives inside the #GP handler', () => {
    const m = testMachine();
    load(m, CODE, assemble(PROGRAM, CODE));
    m.cpu.setEntry({ mode: 'protected', ip: CODE });
    let probes = 0;
    m.bus.addPorts('probe', 0x80, 1, {
      ioRead: () => 0,
      ioWrite: () => {
        probes++;
        m.cpu.nmi();
      },
    });
    m.run();
    expect(m.done).toBe(true);
    expect(probes).toBe(2);
    expect(m.text()).toBe('N');
  });
});
