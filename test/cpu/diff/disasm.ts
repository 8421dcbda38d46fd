/** Disassembly of case bytes with binutils objdump (when installed), for reports. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function disassemble(code: Uint8Array, mode: 64 | 32, addr: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'vmm-diff-'));
  try {
    const file = join(dir, 'code.bin');
    writeFileSync(file, code);
    const arch = mode === 64 ? 'i386:x86-64' : 'i386';
    const out = execFileSync(
      'objdump',
      ['-D', '-b', 'binary', `-m${arch}`, '-M', 'intel', `--adjust-vma=0x${addr.toString(16)}`, file],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const lines = out.split('\n').filter((l) => /^\s+[0-9a-f]+:\t/.test(l));
    return lines.map((l) => '  ' + l.trim().replace(/\t/g, '  ')).join('\n');
  } catch {
    return `  (objdump unavailable) ${Buffer.from(code).toString('hex')}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
