/*
 * sync.c — the pthread mutexes, condition variables, rwlocks, barriers and semaphores a program
 * uses. Thin: each names the object's owner (ours, or glibc's for process-shared, robust and
 * priority objects) and calls the runtime, whose gsync.c holds the policy for glibc's objects (they
 * must never block a worker) and whose sync.c holds our own.
 */
#include <limits.h>
#include <stddef.h>

#include "hook.h"

_Static_assert(offsetof(pthread_rwlock_t, __data.__shared) == 28, "rwlock shared");
_Static_assert(offsetof(pthread_rwlock_t, __data.__wrphase_futex) == offsetof(struct ch_rwlock, writers_waiting),
               "rwlock writers_waiting");
_Static_assert(sizeof(pthread_barrier_t) >= sizeof(struct ch_barrier), "barrier size");
_Static_assert(sizeof(sem_t) >= sizeof(struct ch_sem), "sem size");

#define CH_BARRIER_MAGIC 0x43484252u /* at glibc's `shared` field, where glibc keeps 0 or 128 */
#define CH_SEM_MAGIC 0x4348534du     /* at glibc's `private` field, where glibc keeps 0 or 128 */

static bool clock_ok(clockid_t clk) { return clk == CLOCK_REALTIME || clk == CLOCK_MONOTONIC; }

static bool ts_ok(const struct timespec *ts) { return ts && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000; }

/* ---- mutex ---------------------------------------------------------------------------------------- */

/* Called from inside the program's allocator: never park (real.c says why); wait on the OS thread.
 * And the caller's scheduler stays on this OS thread from before the wait until the unlock
 * (ch_pin_alloc): a holder of an allocator lock is then always on an OS thread of its own, never
 * queued behind a handoff, so whoever waits for that lock — the spawner making a spare OS thread
 * inside glibc's pthread_create, too — waits only for code that runs (runtime/handoff.c). */
static int lock_in_allocator(pthread_mutex_t *m) {
  ch_pin_alloc(1);
  ch_tls_bypass++;
  int r = ch_pmutex_lock(m);
  ch_tls_bypass--;
  if (r) ch_pin_alloc(-1);
  return r;
}

static int trylock_in_allocator(pthread_mutex_t *m) {
  ch_pin_alloc(1); /* before it is held: see lock_in_allocator */
  int r = ch_pmutex_trylock(m);
  if (r) ch_pin_alloc(-1);
  return r;
}

static int unlock_in_allocator(pthread_mutex_t *m) {
  int r = ch_pmutex_unlock(m);
  if (!r) ch_pin_alloc(-1);
  return r;
}

CH_EXPORT int pthread_mutex_lock(pthread_mutex_t *m) {
  if (CH_UNLIKELY(ch_from_allocator(__builtin_return_address(0)))) return lock_in_allocator(m);
  CH_STAT_CALL(CH_FAM_SYNC);
  return ch_pmutex_lock(m);
}
CH_EXPORT int pthread_mutex_trylock(pthread_mutex_t *m) {
  if (CH_UNLIKELY(ch_from_allocator(__builtin_return_address(0)))) return trylock_in_allocator(m);
  return ch_pmutex_trylock(m);
}
CH_EXPORT int pthread_mutex_unlock(pthread_mutex_t *m) {
  if (CH_UNLIKELY(ch_from_allocator(__builtin_return_address(0)))) return unlock_in_allocator(m);
  return ch_pmutex_unlock(m);
}
CH_EXPORT int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *abs) {
  CH_STAT_CALL(CH_FAM_SYNC);
  return ch_pmutex_timedlock(m, abs);
}
CH_EXPORT int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clk, const struct timespec *abs) {
  CH_STAT_CALL(CH_FAM_SYNC);
  return ch_pmutex_clocklock(m, clk, abs);
}

CH_EXPORT int pthread_mutex_destroy(pthread_mutex_t *m) {
  int r = ch_pmutex_busy(m);
  return r ? r : REAL(pthread_mutex_destroy)(m);
}

/* ---- condition variable --------------------------------------------------------------------------- */

/* Cancellation points: a request that ended the wait acts with the mutex held again, as POSIX says. */
CH_EXPORT int pthread_cond_wait(pthread_cond_t *cv, pthread_mutex_t *m) {
  CH_STAT_CALL(CH_FAM_SYNC);
  int r = ch_pcond_wait(cv, m);
  ch_cancel_test();
  return r;
}
CH_EXPORT int pthread_cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *m, const struct timespec *abs) {
  CH_STAT_CALL(CH_FAM_SYNC);
  int r = ch_pcond_timedwait(cv, m, abs);
  ch_cancel_test();
  return r;
}
CH_EXPORT int pthread_cond_clockwait(pthread_cond_t *cv, pthread_mutex_t *m, clockid_t clk,
                                     const struct timespec *abs) {
  CH_STAT_CALL(CH_FAM_SYNC);
  int r = ch_pcond_clockwait(cv, m, clk, abs);
  ch_cancel_test();
  return r;
}
CH_EXPORT int pthread_cond_signal(pthread_cond_t *cv) { return ch_pcond_signal(cv, false); }
CH_EXPORT int pthread_cond_broadcast(pthread_cond_t *cv) { return ch_pcond_signal(cv, true); }

/* ---- rwlock: ours unless process-shared ------------------------------------------------------------ */

static struct ch_rwlock *ours_rw(pthread_rwlock_t *rw) {
  return rw->__data.__shared ? NULL : (struct ch_rwlock *)(void *)rw;
}

static bool prefer_writer(pthread_rwlock_t *rw) {
  return rw->__data.__flags == PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP;
}

CH_EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t *rw) {
  struct ch_rwlock *c = ours_rw(rw);
  if (!c) return REAL(pthread_rwlock_rdlock)(rw);
  CH_STAT_CALL(CH_FAM_SYNC);
  return -ch_rwlock_rdlock(c, CH_NO_DEADLINE, false, prefer_writer(rw));
}

CH_EXPORT int pthread_rwlock_tryrdlock(pthread_rwlock_t *rw) {
  struct ch_rwlock *c = ours_rw(rw);
  if (!c) return REAL(pthread_rwlock_tryrdlock)(rw);
  return -ch_rwlock_rdlock(c, 0, true, prefer_writer(rw));
}

CH_EXPORT int pthread_rwlock_clockrdlock(pthread_rwlock_t *rw, clockid_t clk, const struct timespec *abs) {
  struct ch_rwlock *c = ours_rw(rw);
  if (!clock_ok(clk) || !ts_ok(abs)) return EINVAL; /* glibc checks both first */
  if (!c) return REAL(pthread_rwlock_clockrdlock)(rw, clk, abs);
  CH_STAT_CALL(CH_FAM_SYNC);
  int r = ch_rwlock_rdlock(c, 0, true, prefer_writer(rw)); /* no timeout check if it can lock at once */
  if (r != -EBUSY) return -r;
  uint64_t deadline;
  if (ch_abs_deadline(clk, abs, &deadline) < 0) return EINVAL;
  return -ch_rwlock_rdlock(c, deadline, false, prefer_writer(rw));
}

CH_EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t *rw, const struct timespec *abs) {
  if (!ours_rw(rw)) return REAL(pthread_rwlock_timedrdlock)(rw, abs);
  return pthread_rwlock_clockrdlock(rw, CLOCK_REALTIME, abs);
}

CH_EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t *rw) {
  struct ch_rwlock *c = ours_rw(rw);
  if (!c) return REAL(pthread_rwlock_wrlock)(rw);
  CH_STAT_CALL(CH_FAM_SYNC);
  return -ch_rwlock_wrlock(c, CH_NO_DEADLINE, false);
}

CH_EXPORT int pthread_rwlock_trywrlock(pthread_rwlock_t *rw) {
  struct ch_rwlock *c = ours_rw(rw);
  if (!c) return REAL(pthread_rwlock_trywrlock)(rw);
  return -ch_rwlock_wrlock(c, 0, true);
}

CH_EXPORT int pthread_rwlock_clockwrlock(pthread_rwlock_t *rw, clockid_t clk, const struct timespec *abs) {
  struct ch_rwlock *c = ours_rw(rw);
  if (!clock_ok(clk) || !ts_ok(abs)) return EINVAL; /* glibc checks both first */
  if (!c) return REAL(pthread_rwlock_clockwrlock)(rw, clk, abs);
  CH_STAT_CALL(CH_FAM_SYNC);
  int r = ch_rwlock_wrlock(c, 0, true);
  if (r != -EBUSY) return -r;
  uint64_t deadline;
  if (ch_abs_deadline(clk, abs, &deadline) < 0) return EINVAL;
  return -ch_rwlock_wrlock(c, deadline, false);
}

CH_EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t *rw, const struct timespec *abs) {
  if (!ours_rw(rw)) return REAL(pthread_rwlock_timedwrlock)(rw, abs);
  return pthread_rwlock_clockwrlock(rw, CLOCK_REALTIME, abs);
}

CH_EXPORT int pthread_rwlock_unlock(pthread_rwlock_t *rw) {
  struct ch_rwlock *c = ours_rw(rw);
  return c ? -ch_rwlock_unlock(c) : REAL(pthread_rwlock_unlock)(rw);
}

/* ---- barrier -------------------------------------------------------------------------------------- */

CH_EXPORT int pthread_barrier_init(pthread_barrier_t *b, const pthread_barrierattr_t *attr, unsigned n) {
  int pshared = PTHREAD_PROCESS_PRIVATE;
  if (attr) pthread_barrierattr_getpshared(attr, &pshared);
  if (pshared != PTHREAD_PROCESS_PRIVATE) return REAL(pthread_barrier_init)(b, attr, n);
  if (n == 0) return EINVAL;
  struct ch_barrier *c = (struct ch_barrier *)(void *)b;
  c->count = n;
  atomic_store(&c->arrived, 0);
  atomic_store(&c->gen, 0);
  c->magic = CH_BARRIER_MAGIC;
  return 0;
}

CH_EXPORT int pthread_barrier_wait(pthread_barrier_t *b) {
  struct ch_barrier *c = (struct ch_barrier *)(void *)b;
  CH_STAT_CALL(CH_FAM_SYNC);
  return c->magic == CH_BARRIER_MAGIC ? ch_barrier_wait(c) : ch_pbarrier_wait_glibc(b);
}

CH_EXPORT int pthread_barrier_destroy(pthread_barrier_t *b) {
  struct ch_barrier *c = (struct ch_barrier *)(void *)b;
  if (c->magic != CH_BARRIER_MAGIC) return REAL(pthread_barrier_destroy)(b);
  if (atomic_load(&c->arrived)) return EBUSY;
  c->magic = 0;
  return 0;
}

/* ---- unnamed semaphores (named ones, from sem_open, are glibc's) --------------------------------- */

static struct ch_sem *ours_sem(sem_t *s) {
  struct ch_sem *c = (struct ch_sem *)(void *)s;
  return c->magic == CH_SEM_MAGIC ? c : NULL;
}

CH_EXPORT int sem_init(sem_t *s, int pshared, unsigned value) {
  if (pshared) return REAL(sem_init)(s, pshared, value);
  if (value > SEM_VALUE_MAX) return (int)ch_ret(-EINVAL);
  struct ch_sem *c = (struct ch_sem *)(void *)s;
  atomic_store(&c->value, value);
  atomic_store(&c->nwaiters, 0);
  c->magic = CH_SEM_MAGIC;
  return 0;
}

CH_EXPORT int sem_destroy(sem_t *s) {
  struct ch_sem *c = ours_sem(s);
  if (!c) return REAL(sem_destroy)(s);
  c->magic = 0;
  return 0;
}

CH_EXPORT int sem_wait(sem_t *s) {
  CH_STAT_CALL(CH_FAM_SYNC);
  struct ch_sem *c = ours_sem(s);
  return (int)ch_ret(c ? ch_sem_wait(c, CH_NO_DEADLINE, false) : ch_psem_wait_glibc(s));
}

CH_EXPORT int sem_trywait(sem_t *s) {
  struct ch_sem *c = ours_sem(s);
  return c ? (int)ch_ret(ch_sem_wait(c, 0, true)) : REAL(sem_trywait)(s);
}

CH_EXPORT int sem_clockwait(sem_t *s, clockid_t clk, const struct timespec *abs) {
  struct ch_sem *c = ours_sem(s);
  if (!c) return REAL(sem_clockwait)(s, clk, abs);
  CH_STAT_CALL(CH_FAM_SYNC);
  uint64_t deadline;
  if (ch_abs_deadline(clk, abs, &deadline) < 0) return (int)ch_ret(-EINVAL); /* checked first, as glibc */
  return (int)ch_ret(ch_sem_wait(c, deadline, false));
}

CH_EXPORT int sem_timedwait(sem_t *s, const struct timespec *abs) {
  if (!ours_sem(s)) return REAL(sem_timedwait)(s, abs);
  return sem_clockwait(s, CLOCK_REALTIME, abs);
}

CH_EXPORT int sem_post(sem_t *s) {
  struct ch_sem *c = ours_sem(s);
  return c ? (int)ch_ret(ch_sem_post(c)) : REAL(sem_post)(s);
}

CH_EXPORT int sem_getvalue(sem_t *s, int *v) {
  struct ch_sem *c = ours_sem(s);
  if (!c) return REAL(sem_getvalue)(s, v);
  *v = (int)atomic_load(&c->value);
  return 0;
}

/* ---- stdio stream locks (gsync.c says why) ------------------------------------------------------------ */

CH_EXPORT void flockfile(FILE *f) {
  if (ch_tls_bypass) REAL(flockfile)(f);
  else ch_flockfile(f);
}

CH_EXPORT void funlockfile(FILE *f) {
  if (ch_tls_bypass) REAL(funlockfile)(f);
  else ch_funlockfile(f);
}
