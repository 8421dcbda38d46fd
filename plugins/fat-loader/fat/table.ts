/**
 * The File Allocation Table (spec section 4): one entry per cluster, 12, 16 or 28 (of 32) bits wide,
 * holding the next cluster of a chain, 0 for free, BAD or end-of-chain. The active FAT is kept in memory;
 * writes mark sectors dirty and flush() copies them to every FAT (unless FAT32 mirroring is off).
 */
import type { FatType } from './bpb.js';
import { fatBytes } from './bpb.js';
import type { SectorDevice } from './device.js';
import { DEVICE_SECTOR_SIZE, diskError, readSectors, writeSectors } from './device.js';

/** Spec section 4: the BAD CLUSTER marker and the smallest end-of-chain value per FAT type. */
export const FAT_BAD: Readonly<Record<FatType, number>> = { 12: 0xff7, 16: 0xfff7, 32: 0x0ffffff7 };
export const FAT_EOC_MIN: Readonly<Record<FatType, number>> = { 12: 0xff8, 16: 0xfff8, 32: 0x0ffffff8 };
/** The end-of-chain value written by this code (and by every common formatter). */
export const FAT_EOC: Readonly<Record<FatType, number>> = { 12: 0xfff, 16: 0xffff, 32: 0x0fffffff };
/** FAT32 entries are 28 bits; the top 4 are reserved and preserved on writes. */
const FAT32_MASK = 0x0fffffff;
/** The first cluster of the data region. */
export const FIRST_CLUSTER = 2;

export class FatTable {
  readonly maxCluster: number;
  /** Clusters known to be free (kept exact: counted at load, updated on every change). */
  freeCount = 0;
  /** Where the next allocation starts looking (FSInfo's FSI_Nxt_Free). */
  nextFree = FIRST_CLUSTER;
  private readonly dirty = new Set<number>();

  private constructor(
    readonly type: FatType,
    readonly clusterCount: number,
    private readonly data: Uint8Array,
    private readonly source: string | undefined,
  ) {
    this.maxCluster = clusterCount + 1;
    for (let c = FIRST_CLUSTER; c <= this.maxCluster; c++) if (this.get(c) === 0) this.freeCount++;
  }

  /** Device sectors of one FAT copy that hold entries for all clusters. */
  static usedSectors(type: FatType, clusterCount: number): number {
    return Math.ceil(fatBytes(type, clusterCount + 2) / DEVICE_SECTOR_SIZE);
  }

  static async load(
    dev: SectorDevice,
    fatLba: number,
    type: FatType,
    clusterCount: number,
    source?: string,
  ): Promise<FatTable> {
    const data = await readSectors(dev, fatLba, FatTable.usedSectors(type, clusterCount));
    return new FatTable(type, clusterCount, data, source);
  }

  /** An all-free table (for formatting). */
  static empty(type: FatType, clusterCount: number, source?: string): FatTable {
    return new FatTable(
      type,
      clusterCount,
      new Uint8Array(FatTable.usedSectors(type, clusterCount) * 512),
      source,
    );
  }

  get(n: number): number {
    const d = this.data;
    switch (this.type) {
      case 12: {
        const o = n + (n >>> 1);
        const v = d[o]! | (d[o + 1]! << 8);
        return n & 1 ? v >>> 4 : v & 0xfff;
      }
      case 16:
        return d[2 * n]! | (d[2 * n + 1]! << 8);
      case 32: {
        const o = 4 * n;
        return (d[o]! | (d[o + 1]! << 8) | (d[o + 2]! << 16) | (d[o + 3]! << 24)) & FAT32_MASK;
      }
    }
  }

  set(n: number, value: number): void {
    const d = this.data;
    const wasFree = n >= FIRST_CLUSTER && this.get(n) === 0;
    let first: number;
    let last: number;
    switch (this.type) {
      case 12: {
        const o = n + (n >>> 1);
        const old = d[o]! | (d[o + 1]! << 8);
        const v = n & 1 ? (old & 0x000f) | ((value & 0xfff) << 4) : (old & 0xf000) | (value & 0xfff);
        d[o] = v & 0xff;
        d[o + 1] = v >>> 8;
        [first, last] = [o, o + 1];
        break;
      }
      case 16:
        d[2 * n] = value & 0xff;
        d[2 * n + 1] = (value >>> 8) & 0xff;
        [first, last] = [2 * n, 2 * n + 1];
        break;
      case 32: {
        const o = 4 * n;
        const v = ((d[o + 3]! & 0xf0) << 24) | (value & FAT32_MASK);
        d[o] = v & 0xff;
        d[o + 1] = (v >>> 8) & 0xff;
        d[o + 2] = (v >>> 16) & 0xff;
        d[o + 3] = (v >>> 24) & 0xff;
        [first, last] = [o, o + 3];
        break;
      }
    }
    this.dirty.add(Math.floor(first / DEVICE_SECTOR_SIZE));
    this.dirty.add(Math.floor(last / DEVICE_SECTOR_SIZE));
    if (n >= FIRST_CLUSTER) {
      const isFree = this.get(n) === 0;
      if (wasFree && !isFree) this.freeCount--;
      if (!wasFree && isFree) this.freeCount++;
    }
  }

  isEndOfChain(v: number): boolean {
    return v >= FAT_EOC_MIN[this.type];
  }

  /**
   * The clusters of the chain starting at `start`, checked: every link must point to a data cluster
   * that was not visited before, and the chain must end with an end-of-chain mark. `what` names the
   * file or directory in errors; `minClusters` is how many clusters the file size needs.
   */
  chain(start: number, what: string, minClusters = 0): number[] {
    const fail = (msg: string): never => {
      throw diskError(this.source, `corrupt FAT: the cluster chain of ${what} ${msg}`);
    };
    const clusters: number[] = [];
    const seen = new Set<number>();
    let c = start;
    if (c < FIRST_CLUSTER || c > this.maxCluster) {
      fail(`starts at cluster ${c}, outside the data region (2..${this.maxCluster})`);
    }
    for (;;) {
      seen.add(c);
      clusters.push(c);
      const next = this.get(c);
      if (this.isEndOfChain(next)) break;
      if (next === 0) fail(`runs into free cluster (cluster ${c} links to 0)`);
      if (next === FAT_BAD[this.type]) fail(`runs into a bad cluster (cluster ${c} is marked BAD)`);
      if (next < FIRST_CLUSTER || next > this.maxCluster) {
        fail(`points out of range (cluster ${c} links to ${next}, data clusters are 2..${this.maxCluster})`);
      }
      if (seen.has(next)) fail(`loops (cluster ${c} links back to cluster ${next})`);
      c = next;
    }
    if (clusters.length < minClusters) {
      fail(`ends early: ${clusters.length} cluster(s) where the size needs ${minClusters}`);
    }
    return clusters;
  }

  /**
   * Allocates `count` free clusters, linked together and ended; links `after` (the current last
   * cluster of a chain) to the first. Returns the new clusters.
   */
  allocate(count: number, after = 0): number[] {
    if (count === 0) return [];
    if (count > this.freeCount) {
      throw diskError(this.source, `the volume is full: ${count} cluster(s) needed, ${this.freeCount} free`);
    }
    const out: number[] = [];
    let c =
      this.nextFree >= FIRST_CLUSTER && this.nextFree <= this.maxCluster ? this.nextFree : FIRST_CLUSTER;
    for (let scanned = 0; out.length < count && scanned < this.clusterCount; scanned++) {
      if (this.get(c) === 0) out.push(c);
      c = c >= this.maxCluster ? FIRST_CLUSTER : c + 1;
    }
    if (out.length < count) throw diskError(this.source, 'corrupt FAT: the free cluster count is wrong');
    for (let i = 0; i < out.length; i++)
      this.set(out[i]!, i + 1 < out.length ? out[i + 1]! : FAT_EOC[this.type]);
    if (after !== 0) this.set(after, out[0]!);
    this.nextFree = c;
    return out;
  }

  /** Marks every cluster of a (validated) chain free; later allocations fill such holes first. */
  free(clusters: readonly number[]): void {
    for (const c of clusters) {
      this.set(c, 0);
      if (c < this.nextFree) this.nextFree = c;
    }
  }

  /** Writes the changed sectors to each listed FAT copy. */
  async flush(dev: SectorDevice, copyLbas: readonly number[]): Promise<void> {
    const sectors = [...this.dirty].sort((a, b) => a - b);
    this.dirty.clear();
    for (const s of sectors) {
      const bytes = this.data.subarray(s * DEVICE_SECTOR_SIZE, (s + 1) * DEVICE_SECTOR_SIZE);
      for (const lba of copyLbas) await writeSectors(dev, lba + s, bytes);
    }
  }
}
