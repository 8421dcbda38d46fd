/**
 * ept: Intel extended page tables (SDM Vol. 3C 28.3-28.4) as a nested-paging plugin. A VMM policy
 * builds real 4-level tables in host RAM through `Ept.createTables` (tables.ts); the vmx plugin
 * passes the CPU's second-stage requests to `translate` (walk.ts), turns failures into EPT
 * violation or misconfiguration exits from `lastViolation`, and executes INVEPT through `invept`.
 */
import { z } from 'zod';
import { definePlugin } from '../../src/core/plugin.js';
import type { NestedPaging } from '../../src/core/nested-paging.js';
import { Tokens } from '../../src/core/tokens.js';
import { MAXPHYADDR } from '../x86-64/core.js';
import { isX86Cpu } from '../x86-64/index.js';
import { Ept } from './ept.js';

export { Ept } from './ept.js';
export { EptBuilder, createEptBuilder, createPageAllocator } from './tables.js';
export type { EptBuilderOptions, EptLeaf, EptMapOptions, EptpOptions, TablePageAllocator } from './tables.js';
export { EptWalker, ep4taOf } from './walk.js';
export type { EptFeatures, EptTranslation, EptWalkStats } from './walk.js';

/** Narrow what Tokens.NestedPaging resolves to, for a policy that builds tables. */
export function isEpt(np: NestedPaging | undefined): np is Ept {
  return np instanceof Ept;
}

export default definePlugin({
  name: 'ept',
  description:
    'Intel EPT: 4-level tables in host memory, R/W/X, memory types, 2M/1G pages, A/D flags, violations, INVEPT',
  provides: [Tokens.NestedPaging],
  wants: [Tokens.Cpu],
  settings: z.object({
    'accessed-dirty': z
      .boolean()
      .default(true)
      .describe('support accessed/dirty flags (EPT_VPID_CAP bit 21); set by the walk when EPTP bit 6 is 1'),
    'large-pages': z
      .array(z.enum(['2M', '1G']))
      .default(['2M', '1G'])
      .describe('large page sizes supported (EPT_VPID_CAP bits 16, 17); bit 7 of other entries is reserved'),
    'execute-only': z
      .boolean()
      .default(true)
      .describe(
        'support execute-only translations (EPT_VPID_CAP bit 0); otherwise they are misconfigurations',
      ),
    'five-level': z
      .boolean()
      .default(false)
      .describe('support a page-walk length of 5 (EPT_VPID_CAP bit 7) besides 4'),
    'cache-entries': z
      .number()
      .int()
      .min(0)
      .max(1 << 16)
      .refine((n) => (n & (n - 1)) === 0, { message: 'must be 0 or a power of two' })
      .default(512)
      .describe('guest-physical translations cached per EP4TA until INVEPT (0: walk every time)'),
  }),
  create(ctx) {
    const s = ctx.settings;
    const cpu = ctx.tryGet(Tokens.Cpu);
    const ept = new Ept(
      ctx.machine.hostBus,
      {
        executeOnly: s['execute-only'],
        page2M: s['large-pages'].includes('2M'),
        page1G: s['large-pages'].includes('1G'),
        accessDirty: s['accessed-dirty'],
        walkLength5: s['five-level'],
        maxPhysAddr: MAXPHYADDR,
        cacheEntries: s['cache-entries'],
      },
      isX86Cpu(cpu) ? () => cpu.flushTlb() : null,
    );
    ctx.provide(Tokens.NestedPaging, ept);
    return {
      reset() {
        ept.reset();
      },
      stats: () => ({ ...ept.stats }),
      describe: () =>
        [
          s['five-level'] ? '4/5-level' : '4-level',
          s['accessed-dirty'] ? 'A/D' : 'no A/D',
          s['large-pages'].length ? `${s['large-pages'].join('+')} pages` : '4K pages only',
          `cache ${s['cache-entries']}`,
        ].join(', '),
    };
  },
});
