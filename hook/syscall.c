/*
 * syscall.c — libc's syscall(): futex(2) made through it by a coroutine on a worker parks the
 * coroutine instead of blocking the worker (runtime/futex.c); every other system call, and every
 * call from a thread the runtime does not run, goes to libc's syscall() unchanged.
 *
 * syscall() is variadic and takes up to six arguments; like libc's own, this reads six (the x86-64
 * and aarch64 calling conventions pass them in registers, so reading ones the caller did not pass is
 * harmless) and hands all six on.
 */
#include <stdarg.h>
#include <sys/syscall.h>

#include "hook.h"

CH_EXPORT long syscall(long n, ...) {
  va_list ap;
  va_start(ap, n);
  long a0 = va_arg(ap, long), a1 = va_arg(ap, long), a2 = va_arg(ap, long);
  long a3 = va_arg(ap, long), a4 = va_arg(ap, long), a5 = va_arg(ap, long);
  va_end(ap);
  if (n == SYS_futex && !ch_tls_bypass) {
    long r = ch_futex((uint32_t *)a0, (int)a1, (uint32_t)a2, (const struct timespec *)a3, (uint32_t *)a4, (uint32_t)a5);
    if (r != CH_E_PASS) {
      CH_ASSERT(r >= -4095);
      if (r < 0) { /* not ch_ret(): a futex wait is no cancellation point */
        errno = (int)-r;
        return -1;
      }
      return r;
    }
  }
  return REAL(syscall)(n, a0, a1, a2, a3, a4, a5);
}
