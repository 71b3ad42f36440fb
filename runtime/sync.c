/*
 * sync.c — mutexes, condition variables, rwlocks, barriers, semaphores and once-controls whose
 * waiters are coroutines. All state sits in the object itself (see the structs in internal.h; the
 * hook layer maps the program's pthread objects onto them); waiters queue in the parking lot. The
 * uncontended paths are a single atomic operation and never touch the parking lot.
 */
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>

#include "internal.h"

#define MUTEX_SPINS 64

/* ---- mutex: lock word 0 free, 1 locked, 2 locked and maybe waited for (Drepper's mutex #2) ------ */

int ch_mutex_lock(struct ch_mutex *m, uint64_t deadline, bool try) {
  int type = m->kind & 3;
  uint32_t me = ch_self_id();
  if ((type == PTHREAD_MUTEX_RECURSIVE || type == PTHREAD_MUTEX_ERRORCHECK) &&
      atomic_load_explicit(&m->owner, memory_order_relaxed) == me) {
    if (type == PTHREAD_MUTEX_ERRORCHECK) return try ? -EBUSY : -EDEADLK; /* as glibc */
    if (m->count == UINT_MAX) return -EAGAIN;
    m->count++;
    return 0;
  }
  uint32_t c = 0;
  if (CH_LIKELY(atomic_compare_exchange_strong_explicit(&m->lock, &c, 1, memory_order_acquire,
                                                        memory_order_relaxed)))
    goto got;
  if (try) return -EBUSY;
  /* The owner may be running on another worker and about to unlock: a short spin is cheaper than
   * a park and a cross-thread wake-up. */
  for (int i = 0; i < MUTEX_SPINS; i++) {
    ch_cpu_relax();
    c = 0;
    if (atomic_load_explicit(&m->lock, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&m->lock, &c, 1, memory_order_acquire, memory_order_relaxed))
      goto got;
  }
  while (atomic_exchange_explicit(&m->lock, 2, memory_order_acquire) != 0) {
    int r = ch_pl_wait(&m->lock, 2, deadline, CH_INTR_NONE, CH_WAIT_MUTEX);
    if (r == -ETIMEDOUT) {
      c = 0;
      if (atomic_compare_exchange_strong_explicit(&m->lock, &c, 2, memory_order_acquire, memory_order_relaxed))
        goto got;
      return -ETIMEDOUT;
    }
  }
got:
  atomic_store_explicit(&m->owner, me, memory_order_relaxed);
  m->count = 1;
  return 0;
}

int ch_mutex_unlock(struct ch_mutex *m) {
  int type = m->kind & 3;
  if (type == PTHREAD_MUTEX_RECURSIVE || type == PTHREAD_MUTEX_ERRORCHECK) {
    if (atomic_load_explicit(&m->owner, memory_order_relaxed) != ch_self_id() ||
        atomic_load_explicit(&m->lock, memory_order_relaxed) == 0)
      return -EPERM;
    if (type == PTHREAD_MUTEX_RECURSIVE && --m->count) return 0;
  }
  atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
  m->count = 0;
  if (atomic_exchange_explicit(&m->lock, 0, memory_order_release) == 2) ch_pl_wake(&m->lock, 1);
  return 0;
}

/* ---- condition variable: a sequence number to wait on (futex-style) ------------------------------ */

uint32_t ch_cond_enter(struct ch_cond *c) {
  atomic_fetch_add_explicit(&c->nwaiters, 1, memory_order_relaxed);
  return atomic_load_explicit(&c->seq, memory_order_acquire);
}

/* After the caller released the mutex. 0 (signalled, or spuriously: POSIX allows it) or -ETIMEDOUT. */
int ch_cond_block(struct ch_cond *c, uint32_t seq, uint64_t deadline) {
  struct ch_sched *s = ch_sched_peek();
  ch_coro *self = s ? ch_self() : NULL;
  if (self) self->cancel_wait = true; /* a cancellation point: the request ends it (a spurious wake-up) */
  int r = ch_pl_wait(&c->seq, seq, deadline, CH_INTR_NONE, CH_WAIT_COND);
  if (self) self->cancel_wait = false;
  atomic_fetch_sub_explicit(&c->nwaiters, 1, memory_order_relaxed);
  return r == -ETIMEDOUT ? -ETIMEDOUT : 0;
}

void ch_cond_signal(struct ch_cond *c, bool all) {
  atomic_fetch_add_explicit(&c->seq, 1, memory_order_release);
  if (atomic_load_explicit(&c->nwaiters, memory_order_relaxed)) ch_pl_wake(&c->seq, all ? INT_MAX : 1);
}

/* ---- rwlock: reader count, writer bit, waiters bit; readers preferred, as glibc's default ------- */

#define RW_WRITER 0x40000000u
#define RW_WAITERS 0x80000000u
#define RW_READERS 0x3fffffffu

int ch_rwlock_rdlock(struct ch_rwlock *rw, uint64_t deadline, bool try, bool prefer_writer) {
  if (atomic_load_explicit(&rw->writer, memory_order_relaxed) == ch_self_id()) return try ? -EBUSY : -EDEADLK;
  for (;;) {
    uint32_t s = atomic_load_explicit(&rw->state, memory_order_relaxed);
    /* PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP: a waiting writer holds new readers back. */
    bool writer_first = prefer_writer && atomic_load_explicit(&rw->writers_waiting, memory_order_relaxed);
    if (!(s & RW_WRITER) && !writer_first) {
      if ((s & RW_READERS) == RW_READERS) return -EAGAIN;
      if (atomic_compare_exchange_weak_explicit(&rw->state, &s, s + 1, memory_order_acquire, memory_order_relaxed))
        return 0;
      continue;
    }
    if (try) return -EBUSY;
    if (!(s & RW_WAITERS) && !atomic_compare_exchange_weak_explicit(&rw->state, &s, s | RW_WAITERS,
                                                                     memory_order_relaxed, memory_order_relaxed))
      continue;
    if (ch_pl_wait(&rw->state, s | RW_WAITERS, deadline, CH_INTR_NONE, CH_WAIT_RWLOCK) == -ETIMEDOUT)
      return -ETIMEDOUT;
  }
}

int ch_rwlock_wrlock(struct ch_rwlock *rw, uint64_t deadline, bool try) {
  uint32_t me = ch_self_id();
  if (atomic_load_explicit(&rw->writer, memory_order_relaxed) == me) return try ? -EBUSY : -EDEADLK;
  for (;;) {
    uint32_t s = atomic_load_explicit(&rw->state, memory_order_relaxed);
    if (!(s & (RW_WRITER | RW_READERS))) {
      if (atomic_compare_exchange_weak_explicit(&rw->state, &s, s | RW_WRITER, memory_order_acquire,
                                                memory_order_relaxed)) {
        atomic_store_explicit(&rw->writer, me, memory_order_relaxed);
        return 0;
      }
      continue;
    }
    if (try) return -EBUSY;
    if (!(s & RW_WAITERS) && !atomic_compare_exchange_weak_explicit(&rw->state, &s, s | RW_WAITERS,
                                                                     memory_order_relaxed, memory_order_relaxed))
      continue;
    atomic_fetch_add_explicit(&rw->writers_waiting, 1, memory_order_relaxed);
    int r = ch_pl_wait(&rw->state, s | RW_WAITERS, deadline, CH_INTR_NONE, CH_WAIT_RWLOCK);
    if (atomic_fetch_sub_explicit(&rw->writers_waiting, 1, memory_order_relaxed) == 1)
      ch_pl_wake(&rw->state, INT_MAX); /* readers held back for us may go now */
    if (r == -ETIMEDOUT) return -ETIMEDOUT;
  }
}

int ch_rwlock_unlock(struct ch_rwlock *rw) {
  uint32_t s = atomic_load_explicit(&rw->state, memory_order_relaxed);
  if (s & RW_WRITER) {
    if (atomic_load_explicit(&rw->writer, memory_order_relaxed) != ch_self_id()) return -EPERM;
    atomic_store_explicit(&rw->writer, 0, memory_order_relaxed);
    s = atomic_exchange_explicit(&rw->state, 0, memory_order_release);
    if (s & RW_WAITERS) ch_pl_wake(&rw->state, INT_MAX);
    return 0;
  }
  for (;;) {
    if (!(s & RW_READERS)) return -EPERM;
    uint32_t n = s - 1;
    if (!(n & RW_READERS)) n &= ~RW_WAITERS; /* the last reader out wakes everyone waiting */
    if (atomic_compare_exchange_weak_explicit(&rw->state, &s, n, memory_order_release, memory_order_relaxed)) {
      if ((s & RW_WAITERS) && !(n & RW_WAITERS)) ch_pl_wake(&rw->state, INT_MAX);
      return 0;
    }
  }
}

/* ---- barrier ------------------------------------------------------------------------------------ */

int ch_barrier_wait(struct ch_barrier *b) {
  uint32_t gen = atomic_load_explicit(&b->gen, memory_order_acquire);
  if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) + 1 == b->count) {
    atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->gen, 1, memory_order_release);
    ch_pl_wake(&b->gen, INT_MAX);
    return PTHREAD_BARRIER_SERIAL_THREAD;
  }
  while (atomic_load_explicit(&b->gen, memory_order_acquire) == gen)
    ch_pl_wait(&b->gen, gen, CH_NO_DEADLINE, CH_INTR_NONE, CH_WAIT_BARRIER);
  return 0;
}

/* ---- semaphore ----------------------------------------------------------------------------------- */

int ch_sem_wait(struct ch_sem *sem, uint64_t deadline, bool try) {
  for (;;) {
    uint32_t v = atomic_load_explicit(&sem->value, memory_order_relaxed);
    if (v > 0) {
      if (atomic_compare_exchange_weak_explicit(&sem->value, &v, v - 1, memory_order_acquire, memory_order_relaxed))
        return 0;
      continue;
    }
    if (try) return -EAGAIN;
    atomic_fetch_add_explicit(&sem->nwaiters, 1, memory_order_relaxed);
    /* As Linux: sem_wait is restarted after a handler installed with SA_RESTART (its futex wait is,
     * since 2.6.22) and fails with EINTR after one without; sem_timedwait always fails with EINTR. */
    int intr = deadline == CH_NO_DEADLINE ? CH_INTR_NORESTART : CH_INTR_ALWAYS;
    int r = ch_pl_wait(&sem->value, 0, deadline, intr, CH_WAIT_SEM);
    atomic_fetch_sub_explicit(&sem->nwaiters, 1, memory_order_relaxed);
    if (r == -ETIMEDOUT || r == -EINTR) return r;
  }
}

int ch_sem_post(struct ch_sem *sem) {
  uint32_t v = atomic_load_explicit(&sem->value, memory_order_relaxed);
  do {
    if (v >= SEM_VALUE_MAX) return -EOVERFLOW;
  } while (!atomic_compare_exchange_weak_explicit(&sem->value, &v, v + 1, memory_order_release,
                                                  memory_order_relaxed));
  if (atomic_load_explicit(&sem->nwaiters, memory_order_relaxed)) ch_pl_wake(&sem->value, 1);
  return 0;
}

/* ---- once: 0 never, 1 running, 3 running with waiters, 2 done ------------------------------------- */

int ch_once(_Atomic uint32_t *ctl, void (*fn)(void)) {
  for (;;) {
    uint32_t v = atomic_load_explicit(ctl, memory_order_acquire);
    if (v == 2) return 0;
    if (v == 0) {
      if (!atomic_compare_exchange_strong_explicit(ctl, &v, 1, memory_order_acquire, memory_order_relaxed))
        continue;
      fn(); /* may block (and so yield): the others park below meanwhile */
      if (atomic_exchange_explicit(ctl, 2, memory_order_release) == 3) ch_pl_wake(ctl, INT_MAX);
      return 0;
    }
    if (v == 1 && !atomic_compare_exchange_strong_explicit(ctl, &v, 3, memory_order_relaxed, memory_order_relaxed))
      continue;
    ch_pl_wait(ctl, 3, CH_NO_DEADLINE, CH_INTR_NONE, CH_WAIT_ONCE);
  }
}
