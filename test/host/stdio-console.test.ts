import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ESCAPE_HELP, EscapeFilter, StdioConsole } from '../../src/host/stdio-console.js';

class FakeTtyIn extends PassThrough {
  isTTY = true;
  rawCalls: boolean[] = [];
  setRawMode(mode: boolean): this {
    this.rawCalls.push(mode);
    return this;
  }
}

function sinkStream() {
  const chunks: string[] = [];
  return {
    chunks,
    write(d: Uint8Array | string) {
      chunks.push(typeof d === 'string' ? d : Buffer.from(d).toString('latin1'));
      return true;
    },
    text: () => chunks.join(''),
  };
}

const tick = () => new Promise((r) => setImmediate(r));
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const str = (b: Uint8Array) => Buffer.from(b).toString('latin1');

describe('EscapeFilter (C-a prefix, as QEMU)', () => {
  function run(input: string[]) {
    const events: string[] = [];
    const f = new EscapeFilter({ quit: () => events.push('quit'), help: () => events.push('help') });
    const out = input.map((s) => str(f.filter(bytes(s)))).join('');
    return { out, events };
  }

  it('passes bytes without C-a unchanged', () => {
    expect(run(['hello\r', '\x03\x1b[A'])).toEqual({ out: 'hello\r\x03\x1b[A', events: [] });
  });

  it('C-a x quits, C-a h and C-a ? print help, C-a C-a sends one C-a', () => {
    expect(run(['a\x01xb'])).toEqual({ out: 'ab', events: ['quit'] });
    expect(run(['\x01X'])).toEqual({ out: '', events: ['quit'] });
    expect(run(['\x01h', '\x01?'])).toEqual({ out: '', events: ['help', 'help'] });
    expect(run(['\x01\x01z'])).toEqual({ out: '\x01z', events: [] });
  });

  it('keeps a pending C-a across chunks and drops unknown commands', () => {
    expect(run(['ab\x01', 'x'])).toEqual({ out: 'ab', events: ['quit'] });
    expect(run(['\x01', 'q', 'r'])).toEqual({ out: 'r', events: [] });
  });
});

describe('StdioConsole on pipes', () => {
  it('passes input through untouched (C-a included), buffers it until a handler exists, and reports EOF', async () => {
    const stdin = new PassThrough();
    const con = new StdioConsole({ stdin, stdout: sinkStream(), stderr: sinkStream() });
    expect(con.raw).toBe(false);
    con.start();
    stdin.write('ab\x01x');
    await tick();
    const got: string[] = [];
    con.setInputHandler((d) => got.push(str(d)));
    expect(got).toEqual(['ab\x01x']);
    stdin.end('cd');
    await tick();
    await tick();
    expect(got).toEqual(['ab\x01x', 'cd']);
    expect(con.inputEnded).toBe(true);
    con.close();
  });

  it('writes whole lines at once and the rest on the next turn of the event loop', async () => {
    const out = sinkStream();
    const con = new StdioConsole({ stdin: new PassThrough(), stdout: out, stderr: sinkStream() });
    con.write(bytes('h'));
    con.write(bytes('i'));
    expect(out.chunks).toEqual([]);
    con.write(bytes('!\n'));
    expect(out.chunks).toEqual(['hi!\n']);
    con.write(bytes('>'));
    await tick();
    expect(out.chunks).toEqual(['hi!\n', '>']);
    con.write(bytes('tail'));
    con.close();
    expect(out.text()).toBe('hi!\n>tail');
    con.write(bytes('after close'));
    await tick();
    expect(out.text()).toBe('hi!\n>tail');
  });
});

describe('StdioConsole on a terminal', () => {
  it('enters raw mode at start, leaves it at close, and acts on the escape', async () => {
    const stdin = new FakeTtyIn();
    const err = sinkStream();
    let quits = 0;
    const con = new StdioConsole({ stdin, stdout: sinkStream(), stderr: err, onQuit: () => quits++ });
    expect(con.raw).toBe(true);
    con.start();
    expect(stdin.rawCalls).toEqual([true]);
    const got: string[] = [];
    con.setInputHandler((d) => got.push(str(d)));
    stdin.write('ls\r\x01h');
    await tick();
    expect(got).toEqual(['ls\r']);
    expect(err.text()).toBe(`\n${ESCAPE_HELP}\n`);
    stdin.write('\x01\x01\x01x');
    await tick();
    expect(got).toEqual(['ls\r', '\x01']);
    expect(quits).toBe(1);
    con.close();
    con.close();
    expect(stdin.rawCalls).toEqual([true, false]);
  });

  it('can be forced to plain mode on a terminal', () => {
    const stdin = new FakeTtyIn();
    const con = new StdioConsole({ stdin, stdout: sinkStream(), raw: false });
    con.start();
    con.close();
    expect(stdin.rawCalls).toEqual([]);
  });
});

describe('StdioConsole.lastByte', () => {
  it('tracks the last byte the guest wrote', () => {
    const con = new StdioConsole({ stdin: new PassThrough(), stdout: sinkStream() });
    expect(con.lastByte).toBe(-1);
    con.write(bytes('>> '));
    expect(con.lastByte).toBe(0x20);
    con.write(bytes(''));
    expect(con.lastByte).toBe(0x20);
    con.write(bytes('ok\n'));
    expect(con.lastByte).toBe(0x0a);
    con.close();
  });
});

describe('StdioConsole output buffer', () => {
  it('keeps byte order across a full buffer and large writes', async () => {
    const out = sinkStream();
    const con = new StdioConsole({ stdin: new PassThrough(), stdout: out });
    let expected = '';
    for (let i = 0; i < 5000; i++) {
      const ch = String.fromCharCode(0x41 + (i % 26));
      con.write(bytes(ch));
      expected += ch;
    }
    const big = 'x'.repeat(10000);
    con.write(bytes(big));
    expected += big;
    con.write(bytes('end'));
    expected += 'end';
    await tick();
    expect(out.text()).toBe(expected);
    expect(out.chunks.every((c) => c.length <= 10000)).toBe(true);
    con.close();
  });
});
