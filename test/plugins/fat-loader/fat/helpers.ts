/**
 * Shared helpers for the FAT tests: the host tools (dosfstools, mtools, fdisk), a seeded random
 * generator, generated file trees and a tree walker over a FatVolume.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readdirSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FatVolume } from '../../../../plugins/fat-loader/fat/index.js';

const TOOL_ENV = { ...process.env, MTOOLS_SKIP_CHECK: '1', LC_ALL: 'C.UTF-8' };

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Which tools are installed (`apt-get install -y dosfstools mtools fdisk`). */
export const TOOLS = {
  mkfs: has('mkfs.fat'),
  fsck: has('fsck.fat'),
  mtools: has('mcopy') && has('mdir') && has('mmd') && has('mdel'),
  sfdisk: has('sfdisk'),
};
export const HAVE_FAT_TOOLS = TOOLS.mkfs && TOOLS.fsck && TOOLS.mtools;
if (!HAVE_FAT_TOOLS) {
  console.warn(
    'FAT interop tests skipped: install dosfstools and mtools (apt-get install -y dosfstools mtools)',
  );
}

/** Runs a tool, returning stdout; throws with its output when it fails. */
export function tool(cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, args, { env: TOOL_ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `fsck.fat -n`: the exit status and output (0 = clean). */
export function fsck(image: string): { status: number; output: string } {
  const r = spawnSync('fsck.fat', ['-n', image], { env: TOOL_ENV, encoding: 'utf8' });
  return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `vmm-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** mulberry32: small, seedable, good enough for test data. */
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

/** The seed for generated tests: FAT_TEST_SEED when set, else a fresh one; printed so failures replay. */
export function testSeed(what: string): number {
  const env = process.env.FAT_TEST_SEED;
  const seed = env ? Number(env) : Math.floor(Math.random() * 0xffffffff);
  console.log(`${what}: seed ${seed} (rerun with FAT_TEST_SEED=${seed})`);
  return seed;
}

export interface TreeFile {
  path: string;
  data: Uint8Array;
}
export interface Tree {
  dirs: string[];
  files: TreeFile[];
}

const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_+,;=[]()!#$%&@^{}~';

/** A random name: short 8.3 ones, mixed case, long ones with spaces and several dots. */
function randomName(rand: () => number, chars: string): string {
  const pick = (s: string): string => s[Math.floor(rand() * s.length)]!;
  const word = (n: number): string => Array.from({ length: n }, () => pick(chars)).join('');
  const kind = rand();
  if (kind < 0.25)
    return (word(1 + Math.floor(rand() * 8)) + '.' + word(1 + Math.floor(rand() * 3))).toUpperCase();
  if (kind < 0.45) return word(1 + Math.floor(rand() * 8));
  const parts = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => word(1 + Math.floor(rand() * 12)));
  let name = parts.join(rand() < 0.5 ? ' ' : '.');
  if (rand() < 0.3) name += '.' + word(1 + Math.floor(rand() * 5));
  return name.slice(0, 1 + Math.floor(rand() * 120)).replace(/[. ]+$/, '') || 'x';
}

/**
 * A random tree: nested directories, files of sizes 0, 1, around the cluster size and multi-cluster.
 * `forMtools` leaves out '[' and ']', which mtools reads as wildcards in target paths, and '~', which
 * makes mtools 4.0.32 write a short name padded with NULs and a long-name checksum that matches nothing.
 */
export function randomTree(
  rand: () => number,
  clusterSize: number,
  opts: { files: number; maxDepth: number; forMtools?: boolean } = { files: 40, maxDepth: 3 },
): Tree {
  const chars = opts.forMtools ? NAME_CHARS.replace(/[[\]~]/g, '') : NAME_CHARS;
  const tree: Tree = { dirs: [], files: [] };
  const used = new Map<string, Set<string>>();
  const uniqueName = (dir: string): string => {
    const names = used.get(dir) ?? new Set<string>();
    used.set(dir, names);
    for (;;) {
      const n = randomName(rand, chars);
      if (!names.has(n.toUpperCase())) {
        names.add(n.toUpperCase());
        return n;
      }
    }
  };
  const dirs = [''];
  for (let i = 0; i < opts.files; i++) {
    if (rand() < 0.2) {
      const parent = dirs[Math.floor(rand() * dirs.length)]!;
      if (parent.split('/').length <= opts.maxDepth) {
        const d = `${parent}/${uniqueName(parent)}`;
        dirs.push(d);
        tree.dirs.push(d);
      }
    }
    const parent = dirs[Math.floor(rand() * dirs.length)]!;
    const sizes = [0, 1, clusterSize - 1, clusterSize, clusterSize + 1, 3 * clusterSize + 17];
    const r = rand();
    const size = r < 0.5 ? sizes[Math.floor(rand() * sizes.length)]! : Math.floor(rand() * 12 * clusterSize);
    const data = new Uint8Array(size);
    for (let k = 0; k < size; k++) data[k] = Math.floor(rand() * 256);
    tree.files.push({ path: `${parent}/${uniqueName(parent)}`, data });
  }
  return tree;
}

/** Writes the tree under a host directory. */
export function writeHostTree(root: string, tree: Tree): void {
  for (const d of tree.dirs) mkdirSync(join(root, d), { recursive: true });
  for (const f of tree.files) writeFileSync(join(root, f.path), f.data);
}

/** Reads a host directory back as a tree (paths relative, starting with '/'). */
export function readHostTree(root: string, rel = ''): Tree {
  const tree: Tree = { dirs: [], files: [] };
  for (const name of readdirSync(join(root, rel))) {
    const p = `${rel}/${name}`;
    if (statSync(join(root, p)).isDirectory()) {
      tree.dirs.push(p);
      const sub = readHostTree(root, p);
      tree.dirs.push(...sub.dirs);
      tree.files.push(...sub.files);
    } else {
      tree.files.push({ path: p, data: new Uint8Array(readFileSync(join(root, p))) });
    }
  }
  return tree;
}

/**
 * Reads the whole volume as a tree, through the library. Corrupt volumes can cycle: a directory
 * whose first cluster is one of its ancestors' is listed but not entered (a directory holding two
 * entries for itself would otherwise be listed 2^depth times), and the depth stops at 16.
 */
export async function readVolumeTree(
  vol: FatVolume,
  dir = '/',
  depth = 0,
  ancestors: ReadonlySet<number> = new Set(),
): Promise<Tree> {
  const tree: Tree = { dirs: [], files: [] };
  if (depth > 16) return tree;
  for (const e of await vol.list(dir)) {
    const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
    if (e.isDirectory) {
      tree.dirs.push(p);
      const first = (await vol.clusterChain(p))[0] ?? 0;
      if (ancestors.has(first)) continue;
      const sub = await readVolumeTree(vol, p, depth + 1, new Set([...ancestors, first]));
      tree.dirs.push(...sub.dirs);
      tree.files.push(...sub.files);
    } else {
      tree.files.push({ path: p, data: await vol.readFile(p) });
    }
  }
  return tree;
}

/** A comparable form: sorted dirs and files with sizes and a content digest. */
export function treeSummary(tree: Tree): { dirs: string[]; files: string[] } {
  const digest = (d: Uint8Array): string => {
    let h = 0x811c9dc5;
    for (const b of d) h = Math.imul(h ^ b, 0x01000193) >>> 0;
    return h.toString(16);
  };
  return {
    dirs: [...tree.dirs].sort(),
    files: tree.files.map((f) => `${f.path} ${f.data.length} ${digest(f.data)}`).sort(),
  };
}

/** 'equal', or where two byte arrays differ (keeps failure output small: no multi-megabyte diffs). */
export function byteDiff(actual: Uint8Array, expected: Uint8Array): string {
  if (actual.length !== expected.length) return `length ${actual.length}, expected ${expected.length}`;
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) return `byte ${i} is ${actual[i]}, expected ${expected[i]}`;
  }
  return 'equal';
}
