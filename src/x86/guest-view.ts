/**
 * The guest's memory as the hypervisor sees it when it emulates an instruction: a guest linear
 * address goes through the guest's own paging (CR0.PG off, 32-bit, PAE or 4-level: SDM Vol. 3A
 * 4.3-4.5) to a guest-physical address, and that through the EPT the VMCS names (SDM Vol. 3C 28.3.2)
 * to host-physical memory. The walks read the tables from host memory; nothing is cached, so the
 * guest's page-table edits and CR3 loads are always seen.
 *
 * Linear addresses are passed as two dwords (lo, hi): a 64-bit guest's kernel addresses do not fit a
 * double. No allocation per call.
 */
import type { Bus } from '../core/bus.js';
import { EPTE, EPTE_HI_ADDRESS } from './ept.js';
import { CR3_PAE_PDPT, PTE, PTE_ADDR_HI, PTE_ADDR_LO } from './paging.js';
import { CR0, CR4, EFER } from './regs.js';
import { SegAttr } from './descriptor.js';
import { Proc2Ctl, ProcCtl, VmcsField as F } from './vmx.js';
import type { CodeSize } from './mem-insn.js';
import type { Vmx } from '../../plugins/vmx/api.js';

const TWO32 = 2 ** 32;
const PAGE = 4096;
/** Why the last translation failed (for the stop message). */
export type WalkFailure = 'none' | 'not-present' | 'protection' | 'ept' | 'ept-read-only' | '5-level';

/** What `linearToGpa` checks besides presence (an access the CPU has not checked itself). */
export const Access = {
  /** Presence only: the CPU checked the access before EPT stopped it (MMIO). */
  Any: 0,
  /** A data write: R/W in every level when CR0.WP is set or at CPL 3 (SDM Vol. 3A 4.6.1). */
  Write: 1,
  /** At CPL 3: U/S in every level (4.6.1). */
  User: 2,
} as const;

export class GuestView {
  /** Guest paging state, read by `refresh()` at the start of an emulation. */
  private cr0 = 0;
  private cr3 = 0;
  private cr4 = 0;
  private lma = false;
  private eptRoot = 0;
  /** After a failed translation: why. */
  failure: WalkFailure = 'none';
  /** After a failed translation: the guest-physical address that had no EPT mapping. */
  failedGpa = 0;

  constructor(
    private readonly vmx: Vmx,
    private readonly hostBus: Bus,
  ) {}

  /** Read the guest's paging controls and the EPTP from the VMCS (once per emulated exit). */
  refresh(): void {
    const v = this.vmx;
    this.cr0 = v.vmread32(F.GuestCr0);
    this.cr3 = v.vmread32(F.GuestCr3); // guest RAM lies below 4 GiB: the tables' addresses too
    this.cr4 = v.vmread32(F.GuestCr4);
    this.lma = (v.vmread32(F.GuestIa32Efer) & EFER.LMA) !== 0;
    // EPTP bits 51:12 (SDM 24.6.11); F.EptPointer + 1 is its high dword ("high" access encoding).
    this.eptRoot =
      (v.vmread32(F.EptPointer) & PTE_ADDR_LO) + (v.vmread32(F.EptPointer + 1) & 0xfffff) * TWO32;
    // Without "enable EPT" (SDM 24.6.2) guest-physical addresses are host-physical.
    this.ept =
      (v.vmread32(F.PrimaryProcBasedVmExecControls) & ProcCtl.ActivateSecondaryControls) !== 0 &&
      (v.vmread32(F.SecondaryProcBasedVmExecControls) & Proc2Ctl.EnableEpt) !== 0;
  }

  private ept = true;

  /** The code segment's size: 64 in 64-bit mode (CS.L with IA32_EFER.LMA), else CS.D. */
  codeSize(): CodeSize {
    const ar = this.vmx.vmread32(F.GuestCsAccessRights);
    if (this.lma && ar & SegAttr.L) return 64;
    return ar & SegAttr.DB ? 32 : 16;
  }

  get paging(): 'none' | '32-bit' | 'PAE' | '4-level' {
    if (!(this.cr0 & CR0.PG)) return 'none';
    if (!(this.cr4 & CR4.PAE)) return '32-bit';
    return this.lma ? '4-level' : 'PAE';
  }

  /**
   * Host-physical address of a guest-physical address through EPT (a 4-level walk from the EPTP),
   * or -1 when no readable leaf maps it (or, with `write`, when an entry on the way denies writes:
   * SDM Vol. 3C 28.3.3.2, the write permission is the AND of bit 1 of every entry).
   */
  eptTranslate(gpa: number, write = false): number {
    if (!this.ept) return gpa;
    const bus = this.hostBus;
    let table = this.eptRoot;
    for (let level = 3; level >= 0; level--) {
      const shift = 12 + 9 * level;
      const idx = Math.floor(gpa / 2 ** shift) % 512;
      const at = table + idx * 8;
      const lo = bus.read(at, 4);
      const hi = bus.read(at + 4, 4);
      if (!(lo & EPTE.READ)) {
        this.failure = 'ept';
        this.failedGpa = gpa;
        return -1;
      }
      if (write && !(lo & EPTE.WRITE)) {
        this.failure = 'ept-read-only';
        this.failedGpa = gpa;
        return -1;
      }
      const addr = (hi & EPTE_HI_ADDRESS) * TWO32 + ((lo & PTE_ADDR_LO) >>> 0);
      if (level === 0 || (level <= 2 && lo & EPTE.PAGE_SIZE)) {
        const span = 2 ** shift;
        return addr - (addr % span) + (gpa % span);
      }
      table = addr;
    }
    return -1;
  }

  /** A dword of guest-physical memory through EPT (NaN when not mapped). */
  private readGpa32(gpa: number): number {
    const hpa = this.eptTranslate(gpa);
    return hpa < 0 ? NaN : this.hostBus.read(hpa, 4);
  }

  /**
   * The guest-physical address of linear address (lo, hi) through the guest's paging, or -1 (see
   * `failure`). `access` (Access bits) adds the R/W and U/S checks of an access the CPU did not
   * check itself (INS/OUTS exit before touching memory); the MMIO path passes Access.Any: the
   * instruction passed the guest's own permission checks before EPT stopped it.
   */
  linearToGpa(lo: number, hi: number, access = 0): number {
    lo >>>= 0;
    this.failure = 'none';
    // Bits an entry must have: R/W for a supervisor write only with CR0.WP (SDM Vol. 3A 4.6.1).
    const need =
      (access & Access.Write && (access & Access.User || this.cr0 & CR0.WP) ? PTE.RW : 0) |
      (access & Access.User ? PTE.US : 0);
    if (!(this.cr0 & CR0.PG)) return this.lma ? hi * TWO32 + lo : lo;
    if (!(this.cr4 & CR4.PAE)) {
      // 32-bit paging (SDM 4.3): 4-byte entries, 4 MiB pages with CR4.PSE (PSE-36 bits 20:13).
      const pde = this.readGpa32(((this.cr3 & PTE_ADDR_LO) >>> 0) + (lo >>> 22) * 4);
      if (Number.isNaN(pde)) return -1;
      if (!(pde & PTE.P)) return this.notPresent();
      // Rights combine over the levels; a lower entry that is not present still makes it a
      // not-present fault (SDM 4.7: P=0).
      const deniedPde = (pde & need) !== need;
      if (pde & PTE.PS && this.cr4 & CR4.PSE) {
        if (deniedPde) return this.denied();
        return ((pde & 0xffc0_0000) >>> 0) + ((pde >>> 13) & 0xff) * TWO32 + (lo & 0x3f_ffff);
      }
      const pte = this.readGpa32(((pde & PTE_ADDR_LO) >>> 0) + ((lo >>> 12) & 0x3ff) * 4);
      if (Number.isNaN(pte)) return -1;
      if (!(pte & PTE.P)) return this.notPresent();
      if (deniedPde || (pte & need) !== need) return this.denied();
      return ((pte & PTE_ADDR_LO) >>> 0) + (lo & 0xfff);
    }
    let table: number;
    let level: number;
    if (this.lma) {
      if (this.cr4 & CR4.LA57) {
        this.failure = '5-level';
        return -1;
      }
      table = (this.cr3 & PTE_ADDR_LO) >>> 0;
      level = 3;
    } else {
      // PAE (SDM 4.4): the PDPTE from the 32-byte table CR3 points to; bits 31:30 select it.
      table = (this.cr3 & CR3_PAE_PDPT) >>> 0;
      level = 2;
    }
    let denied = false;
    for (; level >= 0; level--) {
      // Index bits: 47:39, 38:30, 29:21, 20:12 (the PAE PDPT index is bits 31:30).
      const idx =
        level === 3
          ? (hi >>> 7) & 0x1ff
          : level === 2
            ? this.lma
              ? ((hi & 0x7f) << 2) | (lo >>> 30)
              : lo >>> 30
            : level === 1
              ? (lo >>> 21) & 0x1ff
              : (lo >>> 12) & 0x1ff;
      const at = table + idx * 8;
      const eLo = this.readGpa32(at);
      if (Number.isNaN(eLo)) return -1;
      if (!(eLo & PTE.P)) return this.notPresent();
      // PAE PDPTEs have no R/W or U/S bits (SDM 4.4.1): the checks start at the PDE.
      if ((eLo & need) !== need && (this.lma || level < 2)) denied = true;
      const eHi = this.readGpa32(at + 4);
      if (Number.isNaN(eHi)) return -1;
      const addr = (eHi & PTE_ADDR_HI) * TWO32 + ((eLo & PTE_ADDR_LO) >>> 0);
      // Large pages: a 1 GiB PDPTE (4-level only) or a 2 MiB PDE.
      const large = (level === 1 || (level === 2 && this.lma)) && (eLo & PTE.PS) !== 0;
      if ((large || level === 0) && denied) return this.denied();
      if (level === 1 && large) return addr - (addr % 0x20_0000) + (lo & 0x1f_ffff);
      if (level === 2 && large) return addr - (addr % 0x4000_0000) + (lo & 0x3fff_ffff);
      if (level === 0) return addr + (lo & 0xfff);
      table = addr;
    }
    return -1;
  }

  private denied(): number {
    this.failure = 'protection';
    return -1;
  }

  private notPresent(): number {
    this.failure = 'not-present';
    return -1;
  }

  /**
   * Copy up to `n` bytes at linear (lo, hi) into `out` through guest paging and EPT (guest RAM
   * only). Returns how many bytes could be read: fewer when a later page is not mapped.
   */
  readLinear(lo: number, hi: number, out: Uint8Array, n: number): number {
    let done = 0;
    lo >>>= 0;
    while (done < n) {
      const gpa = this.linearToGpa(lo, hi);
      if (gpa < 0) return done;
      const hpa = this.eptTranslate(gpa);
      if (hpa < 0) return done;
      const chunk = Math.min(n - done, PAGE - (lo % PAGE));
      const ram = this.hostBus.ramAt(hpa);
      if (ram === undefined || hpa + chunk > ram.base + ram.size) return done;
      const data = ram.data;
      const from = hpa - ram.base;
      for (let i = 0; i < chunk; i++) out[done + i] = data[from + i]!;
      done += chunk;
      lo += chunk;
      if (lo >= TWO32) {
        lo -= TWO32;
        hi = (hi + 1) >>> 0;
      }
    }
    return done;
  }

  /** Describe the last failure for a stop message. */
  describeFailure(): string {
    switch (this.failure) {
      case 'not-present':
        return `not present in the guest's ${this.paging} page tables`;
      case 'protection':
        return `the guest's ${this.paging} page tables do not allow the access (R/W or U/S)`;
      case 'ept':
        return `guest-physical 0x${this.failedGpa.toString(16)} is not mapped by EPT`;
      case 'ept-read-only':
        return `guest-physical 0x${this.failedGpa.toString(16)} is not writable in EPT`;
      case '5-level':
        return '5-level paging (CR4.LA57) is not supported by this policy';
      default:
        return 'not translated';
    }
  }
}
