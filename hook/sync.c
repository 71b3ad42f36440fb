/*
 * sync.c — pthread mutexes, condition variables, rwlocks, barriers and semaphores whose waiters
 * park as coroutines instead of blocking their worker.
 *
 * Layout: our state lives inside the program's own object, at the offsets glibc uses for the same
 * purpose, so static initialisers (PTHREAD_MUTEX_INITIALIZER, PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP,
 * PTHREAD_COND_INITIALIZER ...) and glibc's own *_init functions produce objects we can use as they
 * are. Process-shared, robust and priority objects are left entirely to glibc: another process (or the
 * kernel's robust-list walk) must understand them, and it only knows glibc's protocol. The asserts
 * below pin the offsets we rely on.
 */
#include <limits.h>
#include <stddef.h>
#include <sys/syscall.h>

#include "hook.h"

_Static_assert(offsetof(pthread_mutex_t, __data.__lock) == offsetof(struct ch_mutex, lock), "mutex lock");
_Static_assert(offsetof(pthread_mutex_t, __data.__count) == offsetof(struct ch_mutex, count), "mutex count");
_Static_assert(offsetof(pthread_mutex_t, __data.__owner) == offsetof(struct ch_mutex, owner), "mutex owner");
_Static_assert(offsetof(pthread_mutex_t, __data.__kind) == offsetof(struct ch_mutex, kind), "mutex kind");
_Static_assert(offsetof(pthread_cond_t, __data.__wrefs) == 36, "cond wrefs");
_Static_assert(offsetof(pthread_rwlock_t, __data.__shared) == 28, "rwlock shared");
_Static_assert(offsetof(pthread_rwlock_t, __data.__wrphase_futex) == offsetof(struct ch_rwlock, writers_waiting),
               "rwlock writers_waiting");
_Static_assert(sizeof(pthread_barrier_t) >= sizeof(struct ch_barrier), "barrier size");
_Static_assert(sizeof(sem_t) >= sizeof(struct ch_sem), "sem size");

/* glibc's __kind flag bits: robust 16, priority inherit 32, priority protect 64, process-shared 128 */
#define GLIBC_MUTEX_NOT_OURS 0xf0
/* glibc's __wrefs bits: 1 process-shared, 2 CLOCK_MONOTONIC */
#define GLIBC_COND_SHARED 1u
#define GLIBC_COND_MONOTONIC 2u
#define CH_BARRIER_MAGIC 0x43484252u /* at glibc's `shared` field, where glibc keeps 0 or 128 */
#define CH_SEM_MAGIC 0x4348534du     /* at glibc's `private` field, where glibc keeps 0 or 128 */

static bool clock_ok(clockid_t clk) { return clk == CLOCK_REALTIME || clk == CLOCK_MONOTONIC; }

static bool ts_ok(const struct timespec *ts) { return ts && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000; }

/* A process-shared (glibc) object waited on by a coroutine-thread must not block its worker: the
 * party that would release it may be another coroutine on that same worker. True when the caller
 * is such a coroutine; the glibc call is then made in a way that cannot hold the worker. */
static bool on_worker(void) {
  struct ch_sched *s = ch_sched_peek();
  return s && s->is_worker && !ch_tls_bypass;
}

/* Try, then sleep as a coroutine, with a growing pause (50 us .. 2 ms): for glibc objects that have
 * a try-variant. Returns the try function's final result. */
#define BACKOFF_UNTIL_NOT(busy, call, deadline)                                                      \
  ({                                                                                                 \
    int r_;                                                                                          \
    uint64_t pause_ = 50000;                                                                         \
    while ((r_ = (call)) == (busy)) {                                                                \
      if ((deadline) != CH_NO_DEADLINE && ch_now_ns() >= (deadline)) { r_ = ETIMEDOUT; break; }       \
      ch_io_sleep_until(ch_deadline_after((int64_t)pause_));                                         \
      if (pause_ < 2000000) pause_ *= 2;                                                             \
    }                                                                                                \
    r_;                                                                                              \
  })

static struct ch_mutex *ours_m(pthread_mutex_t *m) {
  struct ch_mutex *c = (struct ch_mutex *)(void *)m;
  return (c->kind & GLIBC_MUTEX_NOT_OURS) ? NULL : c;
}

static unsigned cond_flags(pthread_cond_t *c) { return c->__data.__wrefs & 3u; }

/* ---- mutex ---------------------------------------------------------------------------------------- */

/* glibc's robust mutexes rely on the kernel walking a dying thread's robust list; a coroutine-thread
 * dies without its worker dying. So we remember the robust mutexes a coroutine-thread holds and, when
 * it ends, do what the kernel would: mark each FUTEX_OWNER_DIED, release it and wake a waiter. */
#define ROBUST_KIND 16
#define FUTEX_OWNER_DIED_BIT 0x40000000u

static void note_robust(pthread_mutex_t *m, int r) {
  ch_coro *co = ch_thread_self();
  if (!co || (r != 0 && r != EOWNERDEAD) || !(m->__data.__kind & ROBUST_KIND)) return;
  if (co->nrobust < sizeof co->robust / sizeof co->robust[0]) co->robust[co->nrobust++] = m;
}

static void forget_robust(pthread_mutex_t *m) {
  ch_coro *co = ch_thread_self();
  if (!co) return;
  for (unsigned i = 0; i < co->nrobust; i++)
    if (co->robust[i] == m) {
      co->robust[i] = co->robust[--co->nrobust];
      return;
    }
}

static void robust_owner_died(ch_coro *co) {
  for (unsigned i = 0; i < co->nrobust; i++) {
    pthread_mutex_t *m = co->robust[i];
    /* glibc's own unlock takes the mutex off this worker's robust list (we are on the OS thread that
     * locked it): leaving it linked would let glibc write through a stale link once the mutex's
     * memory is reused. Then mark it as the kernel marks a dead owner's: the next locker gets
     * EOWNERDEAD. Someone taking it in between simply gets it, as if the owner had unlocked. */
    if (REAL(pthread_mutex_unlock)(m) != 0) continue;
    _Atomic unsigned *lock = (_Atomic unsigned *)(void *)&m->__data.__lock;
    unsigned zero = 0;
    atomic_compare_exchange_strong(lock, &zero, FUTEX_OWNER_DIED_BIT);
  }
  co->nrobust = 0;
}

__attribute__((constructor(103))) static void sync_init(void) { ch_thread_exit_robust = robust_owner_died; }

/* glibc tells the owner of a recursive or error-checking glibc mutex (process-shared, robust,
 * priority) by kernel thread id, which every coroutine of a worker shares. So we also remember which
 * coroutine holds such a mutex: another coroutine of the same worker then finds it busy (and may not
 * unlock it), as another thread would. A small table: these objects are rare. */
#define HOLDS 256
static struct {
  pthread_mutex_t *m;
  uint32_t who;
} holds[HOLDS];
static ch_lock_t holds_lock;

static bool owner_kind(pthread_mutex_t *m) {
  int t = m->__data.__kind & 3;
  return (t == PTHREAD_MUTEX_RECURSIVE || t == PTHREAD_MUTEX_ERRORCHECK) && ch_thread_self();
}

static uint32_t holder(pthread_mutex_t *m) {
  uint32_t who = 0;
  ch_lock(&holds_lock);
  for (int i = 0; i < HOLDS; i++)
    if (holds[i].m == m) who = holds[i].who;
  ch_unlock(&holds_lock);
  return who;
}

static void set_holder(pthread_mutex_t *m, uint32_t who) {
  ch_lock(&holds_lock);
  int free_slot = -1;
  for (int i = 0; i < HOLDS; i++) {
    if (holds[i].m == m) {
      if (who) holds[i].who = who;
      else holds[i].m = NULL;
      ch_unlock(&holds_lock);
      return;
    }
    if (!holds[i].m && free_slot < 0) free_slot = i;
  }
  if (who && free_slot >= 0) holds[free_slot].m = m, holds[free_slot].who = who;
  ch_unlock(&holds_lock);
}

/* Another coroutine holds it: answer as glibc answers another thread. */
static bool held_by_other(pthread_mutex_t *m) {
  if (!owner_kind(m)) return false;
  uint32_t h = holder(m);
  return h && h != ch_self_id();
}

CH_EXPORT int pthread_mutex_lock(pthread_mutex_t *m) {
  struct ch_mutex *c = ours_m(m);
  if (c) return -ch_mutex_lock(c, CH_NO_DEADLINE, false);
  int r;
  if (on_worker())
    r = BACKOFF_UNTIL_NOT(EBUSY, held_by_other(m) ? EBUSY : REAL(pthread_mutex_trylock)(m), CH_NO_DEADLINE);
  else r = REAL(pthread_mutex_lock)(m);
  if ((r == 0 || r == EOWNERDEAD) && owner_kind(m)) set_holder(m, ch_self_id());
  note_robust(m, r);
  return r;
}

CH_EXPORT int pthread_mutex_trylock(pthread_mutex_t *m) {
  struct ch_mutex *c = ours_m(m);
  if (c) return -ch_mutex_lock(c, 0, true);
  if (held_by_other(m)) return EBUSY;
  int r = REAL(pthread_mutex_trylock)(m);
  if ((r == 0 || r == EOWNERDEAD) && owner_kind(m)) set_holder(m, ch_self_id());
  note_robust(m, r);
  return r;
}

CH_EXPORT int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clk, const struct timespec *abs) {
  struct ch_mutex *c = ours_m(m);
  if (!clock_ok(clk)) return EINVAL; /* glibc checks the clock before anything else */
  if (!c) return REAL(pthread_mutex_clocklock)(m, clk, abs);
  int r = ch_mutex_lock(c, 0, true); /* POSIX: no timeout check if it can lock at once */
  if (r != -EBUSY) return -r;
  uint64_t deadline;
  if (ch_abs_deadline(clk, abs, &deadline) < 0) return EINVAL;
  return -ch_mutex_lock(c, deadline, false);
}

CH_EXPORT int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *abs) {
  if (!ours_m(m)) return REAL(pthread_mutex_timedlock)(m, abs);
  return pthread_mutex_clocklock(m, CLOCK_REALTIME, abs);
}

/* glibc refuses to destroy a locked mutex with EBUSY (it counts users we do not): so do we. */
CH_EXPORT int pthread_mutex_destroy(pthread_mutex_t *m) {
  struct ch_mutex *c = ours_m(m);
  if (c && atomic_load(&c->lock)) return EBUSY;
  return REAL(pthread_mutex_destroy)(m);
}

CH_EXPORT int pthread_mutex_unlock(pthread_mutex_t *m) {
  struct ch_mutex *c = ours_m(m);
  if (c) return -ch_mutex_unlock(c);
  if (held_by_other(m)) return EPERM;
  int r = REAL(pthread_mutex_unlock)(m);
  if (r == 0) {
    forget_robust(m);
    /* still held (a recursive count left)? glibc's owner field says so */
    if (owner_kind(m) && m->__data.__owner == 0) set_holder(m, 0);
  }
  return r;
}

/* ---- condition variable --------------------------------------------------------------------------- */

static int cond_wait(pthread_cond_t *cv, pthread_mutex_t *m, uint64_t deadline) {
  struct ch_cond *c = (struct ch_cond *)(void *)cv;
  uint32_t seq = ch_cond_enter(c);
  int r = pthread_mutex_unlock(m);
  if (r) {
    ch_cond_block(c, seq + 1, 0); /* only to undo the waiter count: returns at once */
    return r;
  }
  int w = ch_cond_block(c, seq, deadline);
  pthread_mutex_lock(m);
  return w == -ETIMEDOUT ? ETIMEDOUT : 0;
}

/* A process-shared (glibc) condvar: glibc must do the waiting (another process may signal it), and
 * glibc's wait blocks its OS thread.
 *  - On a worker, the wait runs on a helper thread (ch_offload) while the coroutine parks, so the
 *    worker goes on running the coroutine that will signal. With a glibc mutex the helper waits with
 *    it directly (glibc's normal mutexes do not check who unlocks them); with one of ours, the
 *    coroutine releases ours and the helper waits with a private glibc mutex.
 *  - On a plain thread with one of our mutexes: the same private-mutex wait, in the calling thread.
 * The private-mutex wait leaves a window between releasing ours and glibc's wait in which a signal
 * can be missed: it therefore waits in slices of at most 10 ms. An untimed wait returns after a
 * slice as a spurious wake-up (POSIX allows it; callers re-check); a timed one goes on to its own
 * deadline and answers ETIMEDOUT there, as glibc would. */
struct cond_job {
  pthread_cond_t *cv;
  pthread_mutex_t *m; /* the glibc mutex, or NULL: wait with a private one */
  clockid_t clk;
  const struct timespec *abs;
  int ret;
};

static int glibc_wait(pthread_cond_t *cv, pthread_mutex_t *gm, clockid_t clk, const struct timespec *abs) {
  if (gm) return abs ? REAL(pthread_cond_clockwait)(cv, gm, clk, abs) : REAL(pthread_cond_wait)(cv, gm);
  pthread_mutex_t tmp = PTHREAD_MUTEX_INITIALIZER;
  REAL(pthread_mutex_lock)(&tmp);
  int w = REAL(pthread_cond_clockwait)(cv, &tmp, clk, abs);
  REAL(pthread_mutex_unlock)(&tmp);
  return w;
}

static void cond_job_run(void *p) {
  struct cond_job *j = p;
  j->ret = glibc_wait(j->cv, j->m, j->clk, j->abs);
}

static int shared_cond_wait(pthread_cond_t *cv, pthread_mutex_t *m, clockid_t clk, const struct timespec *abs) {
  bool ours = ours_m(m) != NULL, worker = on_worker();
  if (!ours) {
    if (!worker) return abs ? REAL(pthread_cond_clockwait)(cv, m, clk, abs) : REAL(pthread_cond_wait)(cv, m);
    struct cond_job j = {cv, m, clk, abs, 0};
    ch_offload(cond_job_run, &j);
    return j.ret;
  }
  for (;;) {
    struct timespec now, slice;
    clock_gettime(clk, &now);
    slice = now;
    slice.tv_nsec += 10000000;
    if (slice.tv_nsec >= 1000000000) slice.tv_sec++, slice.tv_nsec -= 1000000000;
    bool last = abs && (abs->tv_sec < slice.tv_sec || (abs->tv_sec == slice.tv_sec && abs->tv_nsec <= slice.tv_nsec));
    if (last) slice = *abs;
    int r = pthread_mutex_unlock(m);
    if (r) return r;
    int w;
    if (worker) {
      struct cond_job j = {cv, NULL, clk, &slice, 0};
      ch_offload(cond_job_run, &j);
      w = j.ret;
    } else {
      w = glibc_wait(cv, NULL, clk, &slice);
    }
    pthread_mutex_lock(m);
    if (w != ETIMEDOUT) return w;
    if (last) return ETIMEDOUT;
    if (!abs) return 0;
  }
}

CH_EXPORT int pthread_cond_wait(pthread_cond_t *cv, pthread_mutex_t *m) {
  if (cond_flags(cv) & GLIBC_COND_SHARED) return shared_cond_wait(cv, m, CLOCK_REALTIME, NULL);
  return cond_wait(cv, m, CH_NO_DEADLINE);
}

CH_EXPORT int pthread_cond_clockwait(pthread_cond_t *cv, pthread_mutex_t *m, clockid_t clk,
                                     const struct timespec *abs) {
  if (!clock_ok(clk)) return EINVAL;
  if (cond_flags(cv) & GLIBC_COND_SHARED) {
    if (!ts_ok(abs)) return EINVAL;
    return shared_cond_wait(cv, m, clk, abs);
  }
  uint64_t deadline;
  if (ch_abs_deadline(clk, abs, &deadline) < 0) return EINVAL;
  return cond_wait(cv, m, deadline);
}

/* The clock is the one the condattr chose (pthread_condattr_setclock), CLOCK_REALTIME by default. */
CH_EXPORT int pthread_cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *m, const struct timespec *abs) {
  clockid_t clk = (cond_flags(cv) & GLIBC_COND_MONOTONIC) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
  return pthread_cond_clockwait(cv, m, clk, abs);
}

CH_EXPORT int pthread_cond_signal(pthread_cond_t *cv) {
  if (cond_flags(cv) & GLIBC_COND_SHARED) return REAL(pthread_cond_signal)(cv);
  ch_cond_signal((struct ch_cond *)(void *)cv, false);
  return 0;
}

CH_EXPORT int pthread_cond_broadcast(pthread_cond_t *cv) {
  if (cond_flags(cv) & GLIBC_COND_SHARED) return REAL(pthread_cond_broadcast)(cv);
  ch_cond_signal((struct ch_cond *)(void *)cv, true);
  return 0;
}

/* ---- rwlock --------------------------------------------------------------------------------------- */

static struct ch_rwlock *ours_rw(pthread_rwlock_t *rw) {
  return rw->__data.__shared ? NULL : (struct ch_rwlock *)(void *)rw;
}

static bool prefer_writer(pthread_rwlock_t *rw) {
  return rw->__data.__flags == PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP;
}
#define RW_ARGS_rd(rw) , prefer_writer(rw)
#define RW_ARGS_wr(rw)

#define RW_HOOKS(kind)                                                                               \
  CH_EXPORT int pthread_rwlock_##kind##lock(pthread_rwlock_t *rw) {                                  \
    struct ch_rwlock *c = ours_rw(rw);                                                               \
    return c ? -ch_rwlock_##kind##lock(c, CH_NO_DEADLINE, false RW_ARGS_##kind(rw))                   \
             : REAL(pthread_rwlock_##kind##lock)(rw);                                                \
  }                                                                                                  \
  CH_EXPORT int pthread_rwlock_try##kind##lock(pthread_rwlock_t *rw) {                               \
    struct ch_rwlock *c = ours_rw(rw);                                                               \
    return c ? -ch_rwlock_##kind##lock(c, 0, true RW_ARGS_##kind(rw)) : REAL(pthread_rwlock_try##kind##lock)(rw); \
  }                                                                                                  \
  CH_EXPORT int pthread_rwlock_clock##kind##lock(pthread_rwlock_t *rw, clockid_t clk,                \
                                                 const struct timespec *abs) {                       \
    struct ch_rwlock *c = ours_rw(rw);                                                               \
    if (!clock_ok(clk) || !ts_ok(abs)) return EINVAL; /* glibc checks both first */                  \
    if (!c) return REAL(pthread_rwlock_clock##kind##lock)(rw, clk, abs);                             \
    int r = ch_rwlock_##kind##lock(c, 0, true RW_ARGS_##kind(rw));                                   \
    if (r != -EBUSY) return -r;                                                                      \
    uint64_t deadline;                                                                               \
    if (ch_abs_deadline(clk, abs, &deadline) < 0) return EINVAL;                                     \
    return -ch_rwlock_##kind##lock(c, deadline, false RW_ARGS_##kind(rw));                           \
  }                                                                                                  \
  CH_EXPORT int pthread_rwlock_timed##kind##lock(pthread_rwlock_t *rw, const struct timespec *abs) { \
    if (!ours_rw(rw)) return REAL(pthread_rwlock_timed##kind##lock)(rw, abs);                        \
    return pthread_rwlock_clock##kind##lock(rw, CLOCK_REALTIME, abs);                                \
  }

RW_HOOKS(rd)
RW_HOOKS(wr)

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

struct barrier_job {
  pthread_barrier_t *b;
  int ret;
};

static void barrier_job(void *p) {
  struct barrier_job *j = p;
  j->ret = REAL(pthread_barrier_wait)(j->b);
}

CH_EXPORT int pthread_barrier_wait(pthread_barrier_t *b) {
  struct ch_barrier *c = (struct ch_barrier *)(void *)b;
  if (c->magic == CH_BARRIER_MAGIC) return ch_barrier_wait(c);
  if (!on_worker()) return REAL(pthread_barrier_wait)(b);
  /* A glibc barrier has no try-variant: wait for it on a helper thread while this coroutine parks. */
  struct barrier_job j = {b, 0};
  ch_offload(barrier_job, &j);
  return j.ret;
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

static int sem_try_errno(sem_t *s) { return REAL(sem_trywait)(s) == 0 ? 0 : errno; }

CH_EXPORT int sem_wait(sem_t *s) {
  struct ch_sem *c = ours_sem(s);
  if (c) return (int)ch_ret(ch_sem_wait(c, CH_NO_DEADLINE, false));
  if (on_worker()) return (int)ch_ret(-BACKOFF_UNTIL_NOT(EAGAIN, sem_try_errno(s), CH_NO_DEADLINE));
  return REAL(sem_wait)(s);
}

CH_EXPORT int sem_trywait(sem_t *s) {
  struct ch_sem *c = ours_sem(s);
  return c ? (int)ch_ret(ch_sem_wait(c, 0, true)) : REAL(sem_trywait)(s);
}

CH_EXPORT int sem_clockwait(sem_t *s, clockid_t clk, const struct timespec *abs) {
  struct ch_sem *c = ours_sem(s);
  if (!c) return REAL(sem_clockwait)(s, clk, abs);
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
