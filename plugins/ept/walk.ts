/**
 * The EPT walker: guest-physical to host-physical through the tables in host memory, exactly as
 * SDM Vol. 3C 28.3.2 describes, with the misconfiguration (28.3.3.1) and violation (28.3.3.2)
 * checks, accessed/dirty flags (28.3.5), and a small cache of guest-physical mappings tagged by
 * EP4TA (28.4.1) that INVEPT invalidates (28.4.3.1).
 *
 * Hot path: no allocation, no exceptions, no Map look-ups. Entries are read straight from the RAM
 * region's bytes through a DataView made once per region; each entry is two 32-bit halves.
 */
import type { Bus, RamRegion } from '../../src/core/bus.js';
import type { NestedPagingViolation } from '../../src/core/nested-paging.js';
import {
  EPTE,
  EPTE_HI_ADDRESS,
  EPTE_MEMTYPE_SHIFT,
  EPTE_RESERVED,
  EPTE_RWX,
  EPTP,
  EPTP_WALK_LENGTH_SHIFT,
  EPT_VIOLATION_PERM_SHIFT,
  EptViolation,
  InveptType,
} from '../../src/x86/ept.js';
import type { TranslateRequest } from '../x86-64/hooks.js';

// Module-local copies of the imported constants: a hot path must not read them through a
// module namespace (transpiled imports become property getters under jiti and vite-node).
const READ = EPTE.READ;
const WRITE = EPTE.WRITE;
const EXECUTE = EPTE.EXECUTE;
const RWX = EPTE_RWX;
const PAGE_SIZE_BIT = EPTE.PAGE_SIZE;
const MEMTYPE = EPTE.MEMTYPE;
const MEMTYPE_SHIFT = EPTE_MEMTYPE_SHIFT;
const IGNORE_PAT = EPTE.IGNORE_PAT;
const ACCESSED = EPTE.ACCESSED;
const DIRTY = EPTE.DIRTY;
const HI_ADDRESS = EPTE_HI_ADDRESS;
const RSVD_PML4E = EPTE_RESERVED.PML4E;
const RSVD_TABLE = EPTE_RESERVED.TABLE;
const RSVD_1G = EPTE_RESERVED.PAGE_1G;
const RSVD_2M = EPTE_RESERVED.PAGE_2M;
const RSVD_4K = EPTE_RESERVED.PAGE_4K;
const EPTP_AD = EPTP.ACCESS_DIRTY;
const WALK_SHIFT = EPTP_WALK_LENGTH_SHIFT;
const PERM_SHIFT = EPT_VIOLATION_PERM_SHIFT;
const Q_READ = EptViolation.DATA_READ;
const Q_WRITE = EptViolation.DATA_WRITE;
const Q_FETCH = EptViolation.INSTRUCTION_FETCH;
const Q_LINEAR_VALID = EptViolation.LINEAR_VALID;
const Q_LINEAR_TRANSLATION = EptViolation.LINEAR_TRANSLATION;

const TWO32 = 4294967296;
/** Bytes covered by one entry at each level: 4 KiB (PTE) up to 256 TiB (PML5E). */
const LEVEL_BYTES = [2 ** 12, 2 ** 21, 2 ** 30, 2 ** 39, 2 ** 48];
const ADDR_LO = 0xfffff000;
/** Cached-translation info bits (cInfo): R/W/X in 2:0, then these. */
const INFO_DIRTY = 1 << 3;
const INFO_MEMTYPE_SHIFT = 4;
const INFO_IGNORE_PAT = 1 << 7;
const INFO_AD = 1 << 8;
const INFO_LEVEL_SHIFT = 9;

/** What this EPT implementation supports (the EPT half of IA32_VMX_EPT_VPID_CAP). */
export interface EptFeatures {
  /** Execute-only entries (bits 2:0 = 100b) are allowed (EPT_VPID_CAP bit 0). */
  executeOnly: boolean;
  /** 2 MiB pages (bit 16). */
  page2M: boolean;
  /** 1 GiB pages (bit 17). */
  page1G: boolean;
  /** Accessed and dirty flags (bit 21); without it EPTP bit 6 is ignored by the walk. */
  accessDirty: boolean;
  /** 5-level walks (bit 7); 4-level walks are always supported. */
  walkLength5: boolean;
  /** The CPU's physical-address width: entry address bits at and above it are reserved. */
  maxPhysAddr: number;
  /** Entries of the guest-physical translation cache (a power of two; 0 disables it). */
  cacheEntries: number;
}

export interface EptWalkStats {
  walks: number;
  cacheHits: number;
  violations: number;
  misconfigs: number;
  accessedSet: number;
  dirtySet: number;
  inveptSingle: number;
  inveptAll: number;
}

/** Details of the last successful translation (one reused object). */
export interface EptTranslation {
  /** EPT memory type of the leaf entry (bits 5:3). */
  memType: number;
  /** Leaf entry bit 6. */
  ignorePat: boolean;
  /** The AND of bits 2:0 over the entries used. */
  perms: number;
  /** Bytes mapped by the leaf entry (4 KiB, 2 MiB or 1 GiB). */
  pageBytes: number;
}

export class EptWalker {
  readonly lastViolation: NestedPagingViolation = { gpa: 0, qualification: 0, misconfig: false, linear: -1 };
  readonly last: EptTranslation = { memType: 0, ignorePat: false, perms: 0, pageBytes: 0 };
  readonly stats: EptWalkStats = {
    walks: 0,
    cacheHits: 0,
    violations: 0,
    misconfigs: 0,
    accessedSet: 0,
    dirtySet: 0,
    inveptSingle: 0,
    inveptAll: 0,
  };
  readonly features: Readonly<EptFeatures>;

  private readonly bus: Bus;
  /** Reserved address bits 51:MAXPHYADDR, as bits of an entry's high dword. */
  private readonly rsvdHi: number;

  // RAM regions seen so far and a DataView over each (made once per region).
  private readonly regions: RamRegion[] = [];
  private readonly views: DataView[] = [];
  private view: DataView | null = null;
  private vRegion: RamRegion | null = null;
  private vBase = 0;
  private vEnd = 0;

  // The entry just read, and the entries used by the current walk (for A/D updates).
  private lo = 0;
  private hi = 0;
  private readonly eAddr = new Float64Array(5);
  private readonly eLo = new Int32Array(5);

  // Guest-physical translation cache, direct-mapped by guest page number XOR top-table page number.
  private readonly cMask: number;
  private readonly cPage: Float64Array;
  private readonly cRoot: Float64Array;
  private readonly cHost: Float64Array;
  private readonly cInfo: Uint16Array;

  constructor(bus: Bus, features: EptFeatures) {
    this.bus = bus;
    this.features = { ...features };
    const m = features.maxPhysAddr;
    this.rsvdHi = m >= 52 ? 0 : HI_ADDRESS & ~(2 ** (m - 32) - 1);
    const n = features.cacheEntries;
    if (n !== 0 && (n & (n - 1)) !== 0) throw new RangeError(`EPT cache size ${n} is not a power of two`);
    this.cMask = n - 1;
    this.cPage = new Float64Array(n).fill(-1);
    this.cRoot = new Float64Array(n);
    this.cHost = new Float64Array(n);
    this.cInfo = new Uint16Array(n);
  }

  /** Drop every cached translation (reset). */
  reset(): void {
    this.cPage.fill(-1);
  }

  /**
   * INVEPT (28.4.3.1): single-context drops the guest-physical mappings cached for the EP4TA (EPTP
   * bits 51:12) of `eptp`; all-context drops them for every EP4TA. Combined mappings live in the
   * CPU's TLB, which the caller flushes.
   */
  invalidate(type: InveptType, eptp: number): void {
    if (type === InveptType.AllContext) {
      this.stats.inveptAll++;
      this.cPage.fill(-1);
      return;
    }
    this.stats.inveptSingle++;
    const ep4ta = ep4taOf(eptp);
    const root = this.cRoot;
    const page = this.cPage;
    for (let i = 0; i < page.length; i++) if (root[i] === ep4ta) page[i] = -1;
  }

  /**
   * Translate `r.gpa` through the EPT that `eptp` points to. Returns the host-physical address,
   * or -1 with `lastViolation` filled in.
   */
  translate(eptp: number, r: TranslateRequest): number {
    const gpa = r.gpa;
    const ad = (eptp & EPTP_AD) !== 0 && this.features.accessDirty;
    // With EPT A/D enabled, the CPU's own accesses to guest paging structures count as writes (28.3.3.2).
    const writeLike = r.write || (r.walk && ad);
    const need = r.fetch ? EXECUTE : writeLike ? WRITE : READ;
    const ep4ta = ep4taOf(eptp);
    if (this.cMask >= 0) {
      const page = Math.floor(gpa / 4096);
      const i = (page ^ (ep4ta / 4096)) & this.cMask;
      if (this.cPage[i] === page && this.cRoot[i] === ep4ta) {
        const info = this.cInfo[i]!;
        // A cached entry serves the access only if it allows it and needs no A/D update.
        if (
          info & need &&
          (info & INFO_AD) === (ad ? INFO_AD : 0) &&
          (!ad || !writeLike || info & INFO_DIRTY)
        ) {
          this.stats.cacheHits++;
          const last = this.last;
          last.memType = (info >> INFO_MEMTYPE_SHIFT) & 7;
          last.ignorePat = (info & INFO_IGNORE_PAT) !== 0;
          last.perms = info & RWX;
          last.pageBytes = LEVEL_BYTES[info >> INFO_LEVEL_SHIFT]!;
          return this.cHost[i]! + (gpa % 4096);
        }
      }
    }
    return this.walk(eptp, r, need, writeLike, ad, ep4ta);
  }

  private walk(
    eptp: number,
    r: TranslateRequest,
    need: number,
    writeLike: boolean,
    ad: boolean,
    ep4ta: number,
  ): number {
    this.stats.walks++;
    const gpa = r.gpa;
    const f = this.features;
    const levels = ((eptp >>> WALK_SHIFT) & 7) + 1;
    // An EPTP that VM entry refuses (26.2.1.1) cannot be in use; should one get here, report a
    // misconfiguration rather than walk a structure of undefined shape.
    if (levels !== 4 && !(levels === 5 && f.walkLength5)) return this.misconfig(gpa);
    let tableLo = ep4ta % TWO32;
    let tableHi = Math.floor(ep4ta / TWO32);
    let level = levels - 1;
    let perm = RWX;
    let n = 0;
    let lo = 0;
    let hi = 0;
    for (;;) {
      const addr = tableHi * TWO32 + tableLo + (Math.floor(gpa / LEVEL_BYTES[level]!) & 511) * 8;
      this.readEntry(addr);
      lo = this.lo;
      hi = this.hi;
      this.eAddr[n] = addr;
      this.eLo[n] = lo;
      n++;
      const rwx = lo & RWX;
      perm &= rwx;
      // Not present (bits 2:0 = 000b): a violation, whatever the other bits hold.
      if (rwx === 0) return this.violation(r, 0, ad);
      // Write without read, or execute-only where unsupported (28.3.3.1).
      if ((lo & READ) === 0 && ((lo & WRITE) !== 0 || !f.executeOnly)) return this.misconfig(gpa);
      if (hi & this.rsvdHi) return this.misconfig(gpa);
      let leaf = level === 0;
      if (level > 0 && lo & PAGE_SIZE_BIT) {
        // Bit 7 maps a page in a PDPTE/PDE when that page size is supported; otherwise it is reserved.
        if ((level === 1 && f.page2M) || (level === 2 && f.page1G)) leaf = true;
        else return this.misconfig(gpa);
      }
      if (leaf) {
        const rsvd = level === 0 ? RSVD_4K : level === 1 ? RSVD_2M : RSVD_1G;
        if (lo & rsvd) return this.misconfig(gpa);
        const mt = (lo & MEMTYPE) >> MEMTYPE_SHIFT;
        if (mt === 2 || mt === 3 || mt === 7) return this.misconfig(gpa);
        break;
      }
      if (lo & (level >= 3 ? RSVD_PML4E : RSVD_TABLE)) return this.misconfig(gpa);
      tableLo = (lo & ADDR_LO) >>> 0;
      tableHi = hi & HI_ADDRESS;
      level--;
    }
    if ((perm & need) === 0) return this.violation(r, perm, ad);

    // Accessed flags on every entry used, dirty on the leaf for writes (28.3.5); only once the
    // translation succeeded (a violation or misconfiguration leaves the entries as they were).
    let dirty = (lo & DIRTY) !== 0;
    if (ad) {
      const last = n - 1;
      for (let k = 0; k < n; k++) {
        const e = this.eLo[k]!;
        let set = e & ACCESSED ? 0 : ACCESSED;
        if (k === last && writeLike && !dirty) {
          set |= DIRTY;
          this.stats.dirtySet++;
          dirty = true;
        }
        if (set & ACCESSED) this.stats.accessedSet++;
        if (set !== 0) this.writeLo(this.eAddr[k]!, e | set);
      }
    }
    const bytes = LEVEL_BYTES[level]!;
    const hpa = (hi & HI_ADDRESS) * TWO32 + ((lo & ADDR_LO) >>> 0) + (gpa % bytes);
    const mt = (lo & MEMTYPE) >> MEMTYPE_SHIFT;
    const last = this.last;
    last.memType = mt;
    last.ignorePat = (lo & IGNORE_PAT) !== 0;
    last.perms = perm;
    last.pageBytes = bytes;
    if (this.cMask >= 0) {
      const page = Math.floor(gpa / 4096);
      const i = (page ^ (ep4ta / 4096)) & this.cMask;
      this.cPage[i] = page;
      this.cRoot[i] = ep4ta;
      this.cHost[i] = hpa - (gpa % 4096);
      this.cInfo[i] =
        perm |
        (dirty ? INFO_DIRTY : 0) |
        (mt << INFO_MEMTYPE_SHIFT) |
        (lo & IGNORE_PAT ? INFO_IGNORE_PAT : 0) |
        (ad ? INFO_AD : 0) |
        (level << INFO_LEVEL_SHIFT);
    }
    return hpa;
  }

  /** Fill lastViolation for an EPT violation (qualification per SDM Table 28-7). */
  private violation(r: TranslateRequest, perm: number, ad: boolean): number {
    this.stats.violations++;
    let q: number;
    if (r.fetch) q = Q_FETCH;
    else if (r.walk) q = ad ? Q_READ | Q_WRITE : Q_READ;
    else q = r.write ? Q_WRITE : Q_READ;
    q |= perm << PERM_SHIFT;
    const lv = this.lastViolation;
    if (r.linear !== -1) {
      q |= Q_LINEAR_VALID;
      if (!r.walk) q |= Q_LINEAR_TRANSLATION;
      lv.linear = r.linear;
    } else {
      lv.linear = -1;
    }
    lv.gpa = r.gpa;
    lv.qualification = q;
    lv.misconfig = false;
    return -1;
  }

  private misconfig(gpa: number): number {
    this.stats.misconfigs++;
    const lv = this.lastViolation;
    lv.gpa = gpa;
    lv.qualification = 0;
    lv.misconfig = true;
    lv.linear = -1;
    return -1;
  }

  /** Make `view` cover the 8 bytes at `addr`; false when they are not RAM. */
  private locate(addr: number): boolean {
    if (addr >= this.vBase && addr + 8 <= this.vEnd) return true;
    const r = this.bus.ramAt(addr);
    if (r === undefined || addr + 8 > r.base + r.size) return false;
    let i = this.regions.indexOf(r);
    if (i < 0) {
      i = this.regions.length;
      this.regions.push(r);
      this.views.push(new DataView(r.data.buffer, r.data.byteOffset, r.size));
    }
    this.view = this.views[i]!;
    this.vRegion = r;
    this.vBase = r.base;
    this.vEnd = r.base + r.size;
    return true;
  }

  /** Read the 8-byte entry at a host-physical address into lo/hi. */
  private readEntry(addr: number): void {
    if (this.locate(addr)) {
      const v = this.view!;
      const off = addr - this.vBase;
      this.lo = v.getInt32(off, true);
      this.hi = v.getInt32(off + 4, true);
    } else {
      // Tables outside RAM read as the bus answers (all ones when unmapped: a misconfiguration).
      this.lo = this.bus.read(addr, 4) | 0;
      this.hi = this.bus.read(addr + 4, 4) | 0;
    }
  }

  /** Write an entry's low dword (A/D updates; a locked write on hardware). */
  private writeLo(addr: number, lo: number): void {
    if (this.locate(addr)) {
      const off = addr - this.vBase;
      this.view!.setInt32(off, lo, true);
      const region = this.vRegion!;
      if (region.codePages[Math.floor(off / 4096)] !== 0) this.bus.noteRamWrite(region, off, 4);
    } else {
      this.bus.write(addr, 4, lo >>> 0);
    }
  }
}

/** The EP4TA of an EPTP: bits 51:12, the address of the top-level table (28.4.1). */
export function ep4taOf(eptp: number): number {
  const a = eptp - (eptp % 4096);
  return a % 2 ** 52;
}
