/**
 * Building EPT paging structures in host memory (SDM Vol. 3C 28.3.2): a VMM policy maps
 * guest-physical ranges to host-physical ones with permissions, memory type and page size, and the
 * builder writes genuine 64-bit entries into 4 KiB table pages taken from a host-physical region
 * the policy sets aside. The walker (walk.ts) and a real CPU would read the same bytes.
 *
 * Not a hot path: arguments are checked thoroughly and every error names the call.
 */
import type { Bus, RamRegion } from '../../src/core/bus.js';
import { hex } from '../../src/core/addresses.js';
import { VmmError } from '../../src/core/errors.js';
import {
  EPTE,
  EPTE_HI_ADDRESS,
  EPTE_MEMTYPE_SHIFT,
  EPTE_RWX,
  EPTP_WALK_LENGTH_SHIFT,
  EPTP,
  EPT_PAGE_BYTES,
  EPT_PAGE_LEVEL,
  EptMemType,
  isEptMemType,
  type EptPageSize,
} from '../../src/x86/ept.js';

const TWO32 = 4294967296;
const PAGE = 4096;
const LEVEL_BYTES = [2 ** 12, 2 ** 21, 2 ** 30, 2 ** 39, 2 ** 48];
const ADDR_LO = 0xfffff000;

/** Hands out zeroed 4 KiB host-physical pages for paging structures. */
export interface TablePageAllocator {
  /** The host-physical address of a fresh zeroed page. Throws when the region is used up. */
  alloc(): number;
  /** Pages handed out so far. */
  readonly used: number;
  /** Pages in the region. */
  readonly capacity: number;
}

function usage(message: string, owner: string): VmmError {
  return new VmmError('usage', `${owner}: ${message}`, { location: { plugin: owner } });
}

/** The RAM region that wholly holds [base, base+size), or a clear error. */
function ramFor(bus: Bus, base: number, size: number, what: string, owner: string): RamRegion {
  const r = bus.ramAt(base);
  if (r === undefined || base + size > r.base + r.size) {
    throw usage(`${what} ${hex(base)}+${hex(size)} is not wholly in one RAM region of ${bus.name}`, owner);
  }
  return r;
}

/**
 * A bump allocator over [base, base+size) of host RAM: page-aligned, wholly RAM. Pages are zeroed
 * when handed out (the region may hold anything before).
 */
export function createPageAllocator(bus: Bus, base: number, size: number, owner = 'ept'): TablePageAllocator {
  if (!Number.isSafeInteger(base) || base < 0 || base % PAGE !== 0) {
    throw usage(`table region base ${hex(base)} is not a 4 KiB-aligned address`, owner);
  }
  if (!Number.isSafeInteger(size) || size < PAGE || size % PAGE !== 0) {
    throw usage(`table region size ${hex(size)} is not a positive multiple of 4 KiB`, owner);
  }
  const region = ramFor(bus, base, size, 'table region', owner);
  const capacity = size / PAGE;
  let used = 0;
  return {
    alloc(): number {
      if (used === capacity) {
        throw usage(
          `the EPT table region ${hex(base)}+${hex(size)} is full (${capacity} pages); give the builder a larger one`,
          owner,
        );
      }
      const addr = base + used * PAGE;
      used++;
      const off = addr - region.base;
      region.data.fill(0, off, off + PAGE);
      bus.noteRamWrite(region, off, PAGE);
      return addr;
    },
    get used() {
      return used;
    },
    capacity,
  };
}

export interface EptMapOptions {
  /** Bit 0 (default true). */
  read?: boolean;
  /** Bit 1 (default true). Write without read is an EPT misconfiguration, so it is refused. */
  write?: boolean;
  /** Bit 2 (default true). */
  execute?: boolean;
  /** Bits 5:3 (default WB). */
  memType?: EptMemType;
  /** Bit 6 (default false). */
  ignorePat?: boolean;
  /** Leaf size (default 4K); `auto` uses the largest allowed size that alignment permits, piece by piece. */
  pageSize?: EptPageSize | 'auto';
  /** Pre-set the accessed (bit 8) and dirty (bit 9) flags of the leaves (default false). */
  accessed?: boolean;
  dirty?: boolean;
  /** Replace existing leaf mappings of the same size instead of refusing the overlap (default false). */
  replace?: boolean;
}

export interface EptpOptions {
  /** Memory type for the paging-structure accesses (UC or WB; default WB). */
  memType?: typeof EptMemType.UC | typeof EptMemType.WB;
  /** Page-walk length (default: the builder's). */
  walkLength?: 4 | 5;
  /** Bit 6: enable accessed and dirty flags (default true). */
  accessDirty?: boolean;
}

/** One leaf found by `lookup`. */
export interface EptLeaf {
  /** Host-physical address the looked-up GPA translates to. */
  hpa: number;
  pageSize: EptPageSize;
  /** Host-physical address of the leaf entry. */
  entryAddress: number;
  /** The raw entry. */
  entry: bigint;
}

export interface EptBuilderOptions {
  /** Page-walk length of the tables (default 4). */
  walkLength?: 4 | 5;
  /** Leaf sizes the tables may use (default all three). */
  pageSizes?: readonly EptPageSize[];
  /** Execute-only leaves allowed (default true). */
  executeOnly?: boolean;
  /** Physical-address width: host addresses must stay below 2^maxPhysAddr (default 40). */
  maxPhysAddr?: number;
  /** Name used in error messages (default 'ept'). */
  owner?: string;
}

const PAGE_SIZES_DESC: readonly EptPageSize[] = ['1G', '2M', '4K'];

/**
 * Builds one EPT hierarchy. The top-level table is allocated at once; `eptp()` gives the value for
 * the VMCS. Changing mappings the CPU may have cached needs INVEPT afterwards (28.4.3.3), as on
 * hardware: the builder only writes memory.
 */
export class EptBuilder {
  /** Host-physical address of the top-level table (PML4, or PML5 for 5-level tables). */
  readonly root: number;
  readonly walkLength: 4 | 5;
  private readonly bus: Bus;
  private readonly alloc: TablePageAllocator;
  private readonly sizes: ReadonlySet<EptPageSize>;
  private readonly executeOnly: boolean;
  private readonly maxPhysAddr: number;
  private readonly owner: string;
  private readonly regions: RamRegion[] = [];
  private readonly views: DataView[] = [];

  constructor(bus: Bus, allocator: TablePageAllocator, opts: EptBuilderOptions = {}) {
    this.bus = bus;
    this.alloc = allocator;
    this.walkLength = opts.walkLength ?? 4;
    this.sizes = new Set(opts.pageSizes ?? PAGE_SIZES_DESC);
    this.executeOnly = opts.executeOnly ?? true;
    this.maxPhysAddr = opts.maxPhysAddr ?? 40;
    this.owner = opts.owner ?? 'ept';
    if (!this.sizes.has('4K')) throw usage('4 KiB pages cannot be disabled', this.owner);
    this.root = allocator.alloc();
  }

  /** The EPTP for these tables (SDM 24.6.11). */
  eptp(opts: EptpOptions = {}): number {
    const mt = opts.memType ?? EptMemType.WB;
    if (mt !== EptMemType.UC && mt !== EptMemType.WB) {
      throw usage(`EPTP memory type ${mt} is neither UC (0) nor WB (6)`, this.owner);
    }
    const wl = opts.walkLength ?? this.walkLength;
    if (wl !== this.walkLength) {
      throw usage(`EPTP walk length ${wl} does not match the ${this.walkLength}-level tables`, this.owner);
    }
    const ad = opts.accessDirty ?? true;
    return this.root + ((wl - 1) << EPTP_WALK_LENGTH_SHIFT) + mt + (ad ? EPTP.ACCESS_DIRTY : 0);
  }

  /**
   * Map [gpa, gpa+size) to [hpa, hpa+size). Every page of the range is checked before anything is
   * written, so a refused call changes nothing.
   */
  map(gpa: number, hpa: number, size: number, opts: EptMapOptions = {}): void {
    const what = `map ${hex(gpa)}+${hex(size)} -> ${hex(hpa)}`;
    const read = opts.read ?? true;
    const write = opts.write ?? true;
    const execute = opts.execute ?? true;
    const memType = opts.memType ?? EptMemType.WB;
    if (!read && !write && !execute) throw usage(`${what}: no access allowed (use unmap)`, this.owner);
    if (write && !read) {
      throw usage(`${what}: write without read is an EPT misconfiguration (SDM 28.3.3.1)`, this.owner);
    }
    if (execute && !read && !write && !this.executeOnly) {
      throw usage(`${what}: execute-only translations are not supported`, this.owner);
    }
    if (!isEptMemType(memType)) {
      throw usage(
        `${what}: memory type ${String(memType)} is reserved (use UC, WC, WT, WP or WB)`,
        this.owner,
      );
    }
    const pageSize = opts.pageSize ?? '4K';
    if (pageSize !== 'auto' && !this.sizes.has(pageSize)) {
      throw usage(`${what}: ${pageSize} pages are not enabled`, this.owner);
    }
    this.checkRange(what, gpa, hpa, size);
    const pieces = this.plan(what, gpa, hpa, size, pageSize);
    const lo0 =
      (read ? EPTE.READ : 0) |
      (write ? EPTE.WRITE : 0) |
      (execute ? EPTE.EXECUTE : 0) |
      (memType << EPTE_MEMTYPE_SHIFT) |
      (opts.ignorePat ? EPTE.IGNORE_PAT : 0) |
      (opts.accessed ? EPTE.ACCESSED : 0) |
      (opts.dirty ? EPTE.DIRTY : 0);
    const replace = opts.replace ?? false;
    // Pass 1: check for overlaps; pass 2: write.
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < pieces.length; k += 3) {
        const g = pieces[k]!;
        const h = pieces[k + 1]!;
        const level = pieces[k + 2]!;
        this.place(what, g, h, level, lo0, replace, pass === 1);
      }
    }
  }

  /**
   * Remove the mappings in [gpa, gpa+size). Holes are allowed; a large page only partly inside the
   * range is refused (split it by unmapping all of it and mapping the rest again).
   */
  unmap(gpa: number, size: number): void {
    const what = `unmap ${hex(gpa)}+${hex(size)}`;
    this.checkRange(what, gpa, 0, size);
    for (let pass = 0; pass < 2; pass++) {
      let g = gpa;
      const end = gpa + size;
      while (g < end) {
        const f = this.find(g);
        const span = LEVEL_BYTES[f.level]!;
        const start = g - (g % span);
        if (f.present && f.leaf) {
          if (start < gpa || start + span > end) {
            throw usage(
              `${what}: the ${sizeName(f.level)} page at ${hex(start)} is only partly inside the range`,
              this.owner,
            );
          }
          if (pass === 1) this.writeEntry(f.addr, 0, 0);
        }
        g = start + span;
      }
    }
  }

  /** The leaf that translates `gpa`, or undefined when it is not mapped. */
  lookup(gpa: number): EptLeaf | undefined {
    const f = this.find(gpa);
    if (!f.present || !f.leaf) return undefined;
    this.readEntry(f.addr);
    const span = LEVEL_BYTES[f.level]!;
    return {
      hpa: (this.hi & EPTE_HI_ADDRESS) * TWO32 + ((this.lo & ADDR_LO) >>> 0) + (gpa % span),
      pageSize: sizeName(f.level),
      entryAddress: f.addr,
      entry: (BigInt(this.hi >>> 0) << 32n) | BigInt(this.lo >>> 0),
    };
  }

  /** Table pages used so far (including the top-level one). */
  get tablePages(): number {
    return this.alloc.used;
  }

  // ---- internals --------------------------------------------------------------------------

  private checkRange(what: string, gpa: number, hpa: number, size: number): void {
    const gpaLimit = 2 ** (12 + 9 * this.walkLength);
    const hpaLimit = 2 ** this.maxPhysAddr;
    for (const [name, v] of [
      ['gpa', gpa],
      ['hpa', hpa],
      ['size', size],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < 0)
        throw usage(`${what}: ${name} is not a non-negative integer`, this.owner);
    }
    if (size === 0 || size % PAGE !== 0)
      throw usage(`${what}: size is not a positive multiple of 4 KiB`, this.owner);
    if (gpa % PAGE !== 0) throw usage(`${what}: gpa is not 4 KiB-aligned`, this.owner);
    if (hpa % PAGE !== 0) throw usage(`${what}: hpa is not 4 KiB-aligned`, this.owner);
    if (gpa + size > gpaLimit) {
      throw usage(
        `${what}: ends beyond the ${this.walkLength}-level guest-physical space ${hex(gpaLimit)}`,
        this.owner,
      );
    }
    if (hpa + size > hpaLimit) {
      throw usage(`${what}: ends beyond the physical-address width (${this.maxPhysAddr} bits)`, this.owner);
    }
  }

  /** Split the range into leaves: flat triples (gpa, hpa, level). */
  private plan(
    what: string,
    gpa: number,
    hpa: number,
    size: number,
    pageSize: EptPageSize | 'auto',
  ): number[] {
    const out: number[] = [];
    if (pageSize !== 'auto') {
      const bytes = EPT_PAGE_BYTES[pageSize];
      if (gpa % bytes !== 0 || hpa % bytes !== 0 || size % bytes !== 0) {
        throw usage(
          `${what}: gpa, hpa and size must be multiples of ${pageSize} for ${pageSize} pages`,
          this.owner,
        );
      }
      const level = EPT_PAGE_LEVEL[pageSize];
      for (let off = 0; off < size; off += bytes) out.push(gpa + off, hpa + off, level);
      return out;
    }
    for (let off = 0; off < size;) {
      for (const s of PAGE_SIZES_DESC) {
        const bytes = EPT_PAGE_BYTES[s];
        if (
          !this.sizes.has(s) ||
          (gpa + off) % bytes !== 0 ||
          (hpa + off) % bytes !== 0 ||
          off + bytes > size
        )
          continue;
        out.push(gpa + off, hpa + off, EPT_PAGE_LEVEL[s]);
        off += bytes;
        break;
      }
    }
    return out;
  }

  /** Check (write=false) or write (write=true) one leaf, creating tables on the way when writing. */
  private place(
    what: string,
    gpa: number,
    hpa: number,
    target: number,
    lo0: number,
    replace: boolean,
    write: boolean,
  ): void {
    let table = this.root;
    for (let level = this.walkLength - 1; ; level--) {
      const addr = table + (Math.floor(gpa / LEVEL_BYTES[level]!) % 512) * 8;
      this.readEntry(addr);
      const present = (this.lo & EPTE_RWX) !== 0;
      const leaf = present && (level === 0 || (level <= 2 && (this.lo & EPTE.PAGE_SIZE) !== 0));
      if (level === target) {
        if (present && (!replace || !leaf)) {
          const kind = leaf ? `a ${sizeName(level)} mapping` : 'smaller mappings';
          throw usage(`${what}: ${hex(gpa)} overlaps ${kind} already present`, this.owner);
        }
        if (write) {
          const large = level > 0 ? EPTE.PAGE_SIZE : 0;
          this.writeEntry(addr, ((hpa % TWO32) & ADDR_LO) | lo0 | large, Math.floor(hpa / TWO32));
        }
        return;
      }
      if (leaf) {
        throw usage(
          `${what}: ${hex(gpa)} lies inside a ${sizeName(level)} mapping already present`,
          this.owner,
        );
      }
      if (!present) {
        // Checking: nothing below exists, so nothing can overlap.
        if (!write) return;
        const next = this.alloc.alloc();
        // Non-leaf entries allow everything; the leaves decide (the AND over the walk).
        this.writeEntry(addr, ((next % TWO32) | EPTE_RWX) >>> 0, Math.floor(next / TWO32));
        table = next;
      } else {
        table = (this.hi & EPTE_HI_ADDRESS) * TWO32 + ((this.lo & ADDR_LO) >>> 0);
      }
    }
  }

  private found = { addr: 0, level: 0, present: false, leaf: false };

  /** The entry where a walk for `gpa` stops: a leaf, a non-present entry, or (never) a table. */
  private find(gpa: number): { addr: number; level: number; present: boolean; leaf: boolean } {
    let table = this.root;
    const f = this.found;
    for (let level = this.walkLength - 1; ; level--) {
      const addr = table + (Math.floor(gpa / LEVEL_BYTES[level]!) % 512) * 8;
      this.readEntry(addr);
      const present = (this.lo & EPTE_RWX) !== 0;
      const leaf = present && (level === 0 || (level <= 2 && (this.lo & EPTE.PAGE_SIZE) !== 0));
      if (!present || leaf) {
        f.addr = addr;
        f.level = level;
        f.present = present;
        f.leaf = leaf;
        return f;
      }
      table = (this.hi & EPTE_HI_ADDRESS) * TWO32 + ((this.lo & ADDR_LO) >>> 0);
    }
  }

  private lo = 0;
  private hi = 0;

  private viewFor(addr: number): [DataView, number, RamRegion] {
    const r = ramFor(this.bus, addr, 8, 'EPT entry', this.owner);
    let i = this.regions.indexOf(r);
    if (i < 0) {
      i = this.regions.length;
      this.regions.push(r);
      this.views.push(new DataView(r.data.buffer, r.data.byteOffset, r.size));
    }
    return [this.views[i]!, addr - r.base, r];
  }

  private readEntry(addr: number): void {
    const [v, off] = this.viewFor(addr);
    this.lo = v.getInt32(off, true);
    this.hi = v.getInt32(off + 4, true);
  }

  private writeEntry(addr: number, lo: number, hi: number): void {
    const [v, off, r] = this.viewFor(addr);
    v.setUint32(off, lo >>> 0, true);
    v.setUint32(off + 4, hi >>> 0, true);
    this.bus.noteRamWrite(r, off, 8);
  }
}

function sizeName(level: number): EptPageSize {
  return level === 2 ? '1G' : level === 1 ? '2M' : '4K';
}

/** A builder for one EPT hierarchy whose table pages come from `allocator`. */
export function createEptBuilder(
  bus: Bus,
  allocator: TablePageAllocator,
  opts: EptBuilderOptions = {},
): EptBuilder {
  return new EptBuilder(bus, allocator, opts);
}
