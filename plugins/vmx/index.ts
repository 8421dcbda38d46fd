/**
 * vmx: a software model of Intel VMX (SDM Vol. 3C chapters 24-27, appendices A-C) on the x86-64
 * CPU's intercept points. The VMM policy gets the API (api.ts) through Tokens.Virtualization and
 * plays VMX-root software: it writes the VMCS, launches the guest and handles every exit.
 */
import { z } from 'zod';
import { definePlugin } from '../../src/core/plugin.js';
import { Tokens } from '../../src/core/tokens.js';
import { isX86Cpu } from '../x86-64/index.js';
import { CONTROL_NAMES, VmxCaps } from './caps.js';
import { VmxEngine } from './engine.js';

export type { Vmx, EntryResult, ExitStats, ExitTraceRecord, ExitHandler } from './api.js';
export { VmxEngine } from './engine.js';
export { VmxCaps } from './caps.js';

const controlNames = Object.keys(CONTROL_NAMES) as [string, ...string[]];

export default definePlugin({
  name: 'vmx',
  description: 'Intel VMX model: VMCS, capability MSRs, VM entry checks, VM exits with SDM exit information',
  provides: [Tokens.Virtualization],
  needs: [Tokens.Cpu],
  wants: [Tokens.NestedPaging],
  settings: z.object({
    'revision-id': z
      .number()
      .int()
      .min(0)
      .max(0x7fffffff)
      .default(0x12)
      .describe('VMCS revision identifier (IA32_VMX_BASIC bits 30:0)'),
    'preemption-timer-rate': z
      .number()
      .int()
      .min(0)
      .max(31)
      .default(5)
      .describe('IA32_VMX_MISC[4:0]: the VMX-preemption timer counts down once every 2^N TSC ticks'),
    'vmwrite-any-field': z
      .boolean()
      .default(true)
      .describe('IA32_VMX_MISC bit 29: VMWRITE may write the VM-exit information fields'),
    'unrestricted-guest': z
      .boolean()
      .default(true)
      .describe('offer "unrestricted guest" (real-mode and unpaged guests; needs EPT)'),
    vpid: z.boolean().default(true).describe('offer "enable VPID" and INVVPID'),
    hide: z
      .array(z.enum(controlNames))
      .default([])
      .describe(
        'controls to hide from the allowed-1 settings (SDM names, e.g. HltExiting), to model an older CPU',
      ),
    'exit-timing': z
      .boolean()
      .default(false)
      .describe('measure host time per exit reason for --stats (two host clock reads per exit)'),
  }),
  create(ctx) {
    const s = ctx.settings;
    const cpu = ctx.get(Tokens.Cpu);
    if (!isX86Cpu(cpu)) throw ctx.error('needs the x86-64 CPU plugin (its intercept hooks)');
    const nested = ctx.tryGet(Tokens.NestedPaging);
    const caps = new VmxCaps({
      revisionId: s['revision-id'],
      preemptionTimerRate: s['preemption-timer-rate'],
      vmwriteAnyField: s['vmwrite-any-field'],
      ept: nested !== undefined,
      unrestrictedGuest: s['unrestricted-guest'],
      vpid: s.vpid,
      hide: s.hide,
    });
    const engine = new VmxEngine({
      cpu,
      caps,
      clock: ctx.machine.clock,
      nested,
      onFatal: (message) =>
        ctx.machine.stop({ kind: 'fault', message, state: cpu.dumpState(), source: ctx.instanceName }),
    });
    engine.setTiming(s['exit-timing']);
    // Bound before Object.assign replaces `stats` on the instance (calling engine.stats would recurse).
    const engineStats = engine.stats.bind(engine);
    return Object.assign(engine, {
      stats: engineStats,
      describe: () =>
        `VMX revision ${s['revision-id']}, preemption timer rate ${s['preemption-timer-rate']}` +
        (nested ? ', EPT' : ', no EPT') +
        (caps.proc2.may1 & 0x80 ? ', unrestricted guest' : ''),
    });
  },
});
