/* vmm sample guest: physical frames and the kernel's final 4-level page tables.
 *
 * Layout (SDM Vol. 3A section 4.5, 4-level paging):
 *   PML4[511] -> PDPT: [0] 0..1 GiB of RAM in 2 MiB pages (kernel image and physical map),
 *                      [3] 3..4 GiB in 2 MiB uncached pages (IOAPIC, HPET, LAPIC MMIO).
 *   PML4[510] -> on demand, 4 KiB pages: the `mem` command's scratch window.
 *   PML4[0]   -> on demand, 4 KiB user pages of the running program.
 */
#include "kernel.h"

extern char _end[];
extern uint32_t boot_efer_nxe;

static uint64_t kernel_pml4[512] ALIGNED(4096);
static uint64_t kernel_pdpt[512] ALIGNED(4096);
static uint64_t kernel_pd_ram[512] ALIGNED(4096);
static uint64_t kernel_pd_mmio[512] ALIGNED(4096);

uint64_t nx_mask;
static uint64_t next_frame, frame_limit, free_list, free_count;

#define IDX(va, level) (((va) >> (12 + 9 * (level))) & 511)
#define LARGE_PAGE_SIZE 0x200000ul

void mm_init(uint64_t mem_top) {
  nx_mask = boot_efer_nxe ? PTE_NX : 0;
  next_frame = (virt_to_phys(_end) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
  frame_limit = mem_top;

  for (uint64_t i = 0; i < 512; i++) {
    kernel_pd_ram[i] = (i * LARGE_PAGE_SIZE) | PTE_P | PTE_W | PTE_PS | PTE_G;
    kernel_pd_mmio[i] = (0xC0000000ul + i * LARGE_PAGE_SIZE) | PTE_P | PTE_W | PTE_PS | PTE_G | PTE_PCD |
                        PTE_PWT | nx_mask;
  }
  kernel_pdpt[0] = virt_to_phys(kernel_pd_ram) | PTE_P | PTE_W;
  kernel_pdpt[3] = virt_to_phys(kernel_pd_mmio) | PTE_P | PTE_W;
  kernel_pml4[511] = virt_to_phys(kernel_pdpt) | PTE_P | PTE_W;
  write_cr3(virt_to_phys(kernel_pml4));
}

uint64_t frame_alloc(void) {
  uint64_t pa;
  if (free_list) {
    pa = free_list;
    free_list = *(uint64_t *)phys_to_virt(pa);
    free_count--;
  } else if (next_frame + PAGE_SIZE <= frame_limit) {
    pa = next_frame;
    next_frame += PAGE_SIZE;
  } else {
    panic("out of physical memory");
  }
  memset(phys_to_virt(pa), 0, PAGE_SIZE);
  return pa;
}

/* Freed frames go on a LIFO list, so the same command sequence reuses the same frames. */
void frame_free(uint64_t pa) {
  *(uint64_t *)phys_to_virt(pa) = free_list;
  free_list = pa;
  free_count++;
}

uint64_t frames_free_count(void) { return (frame_limit - next_frame) / PAGE_SIZE + free_count; }

/* Returns the level-0 (page table) entry for va, creating tables when create is set. */
static uint64_t *walk(uint64_t va, int create) {
  uint64_t *table = kernel_pml4;
  uint64_t inter = PTE_P | PTE_W | (va < USER_LIMIT ? PTE_U : 0);
  for (int level = 3; level > 0; level--) {
    uint64_t *e = &table[IDX(va, level)];
    if (!(*e & PTE_P)) {
      if (!create) return NULL;
      *e = frame_alloc() | inter;
    } else if (*e & PTE_PS) {
      return NULL; /* inside a large page: not ours to split */
    }
    table = phys_to_virt(*e & PTE_ADDR);
  }
  return &table[IDX(va, 0)];
}

uint64_t *lookup_pte(uint64_t va) { return walk(va, 0); }

int map_page(uint64_t va, uint64_t pa, uint64_t flags) {
  uint64_t *pte = walk(va, 1);
  if (!pte || (*pte & PTE_P)) return -1;
  *pte = pa | flags | PTE_P;
  invlpg(va);
  return 0;
}

uint64_t unmap_page(uint64_t va) {
  uint64_t *pte = walk(va, 0);
  if (!pte || !(*pte & PTE_P)) return 0;
  uint64_t pa = *pte & PTE_ADDR;
  *pte = 0;
  invlpg(va);
  return pa;
}

static void free_table(uint64_t pa, int level) {
  uint64_t *t = phys_to_virt(pa);
  for (int i = 0; i < 512; i++) {
    if (!(t[i] & PTE_P)) continue;
    if (level > 0) free_table(t[i] & PTE_ADDR, level - 1);
    else frame_free(t[i] & PTE_ADDR);
  }
  frame_free(pa);
}

/* Frees every user page and table (PML4 slot 0) and flushes the non-global TLB entries. */
void unmap_user_space(void) {
  if (kernel_pml4[0] & PTE_P) free_table(kernel_pml4[0] & PTE_ADDR, 2);
  kernel_pml4[0] = 0;
  write_cr3(read_cr3());
}

/* A system call may only touch present user pages (writable ones when it writes). */
int user_range_ok(uint64_t va, uint64_t len, int write) {
  if (va >= USER_LIMIT || len > USER_LIMIT - va) return 0;
  for (uint64_t p = va & ~(PAGE_SIZE - 1); p < va + len; p += PAGE_SIZE) {
    uint64_t *pte = walk(p, 0);
    uint64_t need = PTE_P | PTE_U | (write ? PTE_W : 0);
    if (!pte || (*pte & need) != need) return 0;
  }
  return 1;
}
