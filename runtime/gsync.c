/*
 * gsync.c — the program's pthread mutexes, condition variables, barriers and semaphores, behind one
 * entry each: ours (sync.c) when the object's state is ours, glibc's otherwise — and then without
 * ever blocking a worker.
 *
 * Layout: our state lives inside the program's own object, at the offsets glibc uses for the same
 * purpose, so static initialisers (PTHREAD_MUTEX_INITIALIZER, PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP,
 * PTHREAD_COND_INITIALIZER ...) and glibc's own *_init functions produce objects we can use as they
 * are. Process-shared, robust and priority objects are left to glibc: another process (or the
 * kernel's robust-list walk) must understand them, and it only knows glibc's protocol. The asserts
 * below pin the offsets we rely on.
 *
 * glibc's objects are reached through the platform table (platform.h): in the preload the plain
 * names are our own hooks. Waiting on one from a coroutine on a worker must not block the worker —
 * the party that would release it may be another coroutine of that same worker — so:
 *   - mutexes and semaphores (they have a try-variant): try, then sleep as a coroutine with a
 *     growing pause (50 us .. 2 ms);
 *   - condition variables and barriers (no try-variant): glibc's wait runs on a helper OS thread
 *     (offload.c) while the coroutine parks.
 */
#include <limits.h>
#include <stddef.h>

#include "internal.h"

_Static_assert(offsetof(pthread_mutex_t, __data.__lock) == offsetof(struct ch_mutex, lock), "mutex lock");
_Static_assert(offsetof(pthread_mutex_t, __data.__count) == offsetof(struct ch_mutex, count), "mutex count");
_Static_assert(offsetof(pthread_mutex_t, __data.__owner) == offsetof(struct ch_mutex, owner), "mutex owner");
_Static_assert(offsetof(pthread_mutex_t, __data.__kind) == offsetof(struct ch_mutex, kind), "mutex kind");
_Static_assert(offsetof(pthread_cond_t, __data.__wrefs) == 36, "cond wrefs");

/* glibc's __kind flag bits: robust 16, priority inherit 32, priority protect 64, process-shared 128 */
#define GLIBC_MUTEX_NOT_OURS 0xf0
#define GLIBC_MUTEX_ROBUST 16
#define FUTEX_OWNER_DIED_BIT 0x40000000u
/* glibc's __wrefs bits: 1 process-shared, 2 CLOCK_MONOTONIC */
#define GLIBC_COND_SHARED 1u
#define GLIBC_COND_MONOTONIC 2u

#define BACKOFF_FIRST_NS 50000
#define BACKOFF_MAX_NS 2000000
#define COND_SLICE_NS 10000000

void ch_pin(int delta) {
  ch_coro *self = ch_thread_self();
  if (!self || !self->sched->is_worker) return;
  self->pins += (unsigned)delta;
  atomic_fetch_add_explicit(&self->sched->pinned, delta, memory_order_relaxed);
}

void ch_pin_alloc(int delta) {
  CH_RT_SECTION(); /* the pin is made on the scheduler this OS thread owns, and seen by the monitor */
  ch_coro *self = ch_thread_self();
  if (!self || !self->sched->is_worker) return;
  if (delta < 0 && !self->pins) return; /* an unlock without its lock (taken off a worker): no pin to drop */
  ch_pin(delta);
}

bool ch_on_worker(void) {
  struct ch_sched *s = ch_sched_peek();
  return s && s->is_worker && !ch_tls_bypass;
}

static bool clock_ok(clockid_t clk) { return clk == CLOCK_REALTIME || clk == CLOCK_MONOTONIC; }
static bool ts_ok(const struct timespec *ts) { return ts && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000; }

/* An absolute time on `clk` as a deadline on our monotonic clock; -EINVAL for a bad timespec. */
static int abs_deadline(clockid_t clk, const struct timespec *abs, uint64_t *out) {
  if (!abs) {
    *out = CH_NO_DEADLINE;
    return 0;
  }
  if (!ts_ok(abs)) return -EINVAL;
  struct timespec now;
  ch_plat()->clock_gettime(clk, &now);
  int64_t rel = (int64_t)(abs->tv_sec - now.tv_sec) * 1000000000 + (abs->tv_nsec - now.tv_nsec);
  *out = rel <= 0 ? ch_now_ns() : ch_deadline_after(rel);
  return 0;
}

/* Try until the try-call stops answering `busy`, sleeping as a coroutine in between: for glibc
 * objects that have a try-variant. Returns the try-call's final answer, or ETIMEDOUT. */
static int backoff(int busy, int (*try_fn)(void *), void *obj, uint64_t deadline) {
  int r;
  uint64_t pause = BACKOFF_FIRST_NS;
  while ((r = try_fn(obj)) == busy) {
    if (deadline != CH_NO_DEADLINE && ch_now_ns() >= deadline) return ETIMEDOUT;
    ch_io_sleep_until(ch_deadline_after((int64_t)pause));
    if (pause < BACKOFF_MAX_NS) pause *= 2;
  }
  return r;
}

/* ---- mutex ---------------------------------------------------------------------------------------- */

static struct ch_mutex *ours_m(pthread_mutex_t *m) {
  struct ch_mutex *c = (struct ch_mutex *)(void *)m;
  return (c->kind & GLIBC_MUTEX_NOT_OURS) ? NULL : c;
}

/* glibc's robust mutexes rely on the kernel walking a dying thread's robust list; a coroutine-thread
 * dies without its worker dying. So we remember the robust mutexes a coroutine-thread holds and, when
 * it ends, do what the kernel would: mark each FUTEX_OWNER_DIED, release it and wake a waiter. */
static void note_robust(pthread_mutex_t *m, int r) {
  ch_coro *co = ch_thread_self();
  if (!co || (r != 0 && r != EOWNERDEAD) || !(m->__data.__kind & GLIBC_MUTEX_ROBUST)) return;
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

void ch_robust_owner_died(ch_coro *co) {
  for (unsigned i = 0; i < co->nrobust; i++) {
    pthread_mutex_t *m = co->robust[i];
    /* glibc's own unlock takes the mutex off this worker's robust list (we are on the OS thread that
     * locked it): leaving it linked would let glibc write through a stale link once the mutex's
     * memory is reused. Then mark it as the kernel marks a dead owner's: the next locker gets
     * EOWNERDEAD. Someone taking it in between simply gets it, as if the owner had unlocked. */
    if (ch_plat()->mutex_unlock(m) != 0) continue;
    _Atomic unsigned *lock = (_Atomic unsigned *)(void *)&m->__data.__lock;
    unsigned zero = 0;
    atomic_compare_exchange_strong(lock, &zero, FUTEX_OWNER_DIED_BIT);
  }
  co->nrobust = 0;
}

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

/* In a fork() child: the holders recorded were coroutines of the parent; only the forking one lives
 * on, and the table's lock may have been held by a thread that is gone. */
void ch_gsync_after_fork(void) {
  uint32_t me = ch_self_id();
  atomic_store(&holds_lock.state, 0);
  for (int i = 0; i < HOLDS; i++)
    if (holds[i].who != me) holds[i].m = NULL;
}

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

/* After glibc granted a lock (0 or EOWNERDEAD): record who holds it. */
static int glibc_locked(pthread_mutex_t *m, int r) {
  if (r == 0 || r == EOWNERDEAD) ch_pin(1); /* glibc recorded our tid: we stay on this OS thread */
  if ((r == 0 || r == EOWNERDEAD) && owner_kind(m)) set_holder(m, ch_self_id());
  note_robust(m, r);
  return r;
}

static int glibc_trylock(void *p) {
  pthread_mutex_t *m = p;
  return held_by_other(m) ? EBUSY : ch_plat()->mutex_trylock(m);
}

int ch_pmutex_lock(pthread_mutex_t *m) {
  struct ch_mutex *c = ours_m(m);
  if (c) return -ch_mutex_lock(c, CH_NO_DEADLINE, false);
  int r = ch_on_worker() ? backoff(EBUSY, glibc_trylock, m, CH_NO_DEADLINE) : ch_plat()->mutex_lock(m);
  return glibc_locked(m, r);
}

int ch_pmutex_trylock(pthread_mutex_t *m) {
  struct ch_mutex *c = ours_m(m);
  if (c) return -ch_mutex_lock(c, 0, true);
  return glibc_locked(m, glibc_trylock(m));
}

int ch_pmutex_clocklock(pthread_mutex_t *m, clockid_t clk, const struct timespec *abs) {
  if (!clock_ok(clk)) return EINVAL; /* glibc checks the clock before anything else */
  struct ch_mutex *c = ours_m(m);
  if (!c) return glibc_locked(m, ch_plat()->mutex_clocklock(m, clk, abs));
  int r = ch_mutex_lock(c, 0, true); /* POSIX: no timeout check if it can lock at once */
  if (r != -EBUSY) return -r;
  uint64_t deadline;
  if (abs_deadline(clk, abs, &deadline) < 0 || !abs) return EINVAL;
  return -ch_mutex_lock(c, deadline, false);
}

int ch_pmutex_timedlock(pthread_mutex_t *m, const struct timespec *abs) {
  if (!ours_m(m)) return glibc_locked(m, ch_plat()->mutex_timedlock(m, abs));
  return ch_pmutex_clocklock(m, CLOCK_REALTIME, abs);
}

/* glibc refuses to destroy a locked mutex with EBUSY (it counts users we do not): so do we. */
int ch_pmutex_busy(pthread_mutex_t *m) {
  struct ch_mutex *c = ours_m(m);
  return c && atomic_load(&c->lock) ? EBUSY : 0;
}

int ch_pmutex_unlock(pthread_mutex_t *m) {
  struct ch_mutex *c = ours_m(m);
  if (c) return -ch_mutex_unlock(c);
  if (held_by_other(m)) return EPERM;
  int r = ch_plat()->mutex_unlock(m);
  if (r == 0) {
    ch_pin(-1);
    forget_robust(m);
    /* still held (a recursive count left)? glibc's owner field says so */
    if (owner_kind(m) && m->__data.__owner == 0) set_holder(m, 0);
  }
  return r;
}

/* ---- condition variable --------------------------------------------------------------------------- */

static unsigned cond_flags(pthread_cond_t *c) { return c->__data.__wrefs & 3u; }

static int our_cond_wait(pthread_cond_t *cv, pthread_mutex_t *m, uint64_t deadline) {
  struct ch_cond *c = (struct ch_cond *)(void *)cv;
  uint32_t seq = ch_cond_enter(c);
  int r = ch_pmutex_unlock(m);
  if (r) {
    ch_cond_block(c, seq + 1, 0); /* only to undo the waiter count: returns at once */
    return r;
  }
  int w = ch_cond_block(c, seq, deadline);
  ch_pmutex_lock(m);
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
 * can be missed: it therefore waits in slices of at most COND_SLICE_NS. An untimed wait returns
 * after a slice as a spurious wake-up (POSIX allows it; callers re-check); a timed one goes on to
 * its own deadline and answers ETIMEDOUT there, as glibc would. */
struct cond_job {
  pthread_cond_t *cv;
  pthread_mutex_t *m; /* the glibc mutex, or NULL: wait with a private one */
  clockid_t clk;
  const struct timespec *abs;
  int ret;
};

static int glibc_wait(pthread_cond_t *cv, pthread_mutex_t *gm, clockid_t clk, const struct timespec *abs) {
  const struct ch_platform *p = ch_plat();
  if (gm) return abs ? p->cond_clockwait(cv, gm, clk, abs) : p->cond_wait(cv, gm);
  pthread_mutex_t tmp = PTHREAD_MUTEX_INITIALIZER;
  p->mutex_lock(&tmp);
  int w = p->cond_clockwait(cv, &tmp, clk, abs);
  p->mutex_unlock(&tmp);
  return w;
}

static void cond_job_run(void *arg) {
  struct cond_job *j = arg;
  j->ret = glibc_wait(j->cv, j->m, j->clk, j->abs);
}

static int shared_cond_wait(pthread_cond_t *cv, pthread_mutex_t *m, clockid_t clk, const struct timespec *abs) {
  bool ours = ours_m(m) != NULL, worker = ch_on_worker();
  if (!ours) {
    if (!worker) return glibc_wait(cv, m, clk, abs);
    struct cond_job j = {cv, m, clk, abs, 0};
    ch_offload(cond_job_run, &j);
    return j.ret;
  }
  for (;;) {
    struct timespec now, slice;
    ch_plat()->clock_gettime(clk, &now);
    slice = now;
    slice.tv_nsec += COND_SLICE_NS;
    if (slice.tv_nsec >= 1000000000) slice.tv_sec++, slice.tv_nsec -= 1000000000;
    bool last = abs && (abs->tv_sec < slice.tv_sec || (abs->tv_sec == slice.tv_sec && abs->tv_nsec <= slice.tv_nsec));
    if (last) slice = *abs;
    int r = ch_pmutex_unlock(m);
    if (r) return r;
    int w;
    if (worker) {
      struct cond_job j = {cv, NULL, clk, &slice, 0};
      ch_offload(cond_job_run, &j);
      w = j.ret;
    } else {
      w = glibc_wait(cv, NULL, clk, &slice);
    }
    ch_pmutex_lock(m);
    if (w != ETIMEDOUT) return w;
    if (last) return ETIMEDOUT;
    if (!abs) return 0;
  }
}

int ch_pcond_wait(pthread_cond_t *cv, pthread_mutex_t *m) {
  if (cond_flags(cv) & GLIBC_COND_SHARED) return shared_cond_wait(cv, m, CLOCK_REALTIME, NULL);
  return our_cond_wait(cv, m, CH_NO_DEADLINE);
}

int ch_pcond_clockwait(pthread_cond_t *cv, pthread_mutex_t *m, clockid_t clk, const struct timespec *abs) {
  if (!clock_ok(clk) || !ts_ok(abs)) return EINVAL;
  if (cond_flags(cv) & GLIBC_COND_SHARED) return shared_cond_wait(cv, m, clk, abs);
  uint64_t deadline;
  abs_deadline(clk, abs, &deadline);
  return our_cond_wait(cv, m, deadline);
}

/* The clock is the one the condattr chose (pthread_condattr_setclock), CLOCK_REALTIME by default. */
int ch_pcond_timedwait(pthread_cond_t *cv, pthread_mutex_t *m, const struct timespec *abs) {
  clockid_t clk = (cond_flags(cv) & GLIBC_COND_MONOTONIC) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
  return ch_pcond_clockwait(cv, m, clk, abs);
}

int ch_pcond_signal(pthread_cond_t *cv, bool all) {
  if (cond_flags(cv) & GLIBC_COND_SHARED) return all ? ch_plat()->cond_broadcast(cv) : ch_plat()->cond_signal(cv);
  ch_cond_signal((struct ch_cond *)(void *)cv, all);
  return 0;
}

/* ---- glibc barriers and semaphores ------------------------------------------------------------------ */

struct barrier_job {
  pthread_barrier_t *b;
  int ret;
};

static void barrier_job_run(void *arg) {
  struct barrier_job *j = arg;
  j->ret = ch_plat()->barrier_wait(j->b);
}

int ch_pbarrier_wait_glibc(pthread_barrier_t *b) {
  if (!ch_on_worker()) return ch_plat()->barrier_wait(b);
  /* A glibc barrier has no try-variant: wait for it on a helper thread while this coroutine parks. */
  struct barrier_job j = {b, 0};
  ch_offload(barrier_job_run, &j);
  return j.ret;
}

static int sem_try(void *p) { return ch_plat()->sem_trywait(p) == 0 ? 0 : errno; }

/* A glibc (process-shared or named) semaphore: 0 or -errno. */
long ch_psem_wait_glibc(sem_t *s) {
  if (!ch_on_worker()) return ch_plat()->sem_wait(s) == 0 ? 0 : -errno;
  return -backoff(EAGAIN, sem_try, s, CH_NO_DEADLINE);
}

/* ---- stdio stream locks ------------------------------------------------------------------------------ */

static _Atomic int stream_waiters; /* coroutines in ch_flockfile's wait: funlockfile wakes only then */

/* The stream's lock word (glibc's _IO_lock_t starts with it): what a waiter parks on. */
static const _Atomic uint32_t *stream_word(FILE *f) { return (const _Atomic uint32_t *)(void *)f->_lock; }

void ch_flockfile(FILE *f) {
  if (!ch_on_worker() || !f->_lock) {
    ch_plat()->flockfile(f);
    return;
  }
  /* Park until the owner's funlockfile wakes us, or a pause passes: the holder may also be inside a
   * stdio call of its own, which releases the lock within libc, where no hook sees it. */
  uint64_t pause = BACKOFF_FIRST_NS;
  while (ftrylockfile(f) != 0) {
    uint32_t w = atomic_load_explicit(stream_word(f), memory_order_acquire);
    atomic_fetch_add(&stream_waiters, 1);
    if (w) ch_pl_wait(stream_word(f), w, ch_deadline_after((int64_t)pause), CH_INTR_NONE, CH_WAIT_FILE);
    atomic_fetch_sub(&stream_waiters, 1);
    if (pause < BACKOFF_MAX_NS) pause *= 2;
  }
}

void ch_funlockfile(FILE *f) {
  ch_plat()->funlockfile(f);
  if (CH_UNLIKELY(atomic_load_explicit(&stream_waiters, memory_order_seq_cst)) && f->_lock)
    ch_pl_wake(stream_word(f), INT_MAX);
}

/* ---- spin locks --------------------------------------------------------------------------------------- */

#define SPIN_BEFORE_YIELD 64

int ch_spin_lock(pthread_spinlock_t *l) {
  bool worker = ch_on_worker();
  int r;
  for (unsigned i = 0; (r = pthread_spin_trylock(l)) == EBUSY; i++) {
    if (!worker || i < SPIN_BEFORE_YIELD) ch_cpu_relax();
    else ch_yield();
  }
  return r;
}
