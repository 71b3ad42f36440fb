/*
 * lock.c — a three-state futex mutex (Drepper, "Futexes Are Tricky", mutex #2).
 *
 * The runtime needs a lock for the few structures shared between OS threads (stack pool, inboxes) but
 * must not call pthread_mutex_*: libhook.so intercepts those, and the runtime must sit below the hooks.
 * States: 0 unlocked, 1 locked, 2 locked with (possible) waiters. Uncontended lock/unlock is one atomic
 * each and no syscall.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <linux/futex.h>

#include "internal.h"
#include "sys.h"

static void futex_wait(_Atomic int *addr, int val) {
  ch_sys4(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL);
}

static void futex_wake_one(_Atomic int *addr) {
  ch_sys(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1);
}

/* Every critical section under these locks is a few list operations long, so a holder on another
 * CPU is about to let go: spinning that long costs far less than a futex sleep and wake (two
 * syscalls, and an IPI, each several microseconds on a VM). */
#define CH_LOCK_SPINS 200

#ifdef CH_DEBUG_ASSERT
CH_TLS unsigned ch_tls_locks_held;
#endif

void ch_lock(ch_lock_t *l) {
#ifdef CH_DEBUG_ASSERT
  ch_tls_locks_held++;
#endif
  int c = 0;
  if (atomic_compare_exchange_strong_explicit(&l->state, &c, 1, memory_order_acquire,
                                              memory_order_relaxed))
    return;
  for (int i = 0; i < CH_LOCK_SPINS; i++) {
    ch_cpu_relax();
    c = 0;
    if (atomic_load_explicit(&l->state, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&l->state, &c, 1, memory_order_acquire, memory_order_relaxed))
      return;
  }
  c = atomic_load_explicit(&l->state, memory_order_relaxed);
  /* Contended: mark "waiters possible" and sleep until we take it in state 2. */
  if (c != 2) c = atomic_exchange_explicit(&l->state, 2, memory_order_acquire);
  while (c != 0) {
    futex_wait(&l->state, 2);
    c = atomic_exchange_explicit(&l->state, 2, memory_order_acquire);
  }
}

void ch_unlock(ch_lock_t *l) {
#ifdef CH_DEBUG_ASSERT
  ch_tls_locks_held--;
#endif
  if (atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2) futex_wake_one(&l->state);
}
