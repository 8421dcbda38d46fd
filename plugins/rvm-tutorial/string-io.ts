/**
 * String I/O emulation (issue 6): INS and OUTS, with and without REP, to the guest's port devices.
 * The exit gives the port, size, direction and REP (qualification, SDM Vol. 3C 27.2.1 Table 28-5)
 * and the address size and OUTS segment (VM-exit instruction information, 27.2.5 Table 28-8).
 * Each element moves between the port and memory at ES:rDI (INS) or seg:rSI (OUTS), the linear
 * address going through the guest's paging and EPT (guest-view.ts); rDI/rSI step by the size,
 * backwards when RFLAGS.DF is set; with REP, rCX counts down (SDM Vol. 2 INS/OUTS, REP).
 *
 * A long REP is done in slices of MAX_PER_EXIT elements: RIP stays on the instruction with rCX,
 * rSI, rDI updated, and the next entry continues it, as a CPU does when an interrupt arrives
 * between iterations; pending interrupts get their chance in between.
 */
import type { Bus, MmioRegion } from '../../src/core/bus.js';
import { PFEC, Vector } from '../../src/x86/exceptions.js';
import { hex } from '../../src/core/addresses.js';
import { RFLAGS, Seg, SEG_NAMES } from '../../src/x86/regs.js';
import { GUEST_SEGMENT_BASE as SEG_BASE, IoInstrInfo, IoQual, VmcsField as F } from '../../src/x86/vmx.js';
import type { Vmx } from '../vmx/api.js';
import { SegAttr } from '../../src/x86/descriptor.js';
import { Access, type GuestView } from '../../src/x86/guest-view.js';
import type { Fault } from './mmio.js';
import { injectHardwareException } from './vcpu.js';

const TWO32 = 2 ** 32;
/** Elements moved per exit before the instruction is resumed (see the header). */
export const MAX_PER_EXIT = 4096;

export interface StringIoStats {
  /** INS/OUTS exits emulated, and the elements they moved. */
  stringIoExits: number;
  stringIoElements: number;
  /** Elements the guest's paging refused: #PF injected. */
  pageFaultsInjected: number;
}

export class StringIo {
  readonly stats: StringIoStats = { stringIoExits: 0, stringIoElements: 0, pageFaultsInjected: 0 };
  private readonly buf = new Uint8Array(4);
  /** Access bits of the current exit's memory operand for the guest page walk. */
  private access = 0;

  constructor(
    private readonly vmx: Vmx,
    private readonly guestBus: Bus,
    private readonly hostBus: Bus,
    private readonly view: GuestView,
    private readonly fault: Fault,
    /** Writes the guest's CR2: not VMCS guest state (SDM Vol. 3C 24.4.1), the VMM sets it itself. */
    private readonly setCr2: (linear: number) => void,
  ) {}

  /** Emulate the INS/OUTS of the current I/O exit. False when the run stops. */
  handle(q: number): boolean {
    const vmx = this.vmx;
    const view = this.view;
    const size = ((q & IoQual.SIZE_MASK) + 1) as 1 | 2 | 4;
    const port = q >>> IoQual.PORT_SHIFT;
    const input = (q & IoQual.IN) !== 0;
    const rep = (q & IoQual.REP) !== 0;
    const info = vmx.vmread32(F.VmExitInstructionInfo);
    const asz = (info >>> IoInstrInfo.ADDRESS_SIZE_SHIFT) & 7; // 0: 16, 1: 32, 2: 64 bits
    const seg = input ? Seg.ES : (info >>> IoInstrInfo.SEGMENT_SHIFT) & 7;
    if (asz > 2 || seg > Seg.GS) {
      this.fault(`string I/O: VM-exit instruction information ${hex(info)} is invalid`);
      return false;
    }
    view.refresh();
    const code = view.codeSize();
    const reg = input ? 7 : 6; // rDI or rSI
    const down = (vmx.vmread32(F.GuestRflags) & RFLAGS.DF) !== 0;
    const step = down ? -size : size;

    // The I/O exit comes before any memory access (SDM Vol. 3C 25.1.3): the guest's paging
    // permissions are checked here, at the CPL (SS.DPL, Vol. 3A 5.5).
    const user = (vmx.vmread32(F.GuestSsAccessRights) & SegAttr.DPL_MASK) === SegAttr.DPL_MASK;
    this.access = (input ? Access.Write : Access.Any) | (user ? Access.User : Access.Any);

    // rCX as a double: exact below 2^53, and a larger count is only compared with MAX_PER_EXIT.
    let count = 1;
    if (rep) {
      count = asz === 2 ? Number(vmx.getGpr(1)) : asz === 1 ? vmx.getGpr32(1) : vmx.getGpr32(1) & 0xffff;
      if (count === 0) {
        vmx.advanceRip();
        this.stats.stringIoExits++;
        return true;
      }
    }
    const todo = Math.min(count, MAX_PER_EXIT);
    // Offset as a double: exact for 16/32-bit address sizes; a 64-bit rSI/rDI is split below.
    let offLo = vmx.getGpr32(reg);
    let offHi = asz === 2 ? Number(vmx.getGpr(reg) >> 32n) : 0;
    if (asz === 0) offLo &= 0xffff;
    // The segment base as two dwords: in 64-bit mode only FS and GS have one (SDM Vol. 3A 3.4.4).
    let segLo = 0;
    let segHi = 0;
    if (code !== 64) segLo = vmx.vmread32(SEG_BASE[seg]!);
    else if (seg >= Seg.FS) {
      const b = vmx.vmread(SEG_BASE[seg]!) ?? 0n;
      segLo = Number(b & 0xffff_ffffn);
      segHi = Number((b >> 32n) & 0xffff_ffffn);
    }
    const buf = this.buf;
    let done = 0;
    for (; done < todo; done++) {
      // The element's linear address.
      let linLo: number;
      let linHi: number;
      if (code === 64) {
        // 64-bit addition of two dword pairs, wrapped (no BigInt per element).
        linLo = segLo + offLo;
        linHi = segHi + offHi;
        if (linLo >= TWO32) {
          linLo -= TWO32;
          linHi++;
        }
        linHi >>>= 0;
      } else {
        linLo = (segLo + offLo) % TWO32;
        linHi = 0;
      }
      // Every byte is reachable before the port is touched: an element that faults is not moved,
      // so an INS never loses what it read from the device.
      if (!this.translate(linLo, linHi, size)) break;
      if (input) {
        const v = this.guestBus.ioRead(port, size);
        buf[0] = v;
        buf[1] = v >>> 8;
        buf[2] = v >>> 16;
        buf[3] = v >>> 24;
        this.transfer(size, true);
      } else {
        this.transfer(size, false);
        const v = buf[0]! | (buf[1]! << 8) | (buf[2]! << 16) | (buf[3]! << 24);
        this.guestBus.ioWrite(port, size, size === 4 ? v >>> 0 : v & (size === 1 ? 0xff : 0xffff));
      }
      // rSI/rDI += step, wrapped to the address size.
      if (asz === 2) {
        let lo = offLo + step;
        let hi = offHi;
        if (lo >= TWO32) {
          lo -= TWO32;
          hi = (hi + 1) >>> 0;
        } else if (lo < 0) {
          lo += TWO32;
          hi = (hi - 1) >>> 0;
        }
        offLo = lo;
        offHi = hi;
      } else offLo = (offLo + step) & (asz === 1 ? 0xffff_ffff : 0xffff);
      offLo >>>= 0;
    }
    const failed = done < todo;
    // Registers as the instruction leaves them (a 16-bit address size changes only SI/DI/CX).
    if (asz === 2) vmx.setGpr(reg, (BigInt(offHi) << 32n) | BigInt(offLo));
    else vmx.setGprPart(reg, asz === 1 ? 4 : 2, offLo);
    if (rep) {
      // A 64-bit rCX above 2^53 is not exact as a double: subtract from the register itself.
      if (asz === 2) vmx.setGpr(1, vmx.getGpr(1) - BigInt(done));
      else vmx.setGprPart(1, asz === 1 ? 4 : 2, count - done);
    }
    this.stats.stringIoExits++;
    this.stats.stringIoElements += done;
    if (failed && (view.failure === 'not-present' || view.failure === 'protection')) {
      // The guest's own paging refuses the element: #PF to the guest (SDM Vol. 3A 4.7), RIP on
      // the instruction (a fault), rCX/rSI/rDI past the elements moved, CR2 the faulting byte.
      const errorCode =
        (view.failure === 'protection' ? PFEC.P : 0) |
        (input ? PFEC.W : 0) |
        (this.access & Access.User ? PFEC.U : 0);
      injectHardwareException(vmx, Vector.PF, errorCode);
      this.setCr2((this.failedHi | 0) * TWO32 + this.failedLo);
      vmx.vmwrite(F.GuestRip, vmx.vmread(F.GuestRip) ?? 0n);
      this.stats.pageFaultsInjected++;
      return true;
    }
    if (failed) {
      this.fault(
        `string I/O (${input ? 'INS' : 'OUTS'}${rep ? ' with REP' : ''}, port ${hex(port, 4)}, size ${size}): ` +
          `the memory operand at ${SEG_NAMES[seg]}:${hex(offHi * TWO32 + offLo)} cannot be reached: ${view.describeFailure()}`,
      );
      return false;
    }
    // Done when the count ran out (or no REP); otherwise RIP stays and the next entry goes on.
    // RIP is written back explicitly: the CPU model resumes past an instruction exit unless the
    // handler writes RIP (it continues from its own fetch position otherwise).
    if (!rep || done === count) vmx.advanceRip();
    else vmx.vmwrite(F.GuestRip, vmx.vmread(F.GuestRip) ?? 0n);
    return true;
  }

  /**
   * Where each byte of the element at linear (lo, hi) goes: host-physical (guest RAM through EPT)
   * or a guest device's MMIO. Byte by byte: an element may cross into a page mapped elsewhere.
   * False when a byte cannot be reached (view.failure says why; failedLo/Hi is its address).
   */
  private translate(lo: number, hi: number, size: number): boolean {
    const view = this.view;
    const write = (this.access & Access.Write) !== 0;
    for (let i = 0; i < size; i++) {
      let l = lo + i;
      let h = hi;
      if (l >= TWO32) {
        l -= TWO32;
        h = (h + 1) >>> 0;
      }
      this.failedLo = l;
      this.failedHi = h;
      const gpa = view.linearToGpa(l, h, this.access);
      if (gpa < 0) return false;
      const hpa = view.eptTranslate(gpa, write);
      this.hpa[i] = hpa;
      if (hpa >= 0) continue;
      // Not guest RAM: a guest device's MMIO page (the access goes to the device), else a stop.
      const region = this.guestBus.regionAt(gpa);
      if (region?.kind !== 'mmio') return false;
      this.mmio[i] = region;
      this.mmioOffset[i] = gpa - region.base;
    }
    return true;
  }

  /** Copy buf[0..size) to (write) or from the bytes translate() found. */
  private transfer(size: number, write: boolean): void {
    for (let i = 0; i < size; i++) {
      const hpa = this.hpa[i]!;
      if (hpa >= 0) {
        if (write) this.hostBus.write(hpa, 1, this.buf[i]!);
        else this.buf[i] = this.hostBus.read(hpa, 1);
        continue;
      }
      const device = this.mmio[i]!.device;
      if (write) device.mmioWrite(this.mmioOffset[i]!, 1, this.buf[i]!);
      else this.buf[i] = device.mmioRead(this.mmioOffset[i]!, 1);
    }
  }

  /** Per byte of the current element (translate): host-physical address, or -1 and the MMIO region. */
  private readonly hpa = new Float64Array(4);
  private readonly mmio: MmioRegion[] = [];
  private readonly mmioOffset = new Float64Array(4);
  /** The linear address of the byte translate() stopped at. */
  private failedLo = 0;
  private failedHi = 0;
}
