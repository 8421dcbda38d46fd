/* vmm sample guest: the system call ABI, shared by the kernel and user programs.
 * SYSCALL with RAX = number, RDI/RSI/RDX = arguments; the result comes back in RAX, negative
 * values are errors. RCX and R11 are clobbered (SDM Vol. 2B, SYSCALL). */
#ifndef SYSCALL_H
#define SYSCALL_H

#define SYS_WRITE 0   /* write(fd 1 or 2, buf, len) -> bytes written */
#define SYS_EXIT 1    /* exit(code), does not return */
#define SYS_GETPID 2  /* getpid() -> pid */
#define SYS_GETTICKS 3 /* getticks() -> timer interrupts since boot */
#define SYS_YIELD 4   /* yield() -> 0, lets pending interrupts be taken */

#define SYS_EBADF 9
#define SYS_EFAULT 14
#define SYS_ENOSYS 38

#endif
