/** Why a machine stopped running. */
export type StopReason =
  | { kind: 'poweroff'; code: number; source: string; message?: string }
  | { kind: 'reset'; source: string }
  | { kind: 'fault'; message: string; state?: string; source: string }
  | { kind: 'timeout'; virtualNs: number; wallMs: number }
  | { kind: 'quit' }
  | { kind: 'idle'; message: string }
  | { kind: 'plugin-error'; plugin: string; hook: string; error: unknown };

/** The process exit code `vmm up` uses for a stop reason. */
export function exitCodeFor(r: StopReason): number {
  switch (r.kind) {
    case 'poweroff':
      return r.code;
    case 'quit':
    case 'reset':
      return 0;
    case 'timeout':
      return 124;
    case 'idle':
      return 3;
    case 'fault':
      return 4;
    case 'plugin-error':
      return 5;
  }
}
