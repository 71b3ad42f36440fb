/*
 * timer.c — per-scheduler deadlines: a binary min-heap of struct ch_timer.
 *
 * Why not one ev_timer per sleeper: libev's epoll backend rounds every wait up to whole milliseconds
 * and does not tell us its earliest timer, and a scheduler needs both the earliest deadline (to choose
 * how to block, see loop.c) and nanosecond precision (usleep(100) must not become a 1 ms sleep). Each
 * timer lives inside the parked coroutine's own frame and records its heap index, so removal when a
 * wait ends early is O(log n) and no allocation happens per wait.
 *
 * Invariants (asserted in debug builds): heap[t->idx] == t for every armed timer, t->idx == SIZE_MAX
 * for every disarmed one; a parent's deadline is never later than its children's; only the
 * scheduler's own thread touches its heap.
 */
#include <stdlib.h>

#include "internal.h"

static void place(struct ch_sched *s, size_t i, struct ch_timer *t) {
  s->heap[i] = t;
  t->idx = i;
  /* The earliest deadline, for the monitor (handoff.c: is a timer due while the scheduler is stuck?);
   * it cannot read the heap, whose entries live on coroutine stacks. */
  if (i == 0) atomic_store_explicit(&s->due, t->deadline, memory_order_relaxed);
}

static void sift_up(struct ch_sched *s, size_t i) {
  struct ch_timer *t = s->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (s->heap[parent]->deadline <= t->deadline) break;
    place(s, i, s->heap[parent]);
    i = parent;
  }
  place(s, i, t);
}

static void sift_down(struct ch_sched *s, size_t i) {
  struct ch_timer *t = s->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= s->heap_len) break;
    if (c + 1 < s->heap_len && s->heap[c + 1]->deadline < s->heap[c]->deadline) c++;
    if (t->deadline <= s->heap[c]->deadline) break;
    place(s, i, s->heap[c]);
    i = c;
  }
  place(s, i, t);
}

void ch_timer_add(struct ch_sched *s, struct ch_timer *t) {
  CH_ASSERT(s == ch_tls_sched && t->idx == SIZE_MAX && ch_rt_owned(s));
  if (s->heap_len == s->heap_cap) {
    size_t ncap = s->heap_cap ? s->heap_cap * 2 : 64;
    struct ch_timer **nh = ch_realloc(s->heap, ncap * sizeof *nh);
    if (!nh) ch_die("cohook: out of memory growing the timer heap");
    s->heap = nh;
    s->heap_cap = ncap;
  }
  place(s, s->heap_len++, t);
  if (s->heap_len > s->st.timers_peak) s->st.timers_peak = s->heap_len;
  sift_up(s, t->idx);
  CH_ASSERT(t->idx == 0 || s->heap[(t->idx - 1) / 2]->deadline <= t->deadline);
}

void ch_timer_del(struct ch_sched *s, struct ch_timer *t) {
  size_t i = t->idx;
  if (i == SIZE_MAX) return;
  CH_ASSERT(s == ch_tls_sched && i < s->heap_len && s->heap[i] == t);
  t->idx = SIZE_MAX;
  struct ch_timer *last = s->heap[--s->heap_len];
  if (!s->heap_len) atomic_store_explicit(&s->due, CH_NO_DEADLINE, memory_order_relaxed);
  if (i == s->heap_len) return;
  place(s, i, last);
  /* The moved element may belong either above or below its new position. */
  if (i > 0 && s->heap[(i - 1) / 2]->deadline > last->deadline) sift_up(s, i);
  else sift_down(s, i);
}

uint64_t ch_timer_next(const struct ch_sched *s) {
  return s->heap_len ? s->heap[0]->deadline : CH_NO_DEADLINE;
}

void ch_timer_fire_expired(struct ch_sched *s, uint64_t now) {
  while (s->heap_len && s->heap[0]->deadline <= now) {
    struct ch_timer *t = s->heap[0];
    ch_timer_del(s, t);
    ch_wake(t->co, CH_WAKE_TIMEOUT);
  }
}
