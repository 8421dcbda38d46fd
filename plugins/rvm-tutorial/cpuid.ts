/**
 * The guest's CPUID (TUTORIAL-SYSTEM.md "Devices the guest uses", CPUID row): the host CPU's
 * values with VMX hidden, the hypervisor-present bit and x2APIC forced on (the guest's local APIC
 * is the emulated x2APIC, whatever the host has: reference bug 5), the hypervisor leaves at
 * 0x4000_0000 with a vendor signature, and leaf 0x16 (processor frequency) only when configured.
 *
 * Called on every CPUID exit: no allocation, the result goes into one reused array.
 */

/** CPUID.01H:ECX bits (SDM Vol. 2A, CPUID, Table 3-10). */
export const Cpuid1Ecx = {
  VMX: 1 << 5,
  X2APIC: 1 << 21,
  /** Reserved for hypervisors: "running under a hypervisor" (Intel: always 0 on hardware). */
  HYPERVISOR: 1 << 31,
} as const;

/** CPUID.01H:EDX bit 9: the processor has a local APIC. */
export const CPUID1_EDX_APIC = 1 << 9;

/** The hypervisor CPUID range (the de-facto convention KVM, Hyper-V and Xen share). */
export const HYPERVISOR_LEAF = 0x4000_0000;
const HYPERVISOR_LEAF_LAST = 0x4fff_ffff;
/** Processor frequency information leaf (SDM Vol. 2A, CPUID leaf 16H). */
export const FREQUENCY_LEAF = 0x16;

export interface CpuidPolicy {
  /** 12 characters, returned in EBX, ECX, EDX of leaf 0x4000_0000. */
  signature: string;
  /**
   * CPUID.01H:ECX[21] x2APIC: true (the default) forces it on (the tutorial's x2APIC guest APIC);
   * false clears it, so the guest drives its APIC through the xAPIC page (the policy's `apic: xapic`).
   */
  x2apic?: boolean;
  /** Leaf 0x16 in MHz (EAX base, EBX maximum, ECX bus), or undefined to leave it unreported. */
  frequency?: { baseMhz: number; maxMhz: number; busMhz: number };
}

/** The host CPU model's CPUID: fills out[0..3] = EAX, EBX, ECX, EDX. */
export type HostCpuid = (leaf: number, subleaf: number, out: Int32Array) => void;

/** Little-endian dwords of a 12-character signature, in EBX, ECX, EDX order. */
export function signatureDwords(sig: string): [number, number, number] {
  const s = (sig + ' '.repeat(12)).slice(0, 12);
  const d = (i: number) =>
    (s.charCodeAt(i) & 0xff) |
    ((s.charCodeAt(i + 1) & 0xff) << 8) |
    ((s.charCodeAt(i + 2) & 0xff) << 16) |
    ((s.charCodeAt(i + 3) & 0xff) << 24);
  return [d(0), d(4), d(8)];
}

/**
 * Leaves whose output does not depend on ECX (SDM Vol. 2A, CPUID): computed once, since the CPU
 * model is fixed for the run and nothing in these answers follows guest state (one vCPU: the
 * initial APIC ID is constant; the model reports no OSXSAVE). The benchmark's CPUID loop is a
 * million exits.
 */
const ECX_INDEPENDENT = [
  0, 1, 2, 3, 5, 6, 0x16, 0x8000_0000, 0x8000_0001, 0x8000_0002, 0x8000_0003, 0x8000_0004, 0x8000_0008,
];

/** Cache slots: basic leaves 0-3Fh, hypervisor leaves 4000_0000h-4000_003Fh, extended 8000_0000h-8000_003Fh. */
const GROUP = 0x40;
const EXTENDED_LEAF = 0x8000_0000;

/** A leaf's cache slot, or -1 outside the three groups. */
function slotOf(leaf: number): number {
  if (leaf < GROUP) return leaf;
  if (leaf >= HYPERVISOR_LEAF && leaf < HYPERVISOR_LEAF + GROUP) return GROUP + leaf - HYPERVISOR_LEAF;
  if (leaf >= EXTENDED_LEAF && leaf < EXTENDED_LEAF + GROUP) return 2 * GROUP + leaf - EXTENDED_LEAF;
  return -1;
}

/** Per slot: 1 when the answer may be cached (the whole hypervisor group: the policy's own, ECX ignored). */
const CACHEABLE = new Uint8Array(3 * GROUP);
for (const leaf of ECX_INDEPENDENT) CACHEABLE[slotOf(leaf)] = 1;
CACHEABLE.fill(1, GROUP, 2 * GROUP);

export class GuestCpuid {
  readonly out = new Int32Array(4);
  private readonly sig: [number, number, number];
  private readonly freq: CpuidPolicy['frequency'];
  private readonly x2apic: boolean;
  /** Answers by slot (see GROUP); `undefined` until first asked. */
  private readonly cache: (Int32Array | undefined)[] = new Array<Int32Array | undefined>(3 * GROUP).fill(
    undefined,
  );

  constructor(
    private readonly host: HostCpuid,
    policy: CpuidPolicy,
  ) {
    this.sig = signatureDwords(policy.signature);
    this.freq = policy.frequency;
    this.x2apic = policy.x2apic ?? true;
  }

  /** The guest's CPUID for EAX=leaf, ECX=subleaf, in `out` (reused: copy what you keep). */
  query(leaf: number, subleaf: number): Int32Array {
    const a = this.answer(leaf, subleaf);
    if (a !== this.out) this.out.set(a);
    return this.out;
  }

  /**
   * The guest's CPUID for EAX=leaf, ECX=subleaf as EAX, EBX, ECX, EDX: a cached array for the
   * ECX-independent leaves, else `out`. Read it, never write it (the exit path: no copy).
   */
  answer(leaf: number, subleaf: number): Int32Array {
    leaf >>>= 0;
    const slot = slotOf(leaf);
    if (slot < 0 || CACHEABLE[slot] === 0) return this.compute(leaf, subleaf);
    const hit = this.cache[slot];
    if (hit !== undefined) return hit;
    const o = this.compute(leaf, subleaf).slice();
    this.cache[slot] = o;
    return o;
  }

  private compute(leaf: number, subleaf: number): Int32Array {
    const o = this.out;
    if (leaf >= HYPERVISOR_LEAF && leaf <= HYPERVISOR_LEAF_LAST) {
      if (leaf === HYPERVISOR_LEAF) {
        o[0] = HYPERVISOR_LEAF; // the highest hypervisor leaf: only this one
        o[1] = this.sig[0];
        o[2] = this.sig[1];
        o[3] = this.sig[2];
      } else o.fill(0);
      return o;
    }
    if (leaf === FREQUENCY_LEAF && this.freq !== undefined) {
      o[0] = this.freq.baseMhz & 0xffff;
      o[1] = this.freq.maxMhz & 0xffff;
      o[2] = this.freq.busMhz & 0xffff;
      o[3] = 0;
      return o;
    }
    this.host(leaf, subleaf, o);
    if (leaf === 0) {
      // The maximum basic leaf must cover 0x16 when it is reported.
      if (this.freq !== undefined && o[0]! >>> 0 < FREQUENCY_LEAF) o[0] = FREQUENCY_LEAF;
    } else if (leaf === 1) {
      o[2] = this.x2apic
        ? (o[2]! & ~Cpuid1Ecx.VMX) | Cpuid1Ecx.X2APIC | Cpuid1Ecx.HYPERVISOR | 0
        : (o[2]! & ~(Cpuid1Ecx.VMX | Cpuid1Ecx.X2APIC)) | Cpuid1Ecx.HYPERVISOR | 0;
      o[3] = o[3]! | CPUID1_EDX_APIC;
    }
    return o;
  }
}
