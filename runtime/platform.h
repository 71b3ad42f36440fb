/*
 * platform.h — the runtime's two-way boundary with whatever product it is linked into.
 *
 * The runtime (runtime/) knows nothing of interposition. What it needs from the C library that is
 * not a system call (system calls go through sys.h) comes through ONE table, ch_platform, defined
 * exactly once per product:
 *
 *   libhook.so       hook/real.c fills it with libc's own definitions (dlsym RTLD_NEXT), because in
 *                    the preload the plain names are our hooks;
 *   libcohook.so,    runtime/platform_libc.c fills it with the plain libc functions: nothing is
 *   libcohook_rt.a   interposed there.
 *
 * The other direction — the runtime calling back into the hook layer — is ONE table of upcalls,
 * registered once (ch_upcalls_register) by the hook layer's constructor; the runtime works without
 * it (nothing to call back: libcohook.so).
 *
 * Rule (tests/check_boundary.sh): no runtime object references a name that libhook.so exports, and
 * nothing under runtime/ calls dlsym.
 *
 * A call through the table that can allocate (thread_create) is made with ch_tls_bypass raised:
 * glibc allocates inside it, an allocator that takes a pthread mutex comes back into our hooks, and a
 * nested wait must then block the OS thread as the native call would, never park a coroutine that
 * holds one of glibc's internal locks (see mem.c for the allocation rule).
 */
#ifndef CH_PLATFORM_H
#define CH_PLATFORM_H

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

struct ch_platform {
  /* The hook layer interposes close() and the fd-making calls: the runtime's own fds are moved out
   * of the program's way and cannot be closed by it. Without it (libcohook.so), loop.c guards its
   * fds itself. */
  bool interposed;
  /* An OS thread of our own (workers, offload helpers): glibc's pthread_create. */
  int (*thread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
  /* The kernel's disposition, not the program's recorded one (stack.c's SIGSEGV handler). */
  int (*sigaction)(int, const struct sigaction *, struct sigaction *);
  /* glibc's own sync objects: process-shared, robust and priority mutexes, shared condvars and
   * barriers, named/shared semaphores (gsync.c). */
  int (*mutex_lock)(pthread_mutex_t *);
  int (*mutex_trylock)(pthread_mutex_t *);
  int (*mutex_timedlock)(pthread_mutex_t *, const struct timespec *);
  int (*mutex_clocklock)(pthread_mutex_t *, clockid_t, const struct timespec *);
  int (*mutex_unlock)(pthread_mutex_t *);
  int (*cond_wait)(pthread_cond_t *, pthread_mutex_t *);
  int (*cond_clockwait)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *);
  int (*cond_signal)(pthread_cond_t *);
  int (*cond_broadcast)(pthread_cond_t *);
  int (*barrier_wait)(pthread_barrier_t *);
  int (*sem_wait)(sem_t *);
  int (*sem_trywait)(sem_t *);
  int (*sem_clockwait)(sem_t *, clockid_t, const struct timespec *);
  /* glibc's own thread-specific keys: the runtime's one key that runs its per-OS-thread clean-up at
   * thread exit (thread.c). glibc's keys below 32 never allocate, unlike __cxa_thread_atexit_impl,
   * which callocs through the program's allocator. */
  int (*key_create)(pthread_key_t *, void (*)(void *));
  /* stdio's stream lock, taken the way glibc takes it (blocking the OS thread). */
  void (*flockfile)(FILE *);
  void (*funlockfile)(FILE *);
  /* glibc's pthread_exit: run on a coroutine-thread's own TCB, it unwinds the coroutine's stack
   * (cleanup handlers, C++ destructors) back to coro_entry's unwind buffer (thread.c). */
  void (*thread_exit)(void *);
  int (*setspecific)(pthread_key_t, const void *);
  /* libc's clock_gettime (the vDSO): the hook layer interposes it for the thread CPU clocks
   * (cpuclock.h), so the runtime's own clock reads (ch_now_ns) go here. */
  int (*clock_gettime)(clockid_t, struct timespec *);
};

/* Defined once per product (see above); complete once ch_platform_fill() has run. */
extern struct ch_platform ch_platform;
/* Fill the table if it is not yet (a hook may run before any constructor). Idempotent, cheap. */
void ch_platform_fill(void);
static inline const struct ch_platform *ch_plat(void) {
  if (__builtin_expect(ch_platform.thread_create == NULL, 0)) ch_platform_fill();
  return &ch_platform;
}

/* Upcalls: what the runtime asks of the hook layer. */
struct ch_upcalls {
  /* Run the program's handler for sig on the current coroutine, as if delivered to this thread,
   * with si (NULL: as pthread_kill sends it); returns CH_SIG_RAN if a handler ran, CH_SIG_RESTART
   * if it was installed with SA_RESTART. */
  int (*run_handler)(int sig, const siginfo_t *si);
  /* Whether sig's handler was installed with SA_RESTART. */
  bool (*sig_restarts)(int sig);
  /* A signal whose handler (the program's, wrapped) was installed without SA_RESTART or
   * SA_RESETHAND, or 0: what an offload helper leaves unblocked, to be kicked out of its blocking
   * syscall with EINTR (offload.c). */
  int (*intr_signal)(void);
};
/* Once, from the hook layer's constructor. A second registration is a bug (asserted). */
void ch_upcalls_register(const struct ch_upcalls *up);
extern const struct ch_upcalls *ch_upcalls;

#endif /* CH_PLATFORM_H */
