/**
 * Console backends: where a serial port's output goes and where its input comes from. The CLI
 * provides stdio (raw mode on a TTY, plain pipes otherwise); tests use MemoryConsole.
 */
export interface ConsoleBackend {
  /** Guest output bytes. */
  write(data: Uint8Array): void;
  /** The consumer of input bytes (one per backend: the device the console is attached to). */
  setInputHandler(fn: ((data: Uint8Array) => void) | undefined): void;
  /** True once no further input can arrive (EOF on a pipe, or a test console closed). */
  readonly inputEnded: boolean;
}

/** An in-memory console for tests and the programmatic API. */
export class MemoryConsole implements ConsoleBackend {
  private chunks: Uint8Array[] = [];
  private handler: ((data: Uint8Array) => void) | undefined;
  private pending: Uint8Array[] = [];
  private watchers: { re: RegExp | string; from: number; resolve: (text: string) => void }[] = [];
  inputEnded = false;
  private decoded = '';

  write(data: Uint8Array): void {
    this.chunks.push(data.slice());
    this.decoded += Buffer.from(data).toString('latin1');
    this.checkWatchers();
  }

  setInputHandler(fn: ((data: Uint8Array) => void) | undefined): void {
    this.handler = fn;
    if (fn) {
      for (const p of this.pending) fn(p);
      this.pending = [];
    }
  }

  /** Queue input as if typed (all at once, like a paste). */
  type(text: string | Uint8Array): void {
    const bytes = typeof text === 'string' ? new Uint8Array(Buffer.from(text, 'latin1')) : text;
    if (this.handler) this.handler(bytes);
    else this.pending.push(bytes);
  }

  endInput(): void {
    this.inputEnded = true;
  }

  /** Everything written so far, as text (latin1, so bytes map 1:1 to characters). */
  text(): string {
    return this.decoded;
  }

  bytes(): Uint8Array {
    return new Uint8Array(Buffer.concat(this.chunks));
  }

  /** Resolves with the whole text once it contains `pattern` after character `from`. */
  waitFor(pattern: RegExp | string, from = 0): Promise<string> {
    return new Promise((resolve) => {
      this.watchers.push({ re: pattern, from, resolve });
      this.checkWatchers();
    });
  }

  private checkWatchers(): void {
    if (this.watchers.length === 0) return;
    this.watchers = this.watchers.filter((w) => {
      const hay = this.decoded.slice(w.from);
      const hit = typeof w.re === 'string' ? hay.includes(w.re) : w.re.test(hay);
      if (hit) w.resolve(this.decoded);
      return !hit;
    });
  }
}

/** Discards output; never has input. */
export class NullConsole implements ConsoleBackend {
  readonly inputEnded = true;
  write(): void {}
  setInputHandler(): void {}
}
