/** Where the installed package lives (shipped machines are found relative to it). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The directory holding vmm's package.json (works from src/ under vitest and from dist/src/). */
export function packageRoot(): string {
  if (root) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        if ((JSON.parse(fs.readFileSync(pj, 'utf8')) as { name?: string }).name === 'vmm')
          return (root = dir);
      } catch {
        // Not ours (or unreadable): keep walking up.
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the vmm package root');
    dir = up;
  }
}

/** The machine `vmm up` runs without a FILE argument. */
export function defaultMachineFile(): string {
  return path.join(packageRoot(), 'machines', 'q35-sample.yaml');
}
