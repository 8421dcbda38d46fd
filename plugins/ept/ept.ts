/**
 * The ept plugin's instance: the NestedPaging a virtualization plugin calls (translate, the last
 * violation, INVEPT), what the implementation supports (the EPT half of IA32_VMX_EPT_VPID_CAP and
 * the VM-entry checks on an EPTP), and table building for the VMM policy.
 */
import type { Bus } from '../../src/core/bus.js';
import type { NestedPaging, NestedPagingViolation } from '../../src/core/nested-paging.js';
import {
  EPT_VPID_CAP,
  EPTP,
  EPTP_WALK_LENGTH_SHIFT,
  EptMemType,
  InveptType,
  type EptPageSize,
} from '../../src/x86/ept.js';
import type { TranslateRequest } from '../x86-64/hooks.js';
import { EptBuilder, createPageAllocator, type EptBuilderOptions } from './tables.js';
import { EptWalker, type EptFeatures, type EptTranslation, type EptWalkStats } from './walk.js';

export class Ept implements NestedPaging {
  readonly walker: EptWalker;
  readonly lastViolation: NestedPagingViolation;
  /** Details of the last successful translation (memory type, page size, permissions). */
  readonly last: EptTranslation;
  readonly features: Readonly<EptFeatures>;
  private readonly bus: Bus;
  private flushTlb: (() => void) | null;

  constructor(bus: Bus, features: EptFeatures, flushTlb: (() => void) | null = null) {
    this.bus = bus;
    this.walker = new EptWalker(bus, features);
    this.features = this.walker.features;
    this.lastViolation = this.walker.lastViolation;
    this.last = this.walker.last;
    this.flushTlb = flushTlb;
  }

  translate(eptp: number, r: TranslateRequest): number {
    return this.walker.translate(eptp, r);
  }

  /**
   * INVEPT (SDM 28.4.3.1, 30.3). The CPU's TLB holds combined mappings without an EP4TA tag, so
   * both types flush all of it (invalidating more than required is allowed).
   */
  invept(type: 1 | 2, eptp: number): void {
    this.walker.invalidate(type === 1 ? InveptType.SingleContext : InveptType.AllContext, eptp);
    this.flushTlb?.();
  }

  /** Set what drops the CPU's cached combined translations (the CPU's flushTlb). */
  connectTlb(flush: (() => void) | null): void {
    this.flushTlb = flush;
  }

  /** Drop every cached translation (machine reset). */
  reset(): void {
    this.walker.reset();
  }

  get stats(): Readonly<EptWalkStats> {
    return this.walker.stats;
  }

  /** The EPT bits of IA32_VMX_EPT_VPID_CAP (low dword; appendix A.10), as an unsigned 32-bit value. */
  capabilities(): number {
    const f = this.features;
    let c =
      EPT_VPID_CAP.WALK_LENGTH_4 |
      EPT_VPID_CAP.MEMTYPE_UC |
      EPT_VPID_CAP.MEMTYPE_WB |
      EPT_VPID_CAP.INVEPT |
      EPT_VPID_CAP.INVEPT_SINGLE_CONTEXT |
      EPT_VPID_CAP.INVEPT_ALL_CONTEXT;
    if (f.executeOnly) c |= EPT_VPID_CAP.EXECUTE_ONLY;
    if (f.walkLength5) c |= EPT_VPID_CAP.WALK_LENGTH_5;
    if (f.page2M) c |= EPT_VPID_CAP.PAGE_2M;
    if (f.page1G) c |= EPT_VPID_CAP.PAGE_1G;
    if (f.accessDirty) c |= EPT_VPID_CAP.ACCESS_DIRTY;
    return c >>> 0;
  }

  /**
   * The VM-entry checks on the EPTP (SDM 26.2.1.1): undefined when valid, else why not (for the
   * VMX model's entry-failure diagnostics).
   */
  checkEptp(eptp: number): string | undefined {
    if (!Number.isSafeInteger(eptp) || eptp < 0) return 'EPTP is not a 64-bit value below 2^53';
    const mt = eptp & EPTP.MEMTYPE;
    if (mt !== EptMemType.UC && mt !== EptMemType.WB) return `EPTP memory type ${mt} is not supported`;
    const wl = ((eptp & EPTP.WALK_LENGTH) >> EPTP_WALK_LENGTH_SHIFT) + 1;
    if (wl !== 4 && !(wl === 5 && this.features.walkLength5))
      return `EPTP page-walk length ${wl} is not supported`;
    if (eptp & EPTP.ACCESS_DIRTY && !this.features.accessDirty)
      return 'EPTP enables A/D flags, not supported';
    if (eptp & EPTP.SUPERVISOR_SHADOW_STACK)
      return 'EPTP enables supervisor shadow-stack control, not supported';
    if (eptp & EPTP.RESERVED) return 'EPTP reserved bits 11:8 are set';
    if (eptp >= 2 ** this.features.maxPhysAddr) return `EPTP bits 63:${this.features.maxPhysAddr} are set`;
    return undefined;
  }

  /**
   * A table builder whose page allocator takes pages from host RAM [tableBase, tableBase+tableSize),
   * using the page sizes and walk length this EPT supports.
   */
  createTables(tableBase: number, tableSize: number, opts: EptBuilderOptions = {}): EptBuilder {
    const f = this.features;
    const sizes: EptPageSize[] = ['4K'];
    if (f.page2M) sizes.push('2M');
    if (f.page1G) sizes.push('1G');
    return new EptBuilder(this.bus, createPageAllocator(this.bus, tableBase, tableSize, opts.owner), {
      pageSizes: sizes,
      executeOnly: f.executeOnly,
      maxPhysAddr: f.maxPhysAddr,
      ...opts,
    });
  }
}
