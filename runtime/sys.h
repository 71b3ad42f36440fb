/*
 * sys.h — raw system calls returning -errno (musl's __syscall convention), never touching errno.
 *
 * Inside libhook.so a call to read() from the runtime would bind to our own exported read() and come
 * straight back into the hooks; the runtime therefore makes its non-blocking attempts with the
 * instruction itself. Only used where the call is ours; calls the program made outside coroutine
 * context go to the real libc functions (hook/real.c), cancellation points and all.
 */
#ifndef CH_SYS_H
#define CH_SYS_H

#include <sys/syscall.h>

#if defined(__x86_64__)
static inline long ch_sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
static inline long ch_sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
  return x0;
}
#else
#error "cohook: raw syscalls for x86_64 and aarch64 only"
#endif

#define ch_sys(n, a, b, c) ch_sys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define ch_sys4(n, a, b, c, d) ch_sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define ch_sys5(n, a, b, c, d, e) ch_sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

#endif /* CH_SYS_H */
