/* vmm sample guest: HPET, local APIC timer (x2APIC MSRs or xAPIC MMIO), TSC calibration. */
#include "kernel.h"

/* IA-PC HPET specification 1.0a, section 2.3: register offsets and fields. */
#define HPET_BASE 0xFED00000ul
#define HPET_GCAP_ID 0x000
#define HPET_GEN_CONF 0x010
#define HPET_MAIN_COUNTER 0x0F0
#define HPET_TIMER_CONF(n) (0x100 + 0x20 * (n))
#define GCAP_COUNT_SIZE_CAP (1ul << 13)
#define GCAP_LEG_RT_CAP (1ul << 15)
#define GEN_CONF_ENABLE (1ul << 0)
#define GEN_CONF_LEG_RT (1ul << 1)
#define TN_INT_ENB (1ul << 2)
#define FEMTOSECONDS_PER_SECOND 1000000000000000ul

/* Local APIC (SDM Vol. 3A chapter 11): xAPIC MMIO offsets; the x2APIC MSR is 0x800 + offset/16. */
#define APIC_BASE_ENABLE (1ul << 11)
#define APIC_BASE_EXTD (1ul << 10) /* x2APIC mode */
#define APIC_BASE_ADDR 0xFFFFFF000ul
#define APIC_EOI 0x0B0
#define APIC_SIVR 0x0F0
#define APIC_LVT_TIMER 0x320
#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_LVT_ERROR 0x370
#define APIC_TIMER_INITIAL 0x380
#define APIC_TIMER_CURRENT 0x390
#define APIC_TIMER_DIVIDE 0x3E0
#define SIVR_APIC_ENABLE (1u << 8)
#define LVT_MASKED (1u << 16)
#define LVT_TIMER_PERIODIC (1u << 17)
#define DIVIDE_BY_1 0xB
#define CPUID1_ECX_X2APIC (1u << 21)

#define CALIBRATION_MS 10

int apic_x2;
static uint64_t apic_mmio;
static uint64_t hpet_period_fs;
static uint64_t lapic_hz;

static uint64_t hpet_read(uint32_t reg) { return mmio_read64((uint64_t)phys_to_virt(HPET_BASE) + reg); }
static void hpet_write(uint32_t reg, uint64_t v) { mmio_write64((uint64_t)phys_to_virt(HPET_BASE) + reg, v); }

static uint32_t apic_read(uint32_t reg) {
  return apic_x2 ? (uint32_t)rdmsr(0x800 + (reg >> 4)) : mmio_read32(apic_mmio + reg);
}
static void apic_write(uint32_t reg, uint32_t v) {
  if (apic_x2) wrmsr(0x800 + (reg >> 4), v);
  else mmio_write32(apic_mmio + reg, v);
}

void apic_eoi(void) { apic_write(APIC_EOI, 0); }

void hpet_init(void) {
  kputs("Initializing HPET...\n");
  uint64_t cap = hpet_read(HPET_GCAP_ID);
  hpet_period_fs = cap >> 32;
  unsigned timers = ((cap >> 8) & 0x1F) + 1;
  if (!hpet_period_fs || hpet_period_fs > 100000000ul) panic("HPET: bad counter period %lu fs", hpet_period_fs);
  if (!(cap & GCAP_COUNT_SIZE_CAP)) panic("HPET: counter is not 64-bit");
  if (!(cap & GCAP_LEG_RT_CAP)) panic("HPET: not legacy-replacement capable");
  uint64_t hz = FEMTOSECONDS_PER_SECOND / hpet_period_fs;
  kprintf("HPET: %lu.%06lu MHz, 64-bit, %u timers\n", hz / 1000000, hz % 1000000, timers);
  /* Stop, reset the main counter, disable each comparator's interrupt, then run. */
  hpet_write(HPET_GEN_CONF, hpet_read(HPET_GEN_CONF) & ~(GEN_CONF_ENABLE | GEN_CONF_LEG_RT));
  hpet_write(HPET_MAIN_COUNTER, 0);
  for (unsigned n = 0; n < timers; n++) hpet_write(HPET_TIMER_CONF(n), hpet_read(HPET_TIMER_CONF(n)) & ~TN_INT_ENB);
  hpet_write(HPET_GEN_CONF, hpet_read(HPET_GEN_CONF) | GEN_CONF_ENABLE | GEN_CONF_LEG_RT);
}

static uint64_t hpet_ticks_for_ms(uint64_t ms) { return ms * 1000000000000ul / hpet_period_fs; }

static void hpet_wait_until(uint64_t t) {
  while (hpet_read(HPET_MAIN_COUNTER) < t) cpu_relax();
}

static void apic_init(void) {
  uint32_t r[4];
  cpuid(1, 0, r);
  uint64_t base = rdmsr(MSR_IA32_APIC_BASE);
  if (r[2] & CPUID1_ECX_X2APIC) {
    apic_x2 = 1;
    wrmsr(MSR_IA32_APIC_BASE, base | APIC_BASE_ENABLE | APIC_BASE_EXTD);
    kputs("Local APIC: x2APIC mode (MSRs 0x800-0x8FF)\n");
  } else {
    uint64_t pa = base & APIC_BASE_ADDR;
    if (pa < 0xC0000000ul || pa >= 0x100000000ul) panic("LAPIC page at 0x%lx is not mapped", pa);
    wrmsr(MSR_IA32_APIC_BASE, base | APIC_BASE_ENABLE);
    apic_mmio = (uint64_t)phys_to_virt(pa);
    kprintf("Local APIC: xAPIC mode (MMIO at 0x%lx)\n", pa);
  }
  apic_write(APIC_SIVR, SIVR_APIC_ENABLE | VEC_SPURIOUS);
  apic_write(APIC_LVT_LINT0, LVT_MASKED);
  apic_write(APIC_LVT_LINT1, LVT_MASKED);
  apic_write(APIC_LVT_ERROR, VEC_APIC_ERROR);
  apic_write(APIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
  apic_write(APIC_TIMER_DIVIDE, DIVIDE_BY_1);
}

/* TSC: CPUID leaf 0x16 (processor base frequency) when present, as NimbOS does; else measured
 * against the HPET. LAPIC timer: count down from 0xFFFFFFFF for CALIBRATION_MS of HPET time. */
void timers_calibrate(void) {
  apic_init();
  uint32_t r[4];
  cpuid(0, 0, r);
  uint64_t tsc_mhz = 0;
  if (r[0] >= 0x16) {
    cpuid(0x16, 0, r);
    tsc_mhz = r[0] & 0xFFFF;
  }
  uint64_t span = hpet_ticks_for_ms(CALIBRATION_MS);
  if (tsc_mhz) {
    kprintf("Calibrated TSC frequency: %lu MHz (CPUID 0x16)\n", tsc_mhz);
  } else {
    uint64_t t0 = hpet_read(HPET_MAIN_COUNTER);
    uint64_t c0 = rdtsc();
    hpet_wait_until(t0 + span);
    uint64_t c1 = rdtsc();
    kprintf("Calibrated TSC frequency: %lu MHz (HPET)\n", (c1 - c0) / (CALIBRATION_MS * 1000));
  }
  uint64_t t0 = hpet_read(HPET_MAIN_COUNTER);
  apic_write(APIC_TIMER_INITIAL, 0xFFFFFFFF);
  hpet_wait_until(t0 + span);
  uint32_t left = apic_read(APIC_TIMER_CURRENT);
  apic_write(APIC_TIMER_INITIAL, 0);
  lapic_hz = (uint64_t)(0xFFFFFFFFu - left) * (1000 / CALIBRATION_MS);
  if (lapic_hz < TICK_HZ) panic("LAPIC timer does not count (current count %u)", left);
  kprintf("Calibrated LAPIC frequency: %lu MHz\n", lapic_hz / 1000000);
}

void apic_timer_start(void) {
  apic_write(APIC_LVT_TIMER, LVT_TIMER_PERIODIC | VEC_TIMER);
  apic_write(APIC_TIMER_INITIAL, (uint32_t)(lapic_hz / TICK_HZ));
  kprintf("APIC timer: periodic, vector 0x%x, %u Hz\n", VEC_TIMER, TICK_HZ);
}
