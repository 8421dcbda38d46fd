/**
 * Guest-state fields as accessors onto the live CPU (SDM Vol. 3C 24.4): while the vCPU is in the
 * guest, VMREAD/VMWRITE of these fields read and write the CPU registers themselves, so a VM exit
 * copies nothing. Built once per CPU; the table is indexed by VMCS slot.
 */
import { SegAttr } from '../../src/x86/descriptor.js';
import { RFLAGS } from '../../src/x86/regs.js';
import { ActivityState, Interruptibility, VmcsField } from '../../src/x86/vmx.js';
import type { X86_64 } from '../x86-64/cpu.js';
import { slotOf, type LiveField, type Vmcs } from './vmcs.js';

const TWO32 = 4294967296;
const TWO48 = 281474976710656;

/** A signed double (canonical address) from two halves. */
export const fromHalves = (lo: number, hi: number): number => (hi | 0) * TWO32 + (lo >>> 0);
/** A 48-bit linear address (the CPU's form) from a canonical 64-bit value's halves. */
const lin48 = (lo: number, hi: number): number => (hi & 0xffff) * TWO32 + (lo >>> 0);

function putNum(v: Vmcs, n: number): void {
  // n: a signed double (canonical) or an unsigned value below 2^53.
  v.rdLo = (((n % TWO32) + TWO32) % TWO32) | 0;
  v.rdHi = Math.floor(n / TWO32) | 0;
}

/** The CPU keeps a linear address below 2^48 (sign implied in long mode): the canonical value. */
function putLin(v: Vmcs, cpu: X86_64, n: number): void {
  putNum(v, cpu.lma && n >= TWO48 / 2 ? n - TWO48 : n);
}

export function buildLiveFields(cpu: X86_64, vmcs: Vmcs): void {
  const set = (enc: number, f: LiveField) => {
    vmcs.live[slotOf(enc)] = f;
  };
  const segChanged = () => {
    cpu.updateMode();
    if (cpu.pe && !cpu.v86) cpu.setCpl((cpu.sAttr[2]! >> SegAttr.DPL_SHIFT) & 3);
    cpu.refreshSegOk();
    cpu.invalidateFetch();
  };
  const segs: [number, number, number, number][] = [
    [VmcsField.GuestEsSelector, VmcsField.GuestEsBase, VmcsField.GuestEsLimit, VmcsField.GuestEsAccessRights],
    [VmcsField.GuestCsSelector, VmcsField.GuestCsBase, VmcsField.GuestCsLimit, VmcsField.GuestCsAccessRights],
    [VmcsField.GuestSsSelector, VmcsField.GuestSsBase, VmcsField.GuestSsLimit, VmcsField.GuestSsAccessRights],
    [VmcsField.GuestDsSelector, VmcsField.GuestDsBase, VmcsField.GuestDsLimit, VmcsField.GuestDsAccessRights],
    [VmcsField.GuestFsSelector, VmcsField.GuestFsBase, VmcsField.GuestFsLimit, VmcsField.GuestFsAccessRights],
    [VmcsField.GuestGsSelector, VmcsField.GuestGsBase, VmcsField.GuestGsLimit, VmcsField.GuestGsAccessRights],
  ];
  segs.forEach(([sel, base, limit, ar], i) => {
    set(sel, {
      read: (v) => ((v.rdLo = cpu.sSel[i]! & 0xffff), (v.rdHi = 0)),
      write: (lo) => (cpu.sSel[i] = lo & 0xffff),
    });
    set(base, {
      read: (v) => ((v.rdLo = cpu.sBaseLo[i]!), (v.rdHi = cpu.sBaseHi[i]!)),
      write: (lo, hi) => {
        cpu.sBaseLo[i] = lo;
        cpu.sBaseHi[i] = hi;
        cpu.invalidateFetch();
      },
    });
    set(limit, {
      read: (v) => ((v.rdLo = cpu.sLimit[i]! | 0), (v.rdHi = 0)),
      write: (lo) => {
        cpu.sLimit[i] = lo >>> 0;
        segChanged();
      },
    });
    set(ar, {
      read: (v) => ((v.rdLo = cpu.sAttr[i]!), (v.rdHi = 0)),
      write: (lo) => {
        cpu.sAttr[i] = lo & 0x1f0ff;
        segChanged();
      },
    });
  });
  // LDTR, TR, GDTR, IDTR.
  set(VmcsField.GuestLdtrSelector, {
    read: (v) => ((v.rdLo = cpu.ldtrSel), (v.rdHi = 0)),
    write: (lo) => (cpu.ldtrSel = lo),
  });
  set(VmcsField.GuestLdtrBase, {
    read: (v) => putLin(v, cpu, cpu.ldtrBase),
    write: (lo, hi) => (cpu.ldtrBase = lin48(lo, hi)),
  });
  set(VmcsField.GuestLdtrLimit, {
    read: (v) => ((v.rdLo = cpu.ldtrLimit | 0), (v.rdHi = 0)),
    write: (lo) => (cpu.ldtrLimit = lo >>> 0),
  });
  set(VmcsField.GuestLdtrAccessRights, {
    read: (v) => ((v.rdLo = cpu.ldtrAttr), (v.rdHi = 0)),
    write: (lo) => (cpu.ldtrAttr = lo & 0x1f0ff),
  });
  set(VmcsField.GuestTrSelector, {
    read: (v) => ((v.rdLo = cpu.trSel), (v.rdHi = 0)),
    write: (lo) => (cpu.trSel = lo),
  });
  set(VmcsField.GuestTrBase, {
    read: (v) => putLin(v, cpu, cpu.trBase),
    write: (lo, hi) => (cpu.trBase = lin48(lo, hi)),
  });
  set(VmcsField.GuestTrLimit, {
    read: (v) => ((v.rdLo = cpu.trLimit | 0), (v.rdHi = 0)),
    write: (lo) => (cpu.trLimit = lo >>> 0),
  });
  set(VmcsField.GuestTrAccessRights, {
    read: (v) => ((v.rdLo = cpu.trAttr), (v.rdHi = 0)),
    write: (lo) => (cpu.trAttr = lo & 0x1f0ff),
  });
  set(VmcsField.GuestGdtrBase, {
    read: (v) => putLin(v, cpu, cpu.gdtrBase),
    write: (lo, hi) => (cpu.gdtrBase = lin48(lo, hi)),
  });
  set(VmcsField.GuestGdtrLimit, {
    read: (v) => ((v.rdLo = cpu.gdtrLimit), (v.rdHi = 0)),
    write: (lo) => (cpu.gdtrLimit = lo & 0xffff),
  });
  set(VmcsField.GuestIdtrBase, {
    read: (v) => putLin(v, cpu, cpu.idtrBase),
    write: (lo, hi) => (cpu.idtrBase = lin48(lo, hi)),
  });
  set(VmcsField.GuestIdtrLimit, {
    read: (v) => ((v.rdLo = cpu.idtrLimit), (v.rdHi = 0)),
    write: (lo) => (cpu.idtrLimit = lo & 0xffff),
  });
  // Control registers.
  set(VmcsField.GuestCr0, {
    read: (v) => ((v.rdLo = cpu.cr0), (v.rdHi = 0)),
    write: (lo) => {
      cpu.cr0 = lo;
      cpu.updateMode();
      cpu.refreshSegOk();
      cpu.flushTlb();
    },
  });
  set(VmcsField.GuestCr3, {
    read: (v) => putNum(v, cpu.cr3),
    write: (lo, hi) => {
      cpu.cr3 = (hi >>> 0) * TWO32 + (lo >>> 0);
      cpu.flushTlb();
    },
  });
  set(VmcsField.GuestCr4, {
    read: (v) => ((v.rdLo = cpu.cr4), (v.rdHi = 0)),
    write: (lo) => {
      cpu.cr4 = lo >>> 0;
      cpu.flushTlb();
    },
  });
  set(VmcsField.GuestDr7, {
    read: (v) => putNum(v, cpu.dr[7]!),
    write: (lo, hi) => (cpu.dr[7] = (hi >>> 0) * TWO32 + (lo >>> 0)),
  });
  set(VmcsField.GuestRsp, {
    read: (v) => ((v.rdLo = cpu.rl[4]!), (v.rdHi = cpu.rh[4]!)),
    write: (lo, hi) => ((cpu.rl[4] = lo), (cpu.rh[4] = hi)),
  });
  set(VmcsField.GuestRip, {
    read: (v) => putNum(v, cpu.rip),
    write: (lo, hi) => {
      cpu.rip = cpu.mode64 ? fromHalves(lo, hi) : lo >>> 0;
      cpu.invalidateFetch();
    },
  });
  set(VmcsField.GuestRflags, {
    read: (v) => ((v.rdLo = cpu.getFlags()), (v.rdHi = 0)),
    write: (lo) => {
      const vm = (cpu.fl ^ lo) & RFLAGS.VM;
      cpu.fl = (lo | RFLAGS.FIXED1) >>> 0;
      cpu.lfOp = 0;
      cpu.eventCheck = true;
      if (vm) cpu.updateMode();
    },
  });
  set(VmcsField.GuestIa32SysenterCs, {
    read: (v) => ((v.rdLo = cpu.sysenterCs), (v.rdHi = 0)),
    write: (lo) => (cpu.sysenterCs = lo),
  });
  set(VmcsField.GuestIa32SysenterEsp, {
    read: (v) => putNum(v, cpu.sysenterEsp),
    write: (lo, hi) => (cpu.sysenterEsp = fromHalves(lo, hi)),
  });
  set(VmcsField.GuestIa32SysenterEip, {
    read: (v) => putNum(v, cpu.sysenterEip),
    write: (lo, hi) => (cpu.sysenterEip = fromHalves(lo, hi)),
  });
  set(VmcsField.GuestIa32Pat, {
    read: (v) => ((v.rdLo = Number(cpu.pat & 0xffffffffn) | 0), (v.rdHi = Number(cpu.pat >> 32n) | 0)),
    write: (lo, hi) => (cpu.pat = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)),
  });
  set(VmcsField.GuestIa32Efer, {
    read: (v) => ((v.rdLo = cpu.efer), (v.rdHi = 0)),
    write: (lo) => {
      cpu.efer = lo;
      cpu.updateMode();
      cpu.flushTlb();
    },
  });
  set(VmcsField.GuestInterruptibilityState, {
    read: (v) => {
      let s = 0;
      if (cpu.shadow > 0)
        s |= cpu.shadowBySti ? Interruptibility.BlockingBySti : Interruptibility.BlockingByMovSs;
      if (cpu.nmiBlocked) s |= Interruptibility.BlockingByNmi;
      v.rdLo = s;
      v.rdHi = 0;
    },
    write: (lo) => {
      cpu.shadow = lo & (Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs) ? 1 : 0;
      cpu.shadowBySti = (lo & Interruptibility.BlockingBySti) !== 0;
      cpu.nmiBlocked = (lo & Interruptibility.BlockingByNmi) !== 0;
      cpu.eventCheck = true;
    },
  });
  set(VmcsField.GuestActivityState, {
    read: (v) => {
      v.rdLo = cpu.shutdown ? ActivityState.Shutdown : cpu.halted ? ActivityState.Hlt : ActivityState.Active;
      v.rdHi = 0;
    },
    write: (lo) => {
      cpu.halted = lo === ActivityState.Hlt || lo === ActivityState.Shutdown;
      cpu.shutdown = lo === ActivityState.Shutdown;
      cpu.eventCheck = true;
    },
  });
}
