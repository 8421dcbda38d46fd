/**
 * The emulator under test. STUB: the CPU engineer replaces this file with an adapter that runs a
 * DiffCase on the emulated CPU (see emulator-adapter.ts for the contract). While this stub is in
 * place, the differential suites skip with a message and only the native-runner checks run.
 */
import { NOT_IMPLEMENTED } from './emulator-adapter.js';
import type { DiffCase, DiffResult, Emulate } from './emulator-adapter.js';

export const emulate: Emulate = (_c: DiffCase): DiffResult => {
  throw new Error(NOT_IMPLEMENTED);
};
