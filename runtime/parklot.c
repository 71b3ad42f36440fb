/*
 * parklot.c — a parking lot: futex semantics for coroutines (after WebKit's ParkingLot).
 *
 * Sync objects keep their whole state in the program's own storage (a pthread_mutex_t is 40 bytes,
 * plenty for a lock word, owner and count); only their waiters need somewhere to queue. Waiters hash
 * by the address they wait on into a fixed table of buckets, so no per-object allocation and no side
 * table on the fast path: an uncontended lock or unlock never comes here.
 *
 * ch_pl_wait(addr, expected) parks only if *addr still holds `expected` under the bucket lock, and
 * wakers change *addr before they take the bucket lock: a wake-up cannot slip between the check and
 * the park (the futex argument). Wakes are issued under the bucket lock, so a waiter that is timing
 * out at the same moment is either still queued (and removes itself) or already claimed.
 *
 * Where no scheduler can serve a wait (none can be made, or the runtime is re-entered from inside
 * itself: an allocator taking a mutex while we make this thread's scheduler), the waiter blocks
 * natively: a futex wait on the same word, counted in its bucket's os_waiters so that ch_pl_wake
 * also issues a futex wake. The words are the objects' own lock/sequence words, which is exactly
 * what glibc would have waited on.
 *
 * Invariants (asserted in debug builds): w.queued is true exactly while w is linked in its bucket; a
 * waiter's entry lives on its own stack and is unlinked before ch_pl_wait returns — by a waker that
 * claims it (then it returns 0), or by itself after a timeout or interruption (it may be running,
 * on its way to take the bucket lock, while a waker walks past it: ch_wake then refuses it).
 */
#include <linux/futex.h>
#include <limits.h>
#include <stdlib.h>

#include "internal.h"
#include "sys.h"

#define CH_PL_BUCKETS 1024

struct ch_pl_waiter {
  const void *addr;
  ch_coro *co;
  struct ch_pl_waiter *next, *prev;
  bool queued;
};

struct ch_pl_bucket {
  ch_lock_t lock;
  struct ch_pl_waiter *head, *tail; /* [lock] */
  _Atomic int os_waiters;           /* threads in a native futex wait on a word of this bucket */
} __attribute__((aligned(64)));

static struct ch_pl_bucket buckets[CH_PL_BUCKETS];

static struct ch_pl_bucket *bucket_of(const void *addr) {
  uint64_t h = (uint64_t)(uintptr_t)addr * 0x9e3779b97f4a7c15ull;
  return &buckets[h >> (64 - 10)];
}

static void unlink_waiter(struct ch_pl_bucket *b, struct ch_pl_waiter *w) {
  if (w->prev) w->prev->next = w->next;
  else b->head = w->next;
  if (w->next) w->next->prev = w->prev;
  else b->tail = w->prev;
  w->queued = false;
}

/* The native wait: what the OS thread would do without us. Signals interrupt it (-EINTR) only where
 * intr says the call may be interrupted; otherwise it is a spurious wake-up (callers re-check). */
static int native_wait(struct ch_pl_bucket *b, const _Atomic uint32_t *addr, uint32_t expected,
                       uint64_t deadline, int intr) {
  atomic_fetch_add_explicit(&b->os_waiters, 1, memory_order_seq_cst);
  long r;
  if (deadline == CH_NO_DEADLINE) {
    r = ch_sys4(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, NULL);
  } else {
    uint64_t now = ch_now_ns(), left = deadline > now ? deadline - now : 0;
    struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u), .tv_nsec = (long)(left % 1000000000u)};
    r = left ? ch_sys4(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, &ts) : -ETIMEDOUT;
  }
  atomic_fetch_sub_explicit(&b->os_waiters, 1, memory_order_relaxed);
  if (r == -EAGAIN) return CH_E_CHANGED;
  if (r == -ETIMEDOUT) return -ETIMEDOUT;
  if (r == -EINTR && intr != CH_INTR_NONE) return -EINTR;
  return 0;
}

int ch_pl_wait(const _Atomic uint32_t *addr, uint32_t expected, uint64_t deadline, int intr, enum ch_wait kind) {
  struct ch_pl_bucket *b = bucket_of(addr);
  /* A native wait is never inside a runtime section: its OS thread blocks, and its scheduler must
   * stay free to move to another (handoff.c) — the holder it waits for may be queued there (an
   * allocator's lock, taken with ch_tls_bypass raised, held by a coroutine that lost its OS thread). */
  if (ch_tls_bypass) return native_wait(b, addr, expected, deadline, intr);
  CH_RT_SECTION();
  struct ch_sched *s = ch_sched_get();
  if (!s || ch_tls_bypass) return native_wait(b, addr, expected, deadline, intr);
  struct ch_pl_waiter w = {.addr = addr, .co = s->current};
  ch_lock(&b->lock);
  if (atomic_load_explicit(addr, memory_order_acquire) != expected) {
    ch_unlock(&b->lock);
    return CH_E_CHANGED;
  }
  w.prev = b->tail;
  if (b->tail) b->tail->next = &w;
  else b->head = &w;
  b->tail = &w;
  w.queued = true;
  w.co->wait_kind = kind;
  w.co->wait_obj = (uintptr_t)addr;
  CH_STAT_WAIT(s, CH_FAM_SYNC);
  /* The registration is the bucket's, global: woken, this coroutine may run on any scheduler (work
   * stealing). Set before the unlock: the waker that queues us counts it (runq_movable). */
  w.co->movable = deadline == CH_NO_DEADLINE && ch_may_move(w.co);
  ch_park_prepare(w.co); /* before the unlock: a waker that dequeues us next finds us PARKED */
  ch_unlock(&b->lock);
  w.co->intr = intr;
  int why = ch_park(s, deadline);
  w.co->intr = 0;
  if (why == CH_WAKE_OK) {
    CH_ASSERT(!w.queued); /* the waker unlinked us before claiming the wake-up */
    return 0;
  }
  ch_lock(&b->lock);
  if (w.queued) unlink_waiter(b, &w); /* nobody claimed us: leave quietly */
  ch_unlock(&b->lock);
  return why == CH_WAKE_TIMEOUT ? -ETIMEDOUT : -EINTR;
}

int ch_pl_wake(const void *addr, int n) {
  CH_RT_SECTION(); /* entered before the bucket lock: a section entered under it could lose the OS
                    thread (handoff.c) and strand the lock with a coroutine that cannot run */
  struct ch_pl_bucket *b = bucket_of(addr);
  int woken = 0;
  ch_lock(&b->lock);
  for (struct ch_pl_waiter *w = b->head, *next; w && woken < n; w = next) {
    next = w->next;
    if (w->addr != addr) continue;
    CH_ASSERT(w->queued);
    unlink_waiter(b, w);
    /* A waiter whose timer already claimed it will not take this wake: try the next one. */
    if (ch_wake(w->co, CH_WAKE_OK)) woken++;
  }
  ch_unlock(&b->lock);
  /* Threads waiting natively on this bucket (rare): wake them all on addr; each re-checks its word
   * (they may be waiting on another address of the same bucket: FUTEX_WAKE is per address). The
   * waker changed *addr before calling us, and a native waiter registers before its futex wait
   * re-checks the word, so none can miss this. */
  atomic_thread_fence(memory_order_seq_cst); /* the waker's change of *addr before this load */
  if (CH_UNLIKELY(atomic_load_explicit(&b->os_waiters, memory_order_relaxed)) && woken < n) {
    long r = ch_sys(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX);
    if (r > 0) woken += (int)r;
  }
  return woken;
}

bool ch_pl_has_waiters(const void *addr) {
  struct ch_pl_bucket *b = bucket_of(addr);
  bool any = false;
  ch_lock(&b->lock);
  for (struct ch_pl_waiter *w = b->head; w && !any; w = w->next) any = w->addr == addr;
  ch_unlock(&b->lock);
  return any;
}

/* In a fork() child: every waiter queued here belonged to a coroutine of the parent that does not
 * exist in the child (the forking one is running, so it is queued nowhere). Left in place, a wake-up
 * would be spent on a ghost and the child's own waiter never woken; a bucket lock held by another
 * parent thread at fork() would never be released. */
void ch_pl_after_fork(void) {
  for (size_t i = 0; i < CH_PL_BUCKETS; i++) {
    atomic_store(&buckets[i].lock.state, 0);
    buckets[i].head = buckets[i].tail = NULL;
    atomic_store(&buckets[i].os_waiters, 0);
  }
}
