/*
 * sys.h — the runtime's one way into the kernel: raw system calls returning -errno (musl's
 * __syscall convention), never touching errno.
 *
 * Inside libhook.so a call to read() from the runtime would bind to our own exported read() and come
 * straight back into the hooks; the runtime therefore makes every system call with the instruction
 * itself — never through libc's syscall(), never through a libc wrapper whose name the preload may
 * export. (The one exception is clock_gettime, which is a vDSO call and no system call at all.)
 * Calls the program made outside coroutine context go to the real libc functions (hook/real.c),
 * cancellation points and all. tests/check_boundary.sh enforces the rule.
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

#define ch_sys0(n) ch_sys6((n), 0, 0, 0, 0, 0, 0)
#define ch_sys(n, a, b, c) ch_sys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define ch_sys4(n, a, b, c, d) ch_sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define ch_sys5(n, a, b, c, d, e) ch_sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* A raw result that is an error: -4095..-1, as the kernel returns them. */
#define CH_SYS_ERR(r) ((unsigned long)(long)(r) > -4096ul)

/* mmap through the instruction; MAP_FAILED (with nothing in errno) on failure. */
static inline void *ch_mmap(void *addr, unsigned long len, int prot, int flags, int fd, long off) {
  long r = ch_sys6(SYS_mmap, (long)addr, (long)len, prot, flags, fd, off);
  return CH_SYS_ERR(r) ? (void *)-1 : (void *)r;
}
#define ch_munmap(a, l) ch_sys(SYS_munmap, (a), (l), 0)
#define ch_mprotect(a, l, p) ch_sys(SYS_mprotect, (a), (l), (p))
#define ch_madvise(a, l, adv) ch_sys(SYS_madvise, (a), (l), (adv))
#define ch_gettid() ((int)ch_sys0(SYS_gettid))
#define ch_getpid() ((int)ch_sys0(SYS_getpid))

/* Everything the runtime says to the user goes to stderr this way: it must reach them even when the
 * program's stdio is broken and must never park (a dying program's write() could, through a hook). */
static inline void ch_write_err(const char *msg, unsigned long len) {
  while (len) {
    long w = ch_sys(SYS_write, 2, msg, len);
    if (w == -4 /* EINTR */) continue;
    if (w <= 0) return;
    msg += w, len -= (unsigned long)w;
  }
}

#endif /* CH_SYS_H */
