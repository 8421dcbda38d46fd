/**
 * What plugins may ask of the host (files). The implementation over Node's fs is in src/host; the
 * core and the plugins only see this interface, so they can run elsewhere too.
 */
export interface HostFile {
  readonly path: string;
  readonly size: number;
  read(offset: number, length: number): Uint8Array;
  write(offset: number, data: Uint8Array): void;
  flush(): void;
  close(): void;
}

export interface HostServices {
  /** Resolve a path relative to the machine file that named it. */
  resolve(path: string, baseDir: string): string;
  exists(path: string): boolean;
  readFile(path: string): Uint8Array;
  writeFile(path: string, data: Uint8Array): void;
  open(path: string, mode: 'r' | 'r+'): HostFile;
  /** Wall clock in ms, for realtime pacing and statistics only (never for guest-visible time in deterministic mode). */
  wallMs(): number;
}
