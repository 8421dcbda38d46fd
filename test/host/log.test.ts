import { Chalk } from 'chalk';
import { describe, expect, it } from 'vitest';
import { createStderrLogSink, formatLogLine } from '../../src/host/log.js';

describe('stderr log sink', () => {
  it('prints vmm: lines with the level and the source when it is not vmm itself', () => {
    const lines: string[] = [];
    const sink = createStderrLogSink({ stream: { write: (s: string) => lines.push(s) }, color: false });
    sink('info', 'vmm', 'Starting virtualization...');
    sink('info', 'policy', 'Running guest...');
    sink('warn', 'com1', 'receive buffer overflow');
    sink('error', 'ahci', 'bad PRDT');
    sink('debug', 'vmm', 'detail');
    expect(lines).toEqual([
      'vmm: Starting virtualization...\n',
      'vmm: policy: Running guest...\n',
      'vmm: warning: com1: receive buffer overflow\n',
      'vmm: error: ahci: bad PRDT\n',
      'vmm: debug: detail\n',
    ]);
  });

  it('colours by level when colour is on', () => {
    const c = new Chalk({ level: 1 });
    expect(formatLogLine(c, 'error', 'vmm', 'x')).toBe(`${c.red.bold('vmm: error:')} x`);
    expect(formatLogLine(c, 'warn', 'vmm', 'x')).toContain('\x1b[33m');
  });
});
