/**
 * rvm-tutorial: the VMM policy of the ArceOS/RVM x86 hypervisor tutorial (TUTORIAL-SYSTEM.md), the
 * hypervisor's brain written as VMX-root software in TypeScript. It takes a block of host RAM as
 * the guest's 16 MiB, maps it and the IOAPIC/HPET/LAPIC pages through EPT, lets the loader put
 * rvm-bios.bin and nimbos.bin there (it provides GuestMemory), programs the VMCS, starts the vCPU in
 * real mode at 0000:8000 and handles every exit (vcpu.ts). It can also load a Multiboot 1 kernel
 * itself (`kernel`), which is how the benchmark kit runs under it.
 *
 * Guest devices with an MMIO page (guest.devices) are not mapped by EPT: the guest's accesses are
 * EPT violations that mmio.ts emulates; INS/OUTS are emulated by string-io.ts.
 *
 * The guest's timer interrupt reaches the vCPU as on real hardware: the emulated local APIC's
 * interrupt is posted to the host's local APIC as a "kick" vector, which makes the running guest
 * exit (external-interrupt exiting); the exit handler then injects the guest's vector. The guest
 * APIC's NMIs (NMI IPIs, LINT0/LINT1 in NMI mode) take the same way and are injected as virtual
 * NMIs, one at a time, with NMI-window exiting while the guest's NMI handler runs (vcpu.ts).
 */
import { basename } from 'node:path';
import { gpa as toGpa, hex } from '../../src/core/addresses.js';
import type { GuestMemory } from '../../src/core/guest-memory.js';
import { definePlugin } from '../../src/core/plugin.js';
import { Tokens } from '../../src/core/tokens.js';
import type { MachineConfig } from '../../src/config/machine-schema.js';
import { filePath, physAddr, uint, z } from '../../src/config/types.js';
import { EptMemType } from '../../src/x86/ept.js';
import { CR0, CR4 } from '../../src/x86/regs.js';
import { EXIT_REASON_NAMES, Proc2Ctl, VmInstructionError, VmcsField as F } from '../../src/x86/vmx.js';
import { isEpt } from '../ept/index.js';
import { ApicMode, LocalApicModel } from '../lapic-timer/model.js';
import {
  APIC_BASE_EN,
  APIC_BASE_EXTD,
  APIC_EOI,
  APIC_SVR,
  SVR_APIC_ENABLE,
  x2apicMsr,
} from '../lapic-timer/registers.js';
import { buildInfo } from '../multiboot/info.js';
import { MULTIBOOT_BOOTLOADER_MAGIC, parseKernel } from '../multiboot/image.js';
import { isX86Cpu } from '../x86-64/index.js';
import { GuestCpuid } from './cpuid.js';
import {
  EXIT_SWITCH_NAMES,
  Experiments,
  exceptionBitmap,
  experimentControls,
  type ExitSwitches,
  type ExperimentSettings,
} from './experiments.js';
import { layoutProblem, passthroughBases, planLayout } from './layout.js';
import {
  IA32_APIC_BASE,
  computeControls,
  flatGdt,
  msrBitmapPage,
  writeVmcs,
  type GuestStart,
} from './vmcs-setup.js';
import { Vcpu } from './vcpu.js';
import { MmioEmulator } from './mmio.js';
import { StringIo } from './string-io.js';

export { GuestCpuid } from './cpuid.js';
export { Vcpu, HYPERCALL_EXIT_COUNT } from './vcpu.js';

/** The host local APIC vector that kicks the vCPU out of the guest when the guest's APIC has an interrupt. */
export const KICK_VECTOR = 0xfd;
/** Where the Multiboot start puts its GDT (guest-physical; below the kernels' usual 1 MiB). */
const MULTIBOOT_GDT = 0x800;
const PAGE = 4096;
const GIB = 2 ** 30;
/** The x2APIC TPR register's MSR (SDM 10.12.1.2); CR8 is TPR[7:4]. */
const X2APIC_TPR = 0x808;
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

export default definePlugin({
  name: 'rvm-tutorial',
  description:
    "the RVM tutorial hypervisor's policy: 16 MiB guest through EPT, real-mode vCPU at 0x8000, CPUID/I-O/x2APIC exits, MMIO and string I/O emulation, timer injection",
  provides: [Tokens.GuestMemory],
  needs: [Tokens.Cpu, Tokens.Virtualization, Tokens.NestedPaging],
  wants: [Tokens.LocalApic],
  settings: z.object({
    'ram-base': physAddr()
      .default(0x100_0000)
      .describe(
        'host-physical address of guest RAM (2 MiB aligned); EPT tables and the MSR bitmap follow it',
      ),
    'page-size': z
      .enum(['4K', '2M', '1G'])
      .default('4K')
      .describe(
        'EPT page size for guest RAM (the tutorial uses 4 KiB pages; 1G needs ram-base and guest memory in whole GiB)',
      ),
    signature: z
      .string()
      .length(12)
      .default('RVMRVMRVMRVM')
      .describe('hypervisor vendor signature in CPUID 0x40000000 EBX, ECX, EDX'),
    'cpuid-16h': z
      .boolean()
      .default(false)
      .describe(
        'report CPUID leaf 0x16 (TSC MHz from the CPU model); the tutorial does not, so guests calibrate against the HPET',
      ),
    kernel: filePath()
      .optional()
      .describe('a Multiboot 1 kernel to load and start instead of guest.entry (--kernel FILE)'),
    cmdline: z.string().default('').describe('the Multiboot command line (--append ARGS)'),
    apic: z
      .enum(['x2apic', 'xapic'])
      .default('x2apic')
      .describe(
        "the guest's local APIC: x2apic (the tutorial: CPUID forces x2APIC, the APIC starts in x2APIC mode) " +
          'or xapic (CPUID.01H:ECX[21] clear; the guest lapic-timer needs mmio: true, its page emulated through MMIO exits)',
      ),
    // ---- experiments (experiments.ts): off by default, the tutorial's behaviour ----
    exits: z
      .strictObject(
        Object.fromEntries(EXIT_SWITCH_NAMES.map((n) => [n, z.boolean().default(false)])) as Record<
          keyof ExitSwitches,
          z.ZodDefault<z.ZodBoolean>
        >,
      )
      .default(Object.fromEntries(EXIT_SWITCH_NAMES.map((n) => [n, false])) as unknown as ExitSwitches)
      .describe(
        'experiment: exiting controls the tutorial leaves off (hlt, invlpg, rdtsc [RDTSC and RDTSCP], cr3-load, ' +
          'cr3-store, cr8-load, cr8-store, mov-dr, descriptor-table); the policy performs each instruction for the guest',
      ),
    'monitor-trap': z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe('experiment: monitor trap flag for the first N guest instructions (an exit after each)'),
    'preemption-timer': z
      .number()
      .int()
      .min(0)
      .max(0xffff_ffff)
      .optional()
      .describe(
        'experiment: VMX-preemption timer value; the policy counts expiries and the next entry re-arms it',
      ),
    'exception-bitmap': z
      .array(z.number().int().min(0).max(31))
      .default([])
      .describe('experiment: exception vectors that exit; the policy reflects each back into the guest'),
    'pf-error-code-mask': uint(32).default(0).describe('experiment: page-fault error-code mask (SDM 25.2)'),
    'pf-error-code-match': uint(32).default(0).describe('experiment: page-fault error-code match (SDM 25.2)'),
    'ept-protect': z
      .array(
        z.strictObject({
          gpa: physAddr(),
          size: z.number().int().positive(),
          access: z.enum(['r', 'rx', 'rw', 'x']),
        }),
      )
      .default([])
      .describe('experiment: guest-physical ranges (4 KiB aligned) EPT maps with only these permissions'),
    'ept-violation': z
      .enum(['stop', 'unprotect'])
      .default('stop')
      .describe(
        'experiment: on an EPT violation in an ept-protect range, stop the run, or lift the page protection and resume',
      ),
    controls: z
      .enum(['adjusted', 'as-desired'])
      .default('adjusted')
      .describe(
        'experiment: adjusted reads the capability MSRs (SDM A.3); as-desired writes the wanted controls unchecked, so VM entry judges them',
      ),
    'unrestricted-guest': z
      .boolean()
      .default(true)
      .describe(
        'experiment: false leaves "unrestricted guest" off, so a guest without paging fails VM entry (SDM 26.3.1.1)',
      ),
  }),
  create(ctx) {
    const s = ctx.settings;
    const config = ctx.machine.config;
    const guest = config.guest;
    if (!guest) throw ctx.error('the machine has no guest: section (guest memory, entry and devices)');
    const guestBus = ctx.machine.guestBus;
    if (!guestBus) throw ctx.error('the machine has no guest bus');
    const cpu = ctx.get(Tokens.Cpu);
    if (!isX86Cpu(cpu)) throw ctx.error('needs the x86-64 CPU plugin');
    const vmx = ctx.get(Tokens.Virtualization);
    const nested = ctx.get(Tokens.NestedPaging);
    if (!isEpt(nested)) throw ctx.error('needs the ept plugin as vmm.nested-paging');
    const hostBus = ctx.machine.hostBus;
    const layout = planLayout(s['ram-base'], guest.memory);
    const problem = layoutProblem(layout, config.host.memory, config);
    if (problem) throw ctx.error(problem, 'ram-base');
    let passthrough: ReturnType<typeof passthroughBases>;
    try {
      passthrough = passthroughBases(config);
    } catch (e) {
      throw ctx.error(e instanceof Error ? e.message : String(e));
    }
    checkDiskImages(ctx);

    const guestMemory: GuestMemory = {
      size: guest.memory,
      write(addr, bytes) {
        if (addr < 0 || addr + bytes.length > guest.memory)
          throw ctx.error(`a write of ${bytes.length} bytes at GPA ${hex(addr)} ends outside guest RAM`);
        hostBus.writeBytes(layout.ramBase + addr, bytes);
      },
    };
    ctx.provide(Tokens.GuestMemory, guestMemory);

    const apic = ctx.tryGet(Tokens.LocalApic);
    // The host CPU's interrupt controller is wired in the CPU's attach hook: look it up late.
    let hostApic: LocalApicModel | undefined;
    const cpuid = new GuestCpuid(
      (leaf, sub, out) => {
        cpu.cpuid(leaf, sub);
        out.set(cpu.cpuidOut);
      },
      {
        signature: s.signature,
        x2apic: s.apic === 'x2apic',
        ...(s['cpuid-16h']
          ? { frequency: { baseMhz: cpu.model.tscMhz, maxMhz: cpu.model.tscMhz, busMhz: 100 } }
          : {}),
      },
    );
    let kicks = 0;
    /** Emulation failures end the run like the exit handler's own stops. */
    const fault = (message: string): void => {
      ctx.machine.stop({
        kind: 'fault',
        message: `${ctx.instanceName}: ${message}`,
        state: cpu.dumpState(),
        source: ctx.instanceName,
      });
      vmx.stopGuest();
    };
    const mmio = new MmioEmulator(vmx, guestBus, hostBus, fault);
    const stringIo = new StringIo(vmx, guestBus, hostBus, mmio.view, fault, (v) => (cpu.cr2 = v));
    const vcpu = new Vcpu({
      vmx,
      guestBus,
      cpuid,
      apic,
      hostEoi: () => {
        if (!hostApic) return;
        if (hostApic.apicMode === ApicMode.X2Apic) hostApic.writeMsr(x2apicMsr(APIC_EOI), 0, 0);
        else hostApic.mmioWrite(APIC_EOI, 4, 0);
      },
      dumpState: () => cpu.dumpState(),
      stop: (r) => ctx.machine.stop(r),
      log: ctx.log,
      source: ctx.instanceName,
      protectedMode: () => (vmx.vmread32(F.GuestCr0) & CR0.PE) !== 0,
      mmio,
      stringIo,
    });

    const exp: ExperimentSettings = {
      exits: s.exits,
      monitorTrap: s['monitor-trap'],
      preemptionTimer: s['preemption-timer'],
      exceptionBitmap: s['exception-bitmap'],
      pfErrorCodeMask: s['pf-error-code-mask'],
      pfErrorCodeMatch: s['pf-error-code-match'],
      eptProtect: s['ept-protect'],
      eptViolation: s['ept-violation'],
    };
    for (const [i, p] of exp.eptProtect.entries()) {
      if (p.gpa % PAGE !== 0 || p.size % PAGE !== 0 || p.gpa + p.size > guest.memory)
        throw ctx.error(
          `ept-protect[${i}]: ${hex(p.gpa)}+${hex(p.size)} must be 4 KiB aligned pages inside guest RAM (${guest.memory / 1048576} MiB)`,
          'ept-protect',
        );
    }
    if (s['page-size'] === '1G' && (layout.ramBase % GIB !== 0 || guest.memory % GIB !== 0))
      throw ctx.error(
        `1G EPT pages need ram-base (${hex(layout.ramBase)}) and guest memory (${guest.memory / 1048576} MiB) in whole GiB`,
        'page-size',
      );
    const xc = experimentControls(exp);
    const experimentsOn =
      xc.pin !== 0 ||
      xc.proc !== 0 ||
      xc.proc2 !== 0 ||
      exp.exceptionBitmap.length > 0 ||
      exp.pfErrorCodeMask !== 0 ||
      exp.pfErrorCodeMatch !== 0 ||
      exp.eptProtect.length > 0;
    let tables: ReturnType<typeof nested.createTables> | undefined;
    let eptp = 0;
    const experiments = experimentsOn
      ? new Experiments(exp, {
          tsc: () => cpu.tsc(),
          tscAux: () => cpu.tscAux,
          invalidatePage: (lin) => cpu.flushTlbPage(lin),
          setCr2: (v) => (cpu.cr2 = v),
          readTpr: apic ? () => apic.readMsr(X2APIC_TPR).lo : undefined,
          writeTpr: apic ? (v) => void apic.writeMsr(X2APIC_TPR, v, 0) : undefined,
          unprotectPage: (gpa) => {
            tables!.map(gpa, layout.ramBase + gpa, PAGE, {
              memType: EptMemType.WB,
              pageSize: '4K',
              replace: true,
            });
            nested.invept(2, eptp);
          },
          primaryControls: () => vcpu.primaryControls,
          setPrimaryControls: (p) => vcpu.changePrimaryControls(p),
          longMode: () => cpu.lma,
          paging: () => (cpu.cr0 & CR0.PG) !== 0,
          paePaging: () => (cpu.cr0 & CR0.PG) !== 0 && !cpu.lma && (cpu.cr4 & CR4.PAE) !== 0,
          log: ctx.log,
          fault,
        })
      : undefined;
    vcpu.experiments = experiments;

    let loaded = '';
    const ram = () => hostBus.ramAt(layout.ramBase)!;

    return {
      attach() {
        if (!hostBus.ramAt(layout.ramBase))
          throw ctx.error(`no host RAM at ${hex(layout.ramBase)}`, 'ram-base');
        hostApic = cpu.intc instanceof LocalApicModel ? cpu.intc : undefined;
        if (apic) {
          // The guest's interrupt while the guest runs: kick the vCPU out through the host's APIC.
          apic.connectCpu?.({
            interruptRequested: () => {
              if (!vmx.inGuest || !hostApic) return;
              kicks++;
              hostApic.acceptInterrupt(KICK_VECTOR, false);
            },
            // The guest APIC's NMI (NMI IPI, LINT1 in NMI mode) becomes the vCPU's pending virtual
            // NMI; while the guest runs, the kick makes it exit so the exit handler injects it.
            nmi: () => {
              vcpu.raiseNmi();
              if (!vmx.inGuest || !hostApic) return;
              kicks++;
              hostApic.acceptInterrupt(KICK_VECTOR, false);
            },
          });
        }
      },
      start() {
        // Zero guest RAM: the guest sees fresh memory whatever the host RAM held. Only pages that
        // are not zero already are written: host RAM is fresh (untouched, not yet backed by the
        // host OS) on a normal start, and filling all of it costs ~0.3 s and its whole size in RSS.
        const r = ram();
        zeroPages(r.data, layout.ramBase - r.base, guest.memory, (off, len) =>
          hostBus.noteRamWrite(r, off, len),
        );
        ctx.log.info('Starting virtualization...');

        // EPT: guest RAM write-back, the passthrough pages 1:1 uncached, nothing else.
        tables = nested.createTables(layout.eptBase, layout.eptSize, { owner: ctx.instanceName });
        mapGuestRam(tables);
        for (const p of passthrough) {
          const region = hostBus.regionAt(p.base);
          if (region?.kind !== 'mmio') {
            throw ctx.error(`guest.passthrough: host device "${p.name}" has no MMIO page at ${hex(p.base)}`);
          }
          const first = Math.floor(region.base / PAGE) * PAGE;
          const size = alignUp(region.base + region.size, PAGE) - first;
          // A guest device on the same page would never see the guest's accesses (EPT maps the host's).
          for (let a = first; a < first + size; a += PAGE) {
            const own = guestBus.regionAt(a);
            if (own?.kind === 'mmio') {
              throw ctx.error(
                `guest.passthrough: host device "${p.name}" at ${hex(first)} overlaps the MMIO page of guest device ` +
                  `"${own.name}" at ${hex(own.base)}: remove one of them (the guest device is emulated through MMIO exits)`,
              );
            }
          }
          tables.map(first, first, size, { memType: EptMemType.UC, pageSize: '4K' });
        }
        hostBus.writeBytes(layout.msrBitmap, msrBitmapPage());

        // The guest's APIC is an x2APIC from the start (after the machine reset): CPUID forces the
        // x2APIC bit (reference bug 5), so a guest may use the MSRs without setting EXTD itself.
        // With apic: xapic it stays an enabled xAPIC at its page (SDM 11.4.4), reached by MMIO exits.
        if (apic) {
          apic.writeMsr(IA32_APIC_BASE, 0xfee0_0000 | APIC_BASE_EN, 0);
          if (s.apic === 'x2apic')
            apic.writeMsr(IA32_APIC_BASE, 0xfee0_0000 | APIC_BASE_EN | APIC_BASE_EXTD, 0);
        }

        // Host side: the local APIC takes the kick vector.
        hostApic = cpu.intc instanceof LocalApicModel ? cpu.intc : undefined;
        if (hostApic && apic) {
          if (hostApic.apicMode === ApicMode.X2Apic)
            hostApic.writeMsr(x2apicMsr(APIC_SVR), SVR_APIC_ENABLE | 0xff, 0);
          else hostApic.mmioWrite(APIC_SVR, 4, SVR_APIC_ENABLE | 0xff);
        } else if (apic) {
          ctx.log.warn(
            'no host local APIC (lapic-timer in host.devices): guest timer interrupts are only injected at exits',
          );
        }

        let start: GuestStart = {
          mode: guest.entry.mode === 'real' ? 'real' : 'protected',
          ip: guest.entry.ip,
          gdt: 0,
        };
        let regs: { eax: number; ebx: number } | undefined;
        if (s.kernel !== undefined) {
          const mb = loadMultiboot(s.kernel, s.cmdline);
          start = { mode: 'protected', ip: mb.entry, gdt: MULTIBOOT_GDT };
          regs = { eax: MULTIBOOT_BOOTLOADER_MAGIC, ebx: mb.info };
        } else if (guest.entry.mode !== 'real') {
          throw ctx.error(
            `guest.entry mode "${guest.entry.mode}" needs a kernel: this policy starts the vCPU in real mode, ` +
              'or loads a Multiboot kernel itself (the kernel setting; --kernel FILE where the machine declares it)',
            'kernel',
          );
        }
        let controls;
        try {
          controls = computeControls(vmx, { ...xc, exit: 0, entry: 0 }, s.controls === 'as-desired');
          if (!s['unrestricted-guest']) controls.proc2 &= ~Proc2Ctl.UnrestrictedGuest;
          eptp = tables.eptp({ memType: EptMemType.WB, accessDirty: true });
          writeVmcs(vmx, {
            controls,
            eptp,
            msrBitmap: layout.msrBitmap,
            start,
            exceptionBitmap: exceptionBitmap(exp),
            pfErrorCodeMask: exp.pfErrorCodeMask,
            pfErrorCodeMatch: exp.pfErrorCodeMatch,
            ...(exp.preemptionTimer !== undefined ? { preemptionTimer: exp.preemptionTimer } : {}),
          });
        } catch (e) {
          throw ctx.error(e instanceof Error ? e.message : String(e));
        }
        vcpu.setPrimaryControls(controls.proc, controls.pin);
        vmx.setExitHandler(vcpu.handle);
        const r0 = vmx.launch();
        if (r0.kind !== 'entered') {
          throw ctx.error(
            r0.kind === 'vmfail'
              ? `VMLAUNCH failed: VM-instruction error ${r0.error} (${vmInstructionErrorName(r0.error)}, SDM Vol. 3C 31.4)`
              : `VMLAUNCH failed: VM-entry failure, exit reason ${hex(r0.exitReason >>> 0)} ` +
                  `(${EXIT_REASON_NAMES[r0.exitReason & 0xffff] ?? '?'}, SDM Vol. 3C 26.8), qualification ${r0.qualification}`,
          );
        }
        for (let i = 0; i < 16; i++) vmx.setGpr(i, 0n);
        if (regs) {
          vmx.setGpr(0, BigInt(regs.eax));
          vmx.setGpr(3, BigInt(regs.ebx));
        }
        ctx.log.info('Running guest...');
      },
      stop(reason) {
        if (reason.kind !== 'poweroff' && reason.kind !== 'fault') return;
        ctx.log.info(`${reason.kind === 'poweroff' ? 'guest powered off' : 'guest stopped'}: ${summary()}`);
      },
      stats: () => ({
        ...vcpu.stats,
        ...mmio.stats,
        ...stringIo.stats,
        ...Object.fromEntries(Object.entries(mmio.perDevice).map(([k, v]) => [`mmio.${k}`, v])),
        ...(experiments ? experiments.stats : {}),
        kicks,
        ...(loaded ? { loaded } : {}),
        ramBase: hex(layout.ramBase),
      }),
      describe: () =>
        `guest RAM ${guest.memory / 1048576} MiB at host ${hex(layout.ramBase)} (${s['page-size']} EPT pages), ` +
        `passthrough ${passthrough.map((p) => `${p.name}@${hex(p.base)}`).join(', ') || 'none'}, ${s.apic} guest APIC` +
        (s.kernel ? `, multiboot kernel ${s.kernel}` : `, entry ${guest.entry.mode} ${hex(guest.entry.ip)}`),
    };

    /** "N exits (IoInstruction 900 90.0%, Cpuid 100 10.0%, ...)": the top reasons. */
    function summary(): string {
      const st = vmx.exitStats().filter((e) => e.count > 0);
      const total = st.reduce((a, e) => a + e.count, 0);
      st.sort((a, b) => b.count - a.count);
      const top = st
        .slice(0, 5)
        .map(
          (e) =>
            `${e.name || EXIT_REASON_NAMES[e.reason]} ${e.count} ${((100 * e.count) / total).toFixed(1)}%`,
        );
      // Emulated MMIO by guest device, and string I/O, when there was any.
      const mmioDevices = Object.entries(mmio.perDevice).map(([name, n]) => `${name} ${n}`);
      const extra =
        (mmioDevices.length ? `; MMIO emulated: ${mmioDevices.join(', ')}` : '') +
        (stringIo.stats.stringIoExits ? `; string I/O: ${stringIo.stats.stringIoElements} elements` : '');
      return `${total} VM exits${top.length ? ` (${top.join(', ')}${st.length > 5 ? ', ...' : ''})` : ''}${extra}`;
    }

    /**
     * EPT for guest RAM: write-back, `page-size` leaves; the blocks holding ept-protect ranges in
     * 4 KiB leaves with the ranges' permissions.
     */
    function mapGuestRam(t: NonNullable<typeof tables>): void {
      const pageSize = s['page-size'];
      if (exp.eptProtect.length === 0) {
        t.map(0, layout.ramBase, guest!.memory, { memType: EptMemType.WB, pageSize });
        return;
      }
      const block = Math.max(2 * 1048576, pageSize === '1G' ? GIB : 0);
      for (let b = 0; b < guest!.memory; b += block) {
        const size = Math.min(block, guest!.memory - b);
        const hit = exp.eptProtect.some((p) => p.gpa < b + size && b < p.gpa + p.size);
        if (!hit) {
          t.map(b, layout.ramBase + b, size, {
            memType: EptMemType.WB,
            pageSize: size === block ? pageSize : '4K',
          });
          continue;
        }
        for (let g = b; g < b + size; g += PAGE) {
          const p = exp.eptProtect.find((r) => g >= r.gpa && g < r.gpa + r.size);
          const a = p?.access ?? 'rwx';
          t.map(g, layout.ramBase + g, PAGE, {
            memType: EptMemType.WB,
            pageSize: '4K',
            read: a.includes('r'),
            write: a.includes('w'),
            execute: a.includes('x'),
          });
        }
      }
    }

    /** Load a Multiboot 1 kernel into guest RAM with its information structure (Multiboot 3.3). */
    function loadMultiboot(file: string, cmdline: string): { entry: number; info: number } {
      if (!ctx.host.exists(file)) throw ctx.error(`kernel file ${file} not found`, 'kernel');
      const image = parseKernel(file, ctx.host.readFile(file));
      for (const seg of image.segments) {
        if (seg.addr + seg.memSize > guest!.memory) {
          throw ctx.error(
            `kernel segment ${hex(seg.addr)}..${hex(seg.addr + seg.memSize - 1)} is outside guest RAM (${guest!.memory / 1048576} MiB)`,
            'kernel',
          );
        }
        guestMemory.write(toGpa(seg.addr), seg.data);
        // .bss is already zero: guest RAM was cleared.
      }
      const at = alignUp(image.end, PAGE);
      const info = buildInfo({
        at,
        lowTop: guest!.memory,
        highSize: 0,
        cmdline: cmdline ? `${basename(file)} ${cmdline}` : basename(file),
        modules: [],
        loaderName: 'vmm rvm-tutorial',
      });
      if (at + info.size > guest!.memory)
        throw ctx.error('no room in guest RAM for the Multiboot information');
      guestMemory.write(toGpa(at), info.bytes);
      guestMemory.write(toGpa(MULTIBOOT_GDT), flatGdt());
      loaded = `${basename(file)} (${image.format}) entry ${hex(image.entry)}, information at ${hex(at)}`;
      ctx.log.debug(`loaded ${loaded}`);
      return { entry: image.entry, info: at };
    }
  },
});

/** The SDM name of a VM-instruction error number (Table 31-1). */
function vmInstructionErrorName(error: number): string {
  return Object.entries(VmInstructionError).find(([, v]) => v === error)?.[0] ?? 'unknown error';
}

/**
 * The tutorial's images come from a FAT disk image (fat-loader through ahci). When the image is
 * missing, say what to make and how, before the disk controller fails with a bare "not found".
 * The machine description holds paths as written: relative ones are tried against the machine
 * file's directory and the working directory (where --set values are relative to).
 */
function checkDiskImages(ctx: {
  machine: { config: MachineConfig };
  host: { exists(p: string): boolean; resolve(p: string, baseDir: string): string };
  baseDir: string;
  error(message: string, setting?: string): Error;
}): void {
  const config = ctx.machine.config;
  const loader = config.vmm?.loader;
  if (loader?.plugin !== 'fat-loader') return;
  const files = Object.keys((loader.files as Record<string, number> | undefined) ?? {});
  config.host.devices.forEach((dev, index) => {
    if (dev.plugin !== 'ahci' || !Array.isArray(dev.disks)) return;
    (dev.disks as { image?: unknown; create?: unknown }[]).forEach((d, port) => {
      // A disk with a `create:` recipe is made by the controller when its image is absent.
      if (typeof d.image !== 'string' || d.create !== undefined) return;
      const inMachineDir = ctx.host.resolve(d.image, ctx.baseDir);
      if (ctx.host.exists(inMachineDir) || ctx.host.exists(d.image)) return;
      const list = files.join(' ') || 'FILES';
      throw ctx.error(
        `the disk image ${inMachineDir} does not exist. It must be a FAT volume holding ` +
          `${files.join(' and ') || 'the guest images'}. Make it with:\n` +
          `  vmm disk create ${d.image} --size 64M --fat 32\n` +
          `  vmm disk add ${d.image} ${list}\n` +
          `and point the machine at it: --disk ${d.image} (where the machine file declares that ` +
          `shorthand, as q35-nimbos.yaml does), or --set 'host.devices[${index}].disks[${port}].image=${d.image}' ` +
          `(a path relative to the working directory). The tutorial builds nimbos.bin in the NimbOS ` +
          `repository (make in kernel/ with ARCH=x86_64) and rvm-bios.bin in the RVM tutorial's bios/ ` +
          `(see README.md)`,
      );
    });
  });
}

/** Zero the 4 KiB pages of data[off, off+size) that hold a non-zero byte; `written` is told of each. */
export function zeroPages(
  data: Uint8Array,
  off: number,
  size: number,
  written: (off: number, len: number) => void,
): void {
  const words = new Int32Array(data.buffer, data.byteOffset + off, size >>> 2);
  for (let p = 0; p < words.length; p += 1024) {
    const end = Math.min(p + 1024, words.length);
    let w = p;
    while (w < end && words[w] === 0) w++;
    if (w === end) continue;
    words.fill(0, p, end);
    written(off + p * 4, (end - p) * 4);
  }
}
