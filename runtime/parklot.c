/*
 * parklot.c — a parking lot: futex semantics for coroutines (after WebKit's ParkingLot).
 *
 * Sync objects keep their whole state in the program's own storage (a pthread_mutex_t is 40 bytes,
 * plenty for a lock word, owner and count); only their waiters need somewhere to queue. Waiters hash
 * by the address they wait on into a fixed table of buckets, so no per-object allocation and no side
 * table on the fast path: an uncontended lock or unlock never comes here.
 *
 * ch_pl_wait32(addr, expected) parks only if *addr still holds `expected` under the bucket lock, and
 * wakers change *addr before they take the bucket lock: a wake-up cannot slip between the check and
 * the park (the futex argument). Wakes are issued under the bucket lock, so a waiter that is timing
 * out at the same moment is either still queued (and removes itself) or already claimed.
 */
#include <stdlib.h>

#include "internal.h"

#define CH_PL_BUCKETS 1024

struct ch_pl_waiter {
  const void *addr;
  ch_coro *co;
  struct ch_pl_waiter *next, *prev;
  bool queued;
};

struct ch_pl_bucket {
  ch_lock_t lock;
  struct ch_pl_waiter *head, *tail;
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

int ch_pl_wait32(const _Atomic uint32_t *addr, uint32_t expected, uint64_t deadline, int intr) {
  struct ch_sched *s = ch_sched_get();
  if (!s) return -EAGAIN;
  struct ch_pl_bucket *b = bucket_of(addr);
  struct ch_pl_waiter w = {.addr = addr, .co = s->current};
  ch_lock(&b->lock);
  if (atomic_load_explicit(addr, memory_order_acquire) != expected) {
    ch_unlock(&b->lock);
    return -EAGAIN;
  }
  w.prev = b->tail;
  if (b->tail) b->tail->next = &w;
  else b->head = &w;
  b->tail = &w;
  w.queued = true;
  ch_park_prepare(w.co); /* before the unlock: a waker that dequeues us next finds us PARKED */
  ch_unlock(&b->lock);
  w.co->intr = intr;
  int why = ch_park(s, deadline);
  w.co->intr = 0;
  if (why == CH_WAKE_OK) return 0;
  ch_lock(&b->lock);
  if (w.queued) unlink_waiter(b, &w); /* nobody claimed us: leave quietly */
  ch_unlock(&b->lock);
  return why == CH_WAKE_TIMEOUT ? -ETIMEDOUT : -EINTR;
}

int ch_pl_wake(const void *addr, int n) {
  struct ch_pl_bucket *b = bucket_of(addr);
  int woken = 0;
  ch_lock(&b->lock);
  for (struct ch_pl_waiter *w = b->head, *next; w && woken < n; w = next) {
    next = w->next;
    if (w->addr != addr) continue;
    unlink_waiter(b, w);
    /* A waiter whose timer already claimed it will not take this wake: try the next one. */
    if (ch_wake(w->co, CH_WAKE_OK)) woken++;
  }
  ch_unlock(&b->lock);
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
