/*
 * Native runner for the vmm differential CPU tests: executes short user-mode code snippets on the
 * REAL host CPU and reports the final architectural state, so the emulator can be compared to it.
 *
 * Built twice by test/cpu/diff/native.ts: `gcc -O2` (64-bit mode) and `gcc -m32` (32-bit
 * compatibility mode under a 64-bit kernel). The same source serves both (#ifdef __x86_64__).
 *
 * ---------------------------------------------------------------------------------------------
 * RECORD FORMAT (the one description; the TS encoder/decoder is test/cpu/diff/protocol.ts)
 * All integers little-endian. Every register field is 8 bytes, also in 32-bit mode (zero-extended
 * on output, upper half ignored on input).
 *
 * stdout, first: HELLO (64 bytes)
 *    0 u32 magic 'VDHI' (0x49484456)      4 u32 protocol version (PROTO_VERSION)
 *    8 u32 mode (64 or 32)               12 u32 feature bits (FEAT_* below, from CPUID)
 *   16 u64 CODE_ADDR   24 u64 DATA_ADDR   32 u64 STACK_ADDR
 *   40 u32 CODE_SIZE   44 u32 DATA_SIZE   48 u32 STACK_SIZE   52 u8[12] CPUID vendor string
 *
 * stdin: CASE records until EOF, each:
 *    0 u32 magic 'VDCS' (0x53434456)
 *    4 u16 codeLen (<= CODE_SIZE - TRAILER_MAX)
 *    6 u16 dataLo    8 u16 dataLen    initial data window = zeros, except [dataLo, dataLo+dataLen)
 *   10 u16 stackLo  12 u16 stackLen   initial stack window, same scheme
 *   14 u16 reserved (0)
 *   16 u64 rflags   only CF PF AF ZF SF DF OF (ARITH_FLAGS) are taken; IF and bit 1 are forced on
 *   24 u64[16] regs RAX RCX RDX RBX RSP RBP RSI RDI R8..R15 (ModRM order); 32-bit mode uses 0..7
 *  152 u8[codeLen] code, u8[dataLen] data bytes, u8[stackLen] stack bytes
 *
 * stdout: one RESULT record per case, in order:
 *    0 u32 magic 'VDRS' (0x53524456)
 *    4 u32 status: 0 = ran to the end of the code, 1 = signal, 2 = timeout (runner watchdog)
 *    8 u32 signo   12 u32 trapno (exception vector from the kernel)   16 u32 error code
 *   20 u32 si_code 24 u64 fault address (si_addr: CR2 for #PF)
 *   32 u64 rip (status 0: CODE_ADDR+codeLen; status 1: RIP saved by the exception)
 *   40 u64 rflags (full value)
 *   48 u64[16] regs (final, or at the fault)
 *  176 u16 dataLo  178 u16 dataLen   180 u16 stackLo  182 u16 stackLen
 *      changed byte range of each window relative to its initial contents (len 0: unchanged)
 *  184 u8[dataLen] final bytes of that data range, u8[stackLen] final bytes of that stack range
 * ---------------------------------------------------------------------------------------------
 *
 * How a case runs: the code bytes go to CODE_ADDR in an RWX page, followed by a TRAILER (an
 * absolute indirect JMP, which touches no register, flag or stack) to exit_stub. run_guest loads
 * RFLAGS with POPF from a private scratch stack, then every GPR including RSP, and jumps to the
 * code. exit_stub stores every GPR, switches to the scratch stack to read RFLAGS, and returns to
 * C. A signal inside the code (SIGSEGV/SIGBUS/SIGFPE/SIGILL/SIGTRAP) is taken on an alternate
 * signal stack (the guest RSP may point anywhere); the handler copies the registers out of the
 * ucontext and siglongjmp()s back. SA_NODEFER + sigsetjmp(.., 0) avoid a sigprocmask syscall per
 * case. A periodic SIGALRM watchdog aborts a case that runs for more than ~1 s (status 2), so the
 * runner never hangs. The windows are surrounded by unmapped pages, so stray accesses fault.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

#define PROTO_VERSION 1u
#define MAGIC_HELLO 0x49484456u
#define MAGIC_CASE 0x53434456u
#define MAGIC_RESULT 0x53524456u

/* Fixed layout, below 4 GiB so 32-bit mode and 0x67 (32-bit address size) forms can reach it. */
#define CODE_ADDR 0x10000000u
#define CODE_SIZE 0x1000u
#define DATA_ADDR 0x20000000u
#define DATA_SIZE 0x1000u
#define STACK_ADDR 0x30000000u
#define STACK_SIZE 0x1000u
#define TRAILER_MAX 16u

/* RFLAGS bits a case may set: CF PF AF ZF SF DF OF (SDM Vol. 1 3.4.3). */
#define ARITH_FLAGS 0xCD5u
#define RFLAGS_FIXED 0x202u /* bit 1 (reserved, always 1) and IF (user mode cannot clear it) */

#define FEAT_LZCNT (1u << 0)   /* CPUID.80000001H:ECX.ABM/LZCNT[bit 5] */
#define FEAT_BMI1 (1u << 1)    /* CPUID.(EAX=07H,ECX=0):EBX.BMI1[bit 3] (TZCNT) */
#define FEAT_POPCNT (1u << 2)  /* CPUID.01H:ECX.POPCNT[bit 23] */
#define FEAT_CX16 (1u << 3)    /* CPUID.01H:ECX.CMPXCHG16B[bit 13] */
#define FEAT_BMI2 (1u << 4)    /* CPUID.(EAX=07H,ECX=0):EBX.BMI2[bit 8] */
#define FEAT_ADX (1u << 5)     /* CPUID.(EAX=07H,ECX=0):EBX.ADX[bit 19] */
#define FEAT_MOVBE (1u << 6)   /* CPUID.01H:ECX.MOVBE[bit 22] */

#define CASE_HDR 152
#define RESULT_HDR 184
#define NREGS 16

#ifdef __x86_64__
#define MODE 64
typedef uint64_t greg_t_;
#else
#define MODE 32
typedef uint32_t greg_t_;
#endif

/* Shared with the assembly below (hence global, not static). */
greg_t_ in_regs[NREGS];
greg_t_ in_rflags;
greg_t_ out_regs[NREGS];
greg_t_ out_rflags;
greg_t_ host_sp;
greg_t_ code_entry;
greg_t_ exit_stub_addr;
greg_t_ scratch_stack[64] __attribute__((aligned(16)));

extern void run_guest(void);
extern char exit_stub[];

#ifdef __x86_64__
__asm__(".intel_syntax noprefix\n"
        ".text\n"
        ".globl run_guest\n"
        "run_guest:\n"
        "  push rbx\n push rbp\n push r12\n push r13\n push r14\n push r15\n"
        "  mov [rip+host_sp], rsp\n"
        "  lea rsp, [rip+scratch_stack+256]\n"
        "  push qword ptr [rip+in_rflags]\n"
        "  popfq\n"
        "  mov rax, [rip+in_regs+0]\n  mov rcx, [rip+in_regs+8]\n"
        "  mov rdx, [rip+in_regs+16]\n mov rbx, [rip+in_regs+24]\n"
        "  mov rbp, [rip+in_regs+40]\n mov rsi, [rip+in_regs+48]\n"
        "  mov rdi, [rip+in_regs+56]\n mov r8, [rip+in_regs+64]\n"
        "  mov r9, [rip+in_regs+72]\n  mov r10, [rip+in_regs+80]\n"
        "  mov r11, [rip+in_regs+88]\n mov r12, [rip+in_regs+96]\n"
        "  mov r13, [rip+in_regs+104]\n mov r14, [rip+in_regs+112]\n"
        "  mov r15, [rip+in_regs+120]\n mov rsp, [rip+in_regs+32]\n"
        "  jmp qword ptr [rip+code_entry]\n"
        ".globl exit_stub\n"
        "exit_stub:\n"
        "  mov [rip+out_regs+0], rax\n  mov [rip+out_regs+8], rcx\n"
        "  mov [rip+out_regs+16], rdx\n mov [rip+out_regs+24], rbx\n"
        "  mov [rip+out_regs+32], rsp\n mov [rip+out_regs+40], rbp\n"
        "  mov [rip+out_regs+48], rsi\n mov [rip+out_regs+56], rdi\n"
        "  mov [rip+out_regs+64], r8\n  mov [rip+out_regs+72], r9\n"
        "  mov [rip+out_regs+80], r10\n mov [rip+out_regs+88], r11\n"
        "  mov [rip+out_regs+96], r12\n mov [rip+out_regs+104], r13\n"
        "  mov [rip+out_regs+112], r14\n mov [rip+out_regs+120], r15\n"
        "  lea rsp, [rip+scratch_stack+256]\n"
        "  pushfq\n"
        "  pop qword ptr [rip+out_rflags]\n"
        "  cld\n"
        "  mov rsp, [rip+host_sp]\n"
        "  pop r15\n pop r14\n pop r13\n pop r12\n pop rbp\n pop rbx\n"
        "  ret\n"
        ".att_syntax prefix\n");
#else
__asm__(".intel_syntax noprefix\n"
        ".text\n"
        ".globl run_guest\n"
        "run_guest:\n"
        "  push ebx\n push ebp\n push esi\n push edi\n"
        "  mov [host_sp], esp\n"
        "  lea esp, [scratch_stack+256]\n"
        "  push dword ptr [in_rflags]\n"
        "  popfd\n"
        "  mov eax, [in_regs+0]\n  mov ecx, [in_regs+4]\n"
        "  mov edx, [in_regs+8]\n  mov ebx, [in_regs+12]\n"
        "  mov ebp, [in_regs+20]\n mov esi, [in_regs+24]\n"
        "  mov edi, [in_regs+28]\n mov esp, [in_regs+16]\n"
        "  jmp dword ptr [code_entry]\n"
        ".globl exit_stub\n"
        "exit_stub:\n"
        "  mov [out_regs+0], eax\n  mov [out_regs+4], ecx\n"
        "  mov [out_regs+8], edx\n  mov [out_regs+12], ebx\n"
        "  mov [out_regs+16], esp\n mov [out_regs+20], ebp\n"
        "  mov [out_regs+24], esi\n mov [out_regs+28], edi\n"
        "  lea esp, [scratch_stack+256]\n"
        "  pushfd\n"
        "  pop dword ptr [out_rflags]\n"
        "  cld\n"
        "  mov esp, [host_sp]\n"
        "  pop edi\n pop esi\n pop ebp\n pop ebx\n"
        "  ret\n"
        ".att_syntax prefix\n");
#endif

static sigjmp_buf guest_jb;
static volatile sig_atomic_t in_guest;
static volatile uint32_t case_seq;
static uint32_t watchdog_seen = UINT32_MAX;

struct fault_info {
  uint32_t status, signo, trapno, err, si_code;
  uint64_t addr, rip, rflags;
  uint64_t regs[NREGS];
};
static struct fault_info fault;

static void die(const char *msg) {
  fprintf(stderr, "vmm-diff-runner: %s\n", msg);
  exit(2);
}

static void on_signal(int sig, siginfo_t *si, void *ctx_) {
  if (!in_guest) {
    /* The runner itself crashed: report and die instead of looping. */
    signal(sig, SIG_DFL);
    fprintf(stderr, "vmm-diff-runner: signal %d outside guest code\n", sig);
    raise(sig);
    _exit(3);
  }
  ucontext_t *uc = (ucontext_t *)ctx_;
  greg_t *g = uc->uc_mcontext.gregs;
  in_guest = 0;
  fault.status = 1;
  fault.signo = (uint32_t)sig;
  fault.si_code = (uint32_t)si->si_code;
  fault.addr = (uint64_t)(uintptr_t)si->si_addr;
#ifdef __x86_64__
  static const int map[NREGS] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                 REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};
  for (int i = 0; i < NREGS; i++) fault.regs[i] = (uint64_t)g[map[i]];
  fault.rip = (uint64_t)g[REG_RIP];
  fault.rflags = (uint64_t)g[REG_EFL];
  fault.trapno = (uint32_t)g[REG_TRAPNO];
  fault.err = (uint32_t)g[REG_ERR];
#else
  static const int map[8] = {REG_EAX, REG_ECX, REG_EDX, REG_EBX, REG_ESP, REG_EBP, REG_ESI, REG_EDI};
  for (int i = 0; i < 8; i++) fault.regs[i] = (uint32_t)g[map[i]];
  for (int i = 8; i < NREGS; i++) fault.regs[i] = 0;
  fault.rip = (uint32_t)g[REG_EIP];
  fault.rflags = (uint32_t)g[REG_EFL];
  fault.trapno = (uint32_t)g[REG_TRAPNO];
  fault.err = (uint32_t)g[REG_ERR];
#endif
  siglongjmp(guest_jb, 1);
}

static void on_alarm(int sig, siginfo_t *si, void *ctx_) {
  (void)sig;
  (void)si;
  (void)ctx_;
  if (!in_guest) {
    watchdog_seen = UINT32_MAX;
    return;
  }
  if (watchdog_seen != case_seq) {
    watchdog_seen = case_seq; /* first tick in this case: give it until the next tick */
    return;
  }
  in_guest = 0;
  memset(&fault, 0, sizeof fault);
  fault.status = 2;
  fault.signo = SIGALRM;
  siglongjmp(guest_jb, 1);
}

static uint8_t *map_fixed(uint32_t addr, uint32_t size, int prot) {
  void *p = mmap((void *)(uintptr_t)addr, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED || p != (void *)(uintptr_t)addr) die("cannot map a window at its fixed address");
  return (uint8_t *)p;
}

/* Reserve the pages on both sides of a window as PROT_NONE so nothing else lands there. */
static void guard(uint32_t addr, uint32_t size) {
  map_fixed(addr - 0x1000u, 0x1000u, PROT_NONE);
  map_fixed(addr + size, 0x1000u, PROT_NONE);
}

static uint32_t cpu_features(char vendor[12]) {
  unsigned a, b, c, d;
  uint32_t f = 0;
  memset(vendor, 0, 12);
  if (__get_cpuid(0, &a, &b, &c, &d)) {
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
  }
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    if (c & (1u << 23)) f |= FEAT_POPCNT;
    if (c & (1u << 13)) f |= FEAT_CX16;
    if (c & (1u << 22)) f |= FEAT_MOVBE;
  }
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    if (b & (1u << 3)) f |= FEAT_BMI1;
    if (b & (1u << 8)) f |= FEAT_BMI2;
    if (b & (1u << 19)) f |= FEAT_ADX;
  }
  if (__get_cpuid(0x80000001u, &a, &b, &c, &d)) {
    if (c & (1u << 5)) f |= FEAT_LZCNT;
  }
  return f;
}

static void put16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static uint32_t get32(const uint8_t *p) { return get16(p) | (get16(p + 2) << 16); }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32); }

static void read_exact(void *buf, size_t n) {
  if (n && fread(buf, 1, n, stdin) != n) die("truncated case record");
}
static void write_exact(const void *buf, size_t n) {
  if (n && fwrite(buf, 1, n, stdout) != n) die("cannot write result");
}

/* Changed range of a window: first and last differing byte. */
static void changed_range(const uint8_t *now, const uint8_t *init, uint32_t size, uint32_t *lo, uint32_t *len) {
  uint32_t a = 0, b = size;
  while (a < size && now[a] == init[a]) a++;
  if (a == size) {
    *lo = 0;
    *len = 0;
    return;
  }
  while (b > a && now[b - 1] == init[b - 1]) b--;
  *lo = a;
  *len = b - a;
}

/* Fill a window: zeros, then the case bytes at [lo, lo+len); keep a copy to diff against. */
static void fill_window(uint8_t *win, uint8_t *shadow, uint32_t size, uint32_t lo, uint32_t len,
                        const char *what) {
  if (lo + len > size) {
    fprintf(stderr, "vmm-diff-runner: %s range %u+%u exceeds window\n", what, lo, len);
    exit(2);
  }
  memset(win, 0, size);
  read_exact(win + lo, len);
  memcpy(shadow, win, size);
}

int main(void) {
  static uint8_t inbuf[1 << 20], outbuf[1 << 20];
  setvbuf(stdin, (char *)inbuf, _IOFBF, sizeof inbuf);
  setvbuf(stdout, (char *)outbuf, _IOFBF, sizeof outbuf);

  uint8_t *code = map_fixed(CODE_ADDR, CODE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC);
  uint8_t *data = map_fixed(DATA_ADDR, DATA_SIZE, PROT_READ | PROT_WRITE);
  uint8_t *stack = map_fixed(STACK_ADDR, STACK_SIZE, PROT_READ | PROT_WRITE);
  guard(CODE_ADDR, CODE_SIZE);
  guard(DATA_ADDR, DATA_SIZE);
  guard(STACK_ADDR, STACK_SIZE);
  static uint8_t data_init[DATA_SIZE], stack_init[STACK_SIZE];

  /* Signals are taken on their own stack: the guest RSP is arbitrary. */
  stack_t ss;
  ss.ss_sp = malloc(1 << 16);
  ss.ss_size = 1 << 16;
  ss.ss_flags = 0;
  if (!ss.ss_sp || sigaltstack(&ss, NULL) != 0) die("sigaltstack failed");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sa.sa_sigaction = on_signal;
  const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP};
  for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    if (sigaction(sigs[i], &sa, NULL) != 0) die("sigaction failed");
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
  sa.sa_sigaction = on_alarm;
  if (sigaction(SIGALRM, &sa, NULL) != 0) die("sigaction failed");
  struct itimerval it = {{0, 500000}, {0, 500000}};
  if (setitimer(ITIMER_REAL, &it, NULL) != 0) die("setitimer failed");

  exit_stub_addr = (greg_t_)(uintptr_t)exit_stub;
  code_entry = CODE_ADDR;

  uint8_t hello[64];
  memset(hello, 0, sizeof hello);
  char vendor[12];
  put32(hello + 0, MAGIC_HELLO);
  put32(hello + 4, PROTO_VERSION);
  put32(hello + 8, MODE);
  put32(hello + 12, cpu_features(vendor));
  put64(hello + 16, CODE_ADDR);
  put64(hello + 24, DATA_ADDR);
  put64(hello + 32, STACK_ADDR);
  put32(hello + 40, CODE_SIZE);
  put32(hello + 44, DATA_SIZE);
  put32(hello + 48, STACK_SIZE);
  memcpy(hello + 52, vendor, 12);
  write_exact(hello, sizeof hello);

  uint8_t hdr[CASE_HDR];
  uint8_t res[RESULT_HDR];
  for (;;) {
    size_t got = fread(hdr, 1, CASE_HDR, stdin);
    if (got == 0) break;
    if (got != CASE_HDR) die("truncated case header");
    if (get32(hdr) != MAGIC_CASE) die("bad case magic (stream out of sync?)");
    uint32_t code_len = get16(hdr + 4);
    if (code_len > CODE_SIZE - TRAILER_MAX) die("code too long");
    uint64_t rflags = get64(hdr + 16);
    for (int i = 0; i < NREGS; i++) in_regs[i] = (greg_t_)get64(hdr + 24 + 8 * i);
    in_rflags = (greg_t_)((rflags & ARITH_FLAGS) | RFLAGS_FIXED);

    /* Code, then the trailer: an absolute indirect JMP to exit_stub (no register, flag or stack use). */
    memset(code, 0xCC, CODE_SIZE);
    read_exact(code, code_len);
    uint8_t *t = code + code_len;
#ifdef __x86_64__
    t[0] = 0xFF; /* jmp qword ptr [rip+0] ; target follows */
    t[1] = 0x25;
    put32(t + 2, 0);
    put64(t + 6, (uint64_t)exit_stub_addr);
#else
    t[0] = 0xFF; /* jmp dword ptr [abs32] ; abs32 = address of the next 4 bytes */
    t[1] = 0x25;
    put32(t + 2, CODE_ADDR + code_len + 6);
    put32(t + 6, (uint32_t)exit_stub_addr);
#endif
    fill_window(data, data_init, DATA_SIZE, get16(hdr + 6), get16(hdr + 8), "data");
    fill_window(stack, stack_init, STACK_SIZE, get16(hdr + 10), get16(hdr + 12), "stack");

    case_seq++;
    if (sigsetjmp(guest_jb, 0) == 0) {
      in_guest = 1;
      run_guest();
      in_guest = 0;
      fault.status = 0;
      fault.signo = fault.trapno = fault.err = fault.si_code = 0;
      fault.addr = 0;
      fault.rip = CODE_ADDR + code_len;
      fault.rflags = (uint64_t)out_rflags;
      for (int i = 0; i < NREGS; i++) fault.regs[i] = (uint64_t)out_regs[i];
    }
    /* Back from the guest (normally or via siglongjmp): DF is clear (exit_stub's CLD, or the kernel
       clears it for the handler). */
    memset(res, 0, sizeof res);
    put32(res + 0, MAGIC_RESULT);
    put32(res + 4, fault.status);
    put32(res + 8, fault.signo);
    put32(res + 12, fault.trapno);
    put32(res + 16, fault.err);
    put32(res + 20, fault.si_code);
    put64(res + 24, fault.addr);
    put64(res + 32, fault.rip);
    put64(res + 40, fault.rflags);
    for (int i = 0; i < NREGS; i++) put64(res + 48 + 8 * i, fault.regs[i]);
    uint32_t dlo, dlen, slo, slen;
    changed_range(data, data_init, DATA_SIZE, &dlo, &dlen);
    changed_range(stack, stack_init, STACK_SIZE, &slo, &slen);
    put16(res + 176, dlo);
    put16(res + 178, dlen);
    put16(res + 180, slo);
    put16(res + 182, slen);
    write_exact(res, sizeof res);
    write_exact(data + dlo, dlen);
    write_exact(stack + slo, slen);
  }
  if (fflush(stdout) != 0) die("cannot flush results");
  return 0;
}
