export { loadMachine } from '../../../src/index.js';
export type { BootEntry } from '../../../src/core/cpu.js';
