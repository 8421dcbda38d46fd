/** Shared set-up for the EPT tests: a host bus with RAM, an Ept, and a builder over a table region. */
import { Bus } from '../../../src/core/bus.js';
import { Ept } from '../../../plugins/ept/ept.js';
import type { EptFeatures } from '../../../plugins/ept/walk.js';
import type { TranslateRequest } from '../../../plugins/x86-64/hooks.js';

export const RAM_SIZE = 0x200_0000;
export const TABLES = 0x10_0000;
export const TABLES_SIZE = 0x10_0000;

export const FEATURES: EptFeatures = {
  executeOnly: true,
  page2M: true,
  page1G: true,
  accessDirty: true,
  walkLength5: false,
  maxPhysAddr: 40,
  cacheEntries: 512,
};

export function setup(features: Partial<EptFeatures> = {}) {
  const bus = new Bus('host');
  bus.addRam('ram', 0, RAM_SIZE);
  const ept = new Ept(bus, { ...FEATURES, ...features });
  const tables = ept.createTables(TABLES, TABLES_SIZE);
  return { bus, ept, tables };
}

export interface Access {
  write?: boolean;
  fetch?: boolean;
  walk?: boolean;
  linear?: number;
}

export function req(gpa: number, a: Access = {}): TranslateRequest {
  return {
    gpa,
    linear: a.linear ?? gpa,
    write: a.write ?? false,
    fetch: a.fetch ?? false,
    walk: a.walk ?? false,
  };
}

/** Raw 64-bit entry at a host-physical address. */
export function entryAt(bus: Bus, addr: number): bigint {
  return bus.read64(addr);
}

/** A small seeded PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
