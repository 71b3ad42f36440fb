/*
 * thread.c — pthreads become coroutines on the worker pool (COHOOK_THREADS=coroutine, the default).
 *
 * A pthread_t made here is the address of our coroutine; functions given a pthread_t recognise ours
 * by a magic word (ch_thread_of) and hand anything else — the main thread, threads made before the
 * pool existed or in COHOOK_THREADS=native mode — to glibc.
 */
#include <sched.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <string.h>
#include <sys/syscall.h>

#include "hook.h"

/* A program that asks for a stack size gets exactly that (PTHREAD_STACK_MIN at least, as glibc's
 * setter insists), however large: only what the kernel will map bounds it. One that does not gets
 * what glibc would give the thread (runtime/stack.c), or COHOOK_STACK_SIZE.
 *
 * "Did not ask" cannot be learnt through the API: pthread_attr_getstacksize reports glibc's default
 * when none was set, so asking for a size equal to the default would look like no request. glibc
 * keeps a zero in its attribute until a size is set (nptl's struct pthread_attr, whose head has not
 * changed in NPTL's history); it is read there once a probe at first use shows the layout is as
 * expected (else, with another libc, a size equal to the default counts as no request). */
#define CH_THREAD_STACK_MIN (16u * 1024u)

struct glibc_attr { /* the head of nptl/internaltypes.h's struct pthread_attr */
  struct sched_param schedparam;
  int schedpolicy;
  int flags;
  size_t guardsize;
  void *stackaddr;
  size_t stacksize; /* 0 until pthread_attr_setstacksize/setstack */
};
_Static_assert(sizeof(struct glibc_attr) <= sizeof(pthread_attr_t), "pthread_attr_t too small");

static _Atomic int attr_layout; /* 1: the layout matches; -1: it does not; 0: not probed yet */

static bool attr_layout_known(void) {
  int st = atomic_load_explicit(&attr_layout, memory_order_relaxed);
  if (st) return st > 0;
  pthread_attr_t a;
  const struct glibc_attr *g = (const struct glibc_attr *)(const void *)&a;
  st = -1;
  if (pthread_attr_init(&a) == 0) {
    size_t unset = g->stacksize, probe = 3 * CH_THREAD_STACK_MIN + 4096;
    if (unset == 0 && pthread_attr_setstacksize(&a, probe) == 0 && g->stacksize == probe) st = 1;
    pthread_attr_destroy(&a);
  }
  atomic_store_explicit(&attr_layout, st, memory_order_relaxed);
  return st > 0;
}

static size_t requested_stack(const pthread_attr_t *attr) {
  size_t size = 0;
  if (!attr || pthread_attr_getstacksize(attr, &size) != 0) return 0;
  if (attr_layout_known()) {
    if (((const struct glibc_attr *)(const void *)attr)->stacksize == 0) return 0;
  } else { /* another libc's layout: a size equal to the default is taken for no request */
    pthread_attr_t def;
    size_t dflt = 0;
    if (pthread_getattr_default_np(&def) == 0) {
      pthread_attr_getstacksize(&def, &dflt);
      pthread_attr_destroy(&def);
    }
    if (size == dflt) return 0;
  }
  return size < CH_THREAD_STACK_MIN ? CH_THREAD_STACK_MIN : size;
}

CH_EXPORT int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
  if (ch_config.native_threads || ch_tls_bypass) return REAL(pthread_create)(t, attr, fn, arg);
  int ds = PTHREAD_CREATE_JOINABLE;
  if (attr) pthread_attr_getdetachstate(attr, &ds);
  ch_coro *co;
  int r = ch_thread_create(&co, fn, arg, requested_stack(attr), ds == PTHREAD_CREATE_DETACHED);
  if (r < 0) return -r; /* EAGAIN, as glibc when out of memory or mappings */
  *t = (pthread_t)co;
  ch_sig_update(); /* its mask may let through what nobody else did */
  return 0;
}

CH_EXPORT int pthread_join(pthread_t t, void **ret) {
  ch_coro *co = ch_thread_of(t);
  if (!co) return REAL(pthread_join)(t, ret);
  CH_STAT_CALL(CH_FAM_JOIN);
  int r;
  while ((r = -ch_join(co, ret)) == EINTR) ch_cancel_test(); /* only a cancellation request ends it */
  return r;
}

CH_EXPORT int pthread_tryjoin_np(pthread_t t, void **ret) {
  ch_coro *co = ch_thread_of(t);
  if (!co) return REAL(pthread_tryjoin_np)(t, ret);
  CH_STAT_CALL(CH_FAM_JOIN);
  return -ch_join_until(co, ret, 0);
}

CH_EXPORT int pthread_clockjoin_np(pthread_t t, void **ret, clockid_t clk, const struct timespec *abs) {
  ch_coro *co = ch_thread_of(t);
  if (!co) return REAL(pthread_clockjoin_np)(t, ret, clk, abs);
  CH_STAT_CALL(CH_FAM_JOIN);
  uint64_t deadline;
  /* A malformed timespec is not refused by glibc's join: it just waits. */
  if (ch_abs_deadline(clk, abs, &deadline) < 0) deadline = CH_NO_DEADLINE;
  int r = ch_join_until(co, ret, deadline == 0 ? 1 : deadline);
  return r == -EBUSY ? ETIMEDOUT : -r;
}

CH_EXPORT int pthread_timedjoin_np(pthread_t t, void **ret, const struct timespec *abs) {
  if (!ch_thread_of(t)) return REAL(pthread_timedjoin_np)(t, ret, abs);
  return pthread_clockjoin_np(t, ret, CLOCK_REALTIME, abs);
}

CH_EXPORT int pthread_detach(pthread_t t) {
  ch_coro *co = ch_thread_of(t);
  if (!co) return REAL(pthread_detach)(t);
  return -ch_detach(co);
}

CH_EXPORT void pthread_exit(void *ret) {
  ch_coro *self = ch_thread_self();
  /* With its own TCB, glibc unwinds the coroutine-thread as its own (cleanup handlers, destructors);
   * sharing its worker's (COHOOK_TLS=worker), it ends where it stands: key destructors only. */
  if (self && self->own_tcb) ch_thread_exit(ret);
  if (self) ch_coro_exit_now(ret);
  ch_keys_thread_exit(); /* an OS thread (main, typically): our keys are not glibc's to destroy */
  if (getpid() == (pid_t)syscall(SYS_gettid)) {
    ch_sig_main_mask(~0ull); /* an exiting leader takes no signals: the others must */
    ch_thread_main_exiting();
  }
  REAL(pthread_exit)(ret);
  __builtin_unreachable();
}

CH_EXPORT pthread_t pthread_self(void) {
  ch_coro *co = ch_thread_self();
  return co ? (pthread_t)co : REAL(pthread_self)();
}

CH_EXPORT int pthread_equal(pthread_t a, pthread_t b) { return a == b; }

/* Stack bounds of a coroutine-thread are its coroutine stack (garbage collectors ask for them). */
CH_EXPORT int pthread_getattr_np(pthread_t t, pthread_attr_t *attr) {
  ch_coro *co = ch_thread_of(t);
  if (!co) return REAL(pthread_getattr_np)(t, attr);
  int r = pthread_attr_init(attr);
  if (r) return r;
  pthread_attr_setstack(attr, co->stack.lo, co->stack.size);
  if (atomic_load(&co->join_state) == CH_DETACHED) pthread_attr_setdetachstate(attr, PTHREAD_CREATE_DETACHED);
  return 0;
}

/* The kernel cannot single out a coroutine-thread: the runtime delivers the signal itself — the
 * handler runs on the target, and its blocking call ends with EINTR where a thread's would. */
CH_EXPORT int pthread_kill(pthread_t t, int sig) {
  ch_coro *co = ch_thread_of(t);
  if (!co) return REAL(pthread_kill)(t, sig);
  if (sig < 0 || sig >= _NSIG) return EINVAL;
  if (sig == 0) return 0;
  ch_coro_kill(co, sig, ch_sig_restarts(sig));
  return 0;
}

CH_EXPORT int sched_yield(void) {
  struct ch_sched *s = ch_sched_peek();
  if (!s || ch_tls_bypass) return REAL(sched_yield)();
  ch_yield();
  return 0;
}

CH_EXPORT int pthread_once(pthread_once_t *once, void (*fn)(void)) {
  return ch_once((_Atomic uint32_t *)(void *)once, fn);
}

CH_EXPORT int pthread_key_create(pthread_key_t *key, void (*dtor)(void *)) {
  unsigned k;
  int r = ch_key_create(&k, dtor);
  if (r == 0) *key = k;
  return -r;
}

CH_EXPORT int pthread_key_delete(pthread_key_t key) { return -ch_key_delete(key); }
CH_EXPORT void *pthread_getspecific(pthread_key_t key) { return ch_key_get(key); }
/* glibc declares val with access(none): GCC then wrongly warns it may be read uninitialised. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
CH_EXPORT int pthread_setspecific(pthread_key_t key, const void *val) { return -ch_key_set(key, val); }
#pragma GCC diagnostic pop

/* Spin-then-yield on a worker (gsync.c): a spinlock holder that parked would be spun on forever. */
CH_EXPORT int pthread_spin_lock(pthread_spinlock_t *l) {
  if (ch_tls_bypass) return REAL(pthread_spin_lock)(l);
  CH_STAT_CALL(CH_FAM_SYNC);
  return ch_spin_lock(l);
}

/* glibc calls that take a pthread_t treat it as their own thread structure; given one of ours they
 * would read and write far past our allocation. Those a program is likely to use answer here for
 * coroutine-threads instead: names are kept, scheduling and affinity are those of the process, and
 * cancellation is refused (ENOTSUP: it is not supported, and pretending would be worse). */
CH_EXPORT int pthread_setname_np(pthread_t t, const char *name) {
  ch_coro *co = ch_thread_of(t);
  if (!co) return REAL(pthread_setname_np)(t, name);
  if (strlen(name) >= sizeof co->name) return ERANGE;
  strcpy(co->name, name);
  return 0;
}

CH_EXPORT int pthread_getname_np(pthread_t t, char *buf, size_t len) {
  ch_coro *co = ch_thread_of(t);
  if (!co) return REAL(pthread_getname_np)(t, buf, len);
  if (strlen(co->name) >= len) return ERANGE;
  strcpy(buf, co->name);
  return 0;
}

/* The thread name a coroutine-thread sets or reads with prctl is its own (the kernel's is the worker's,
 * shared by every coroutine-thread on it); the kernel truncates to 15 characters, so do we. */
CH_EXPORT int prctl(int option, ...) {
  va_list ap;
  va_start(ap, option);
  unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long);
  unsigned long a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
  va_end(ap);
  ch_coro *co = ch_tls_bypass ? NULL : ch_thread_self();
  if (co && option == PR_SET_NAME && a2) {
    strncpy(co->name, (const char *)a2, sizeof co->name - 1);
    co->name[sizeof co->name - 1] = 0;
    return 0;
  }
  if (co && option == PR_GET_NAME && a2) {
    memcpy((char *)a2, co->name, sizeof co->name);
    return 0;
  }
  return REAL(prctl)(option, a2, a3, a4, a5);
}

CH_EXPORT int pthread_getschedparam(pthread_t t, int *policy, struct sched_param *param) {
  if (!ch_thread_of(t)) return REAL(pthread_getschedparam)(t, policy, param);
  *policy = SCHED_OTHER;
  param->sched_priority = 0;
  return 0;
}

CH_EXPORT int pthread_setschedparam(pthread_t t, int policy, const struct sched_param *param) {
  if (!ch_thread_of(t)) return REAL(pthread_setschedparam)(t, policy, param);
  return policy == SCHED_OTHER && param->sched_priority == 0 ? 0 : EPERM;
}

CH_EXPORT int pthread_getaffinity_np(pthread_t t, size_t size, cpu_set_t *set) {
  if (!ch_thread_of(t)) return REAL(pthread_getaffinity_np)(t, size, set);
  return sched_getaffinity(0, size, set) == 0 ? 0 : errno;
}

CH_EXPORT int pthread_setaffinity_np(pthread_t t, size_t size, const cpu_set_t *set) {
  if (!ch_thread_of(t)) return REAL(pthread_setaffinity_np)(t, size, set);
  return 0; /* a coroutine-thread runs where its worker runs */
}

/* A coroutine-thread's CPU clock is the runtime's (runtime/cpuclock.c); clock_gettime answers for it.
 * ESRCH for a thread that has ended (glibc would hand out an id that names nothing). */
CH_EXPORT int pthread_getcpuclockid(pthread_t t, clockid_t *clk) {
  ch_coro *co = ch_thread_of(t);
  if (!co) return REAL(pthread_getcpuclockid)(t, clk);
  return -ch_cpuclock_id(co, clk);
}

CH_EXPORT int pthread_cancel(pthread_t t) {
  ch_coro *co = ch_thread_of(t);
  if (!co) return REAL(pthread_cancel)(t);
  return -ch_thread_cancel(co); /* ENOTSUP without its own TCB (COHOOK_TLS=worker): cannot unwind it */
}

CH_EXPORT void pthread_testcancel(void) {
  if (ch_thread_self()) ch_cancel_test();
  else REAL(pthread_testcancel)();
}

CH_EXPORT int pthread_setcancelstate(int state, int *old) {
  int r = ch_cancel_set(&state, NULL, old, NULL);
  return r == -ENOTSUP ? REAL(pthread_setcancelstate)(state, old) : -r;
}

CH_EXPORT int pthread_setcanceltype(int type, int *old) {
  int r = ch_cancel_set(NULL, &type, NULL, old);
  return r == -ENOTSUP ? REAL(pthread_setcanceltype)(type, old) : -r;
}
