/*
 * sched.c — coroutines and the per-thread scheduler.
 *
 * One scheduler per OS thread that uses the runtime, created on first use; the thread's own stack is
 * its main coroutine. There is no separate "hub" coroutine: a coroutine that blocks picks the next
 * ready one itself and switches straight to it (one switch per hand-off instead of two), and when
 * nothing is ready it polls the event loop on its own stack until something is. Coroutines never move
 * between threads — glibc caches TLS addresses (errno's address is a const function), so a coroutine
 * that resumed on another thread would read another thread's errno.
 *
 * Wake-ups are claimed: a parked coroutine can be woken by fd readiness, its timer, or another thread;
 * the first ch_wake() to move it from CH_PARKED wins, and only the winner queues it. Another thread
 * queues through the target scheduler's inbox and pokes its loop (ev_async), because run queues are
 * touched by their own thread only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sanitize.h"
#include "sys.h"
#include "tls.h"

/* When the run queue never drains (coroutines that keep yielding, or a steady stream of ready
 * sockets), I/O and timers are still looked at every CH_POLL_EVERY hand-offs. Rarely, because an
 * epoll_wait's cost grows with the kernel's ready list, not with what it returns: an echo server at
 * 10 000 busy connections did 16k requests/s polling every 64 hand-offs and 77k every 1024 (and
 * 56k -> 139k at 1 000). At ~40 ns a hand-off, I/O still waits at most ~40 us behind busy work. */
#define CH_POLL_EVERY 1024
#define CH_JOIN_DONE ((ch_coro *)(uintptr_t)1)

CH_TLS struct ch_sched *ch_tls_sched;
CH_TLS ch_coro *ch_tls_self;
CH_TLS int ch_tls_bypass;
static _Atomic uint64_t next_id = 1;

/* ---- the registry of live coroutines, for debuggers (tools/gdb/cohook-gdb.py) ------------------- */

/* Every scheduler, newest first: linked when made, unlinked when its thread exits (rare: one lock).
 * Each scheduler lists its coroutines, linked at their first run and unlinked at their end, both on
 * the scheduler's own thread, so with no lock: four plain stores at each end, cache lines the
 * coroutine and its scheduler touch anyway. Measured (bench_switch spawn+join on one thread, medians
 * of 8, while control blocks were still allocated): 87.1 ns without the registry, 87.0 ns with it;
 * with a per-scheduler lock around the list operations, 91.4 ns. Invariant: a coroutine is on the list of co->sched from its first run
 * to its end, and only that scheduler's thread touches the list (a debugger reads it from a stopped
 * process). A coroutine that moves to another scheduler (work stealing, below) is unlinked by the
 * giving scheduler's thread and linked by the taking one's when it first runs there (co->relink): in
 * between it is in the taker's inbox or run queue, on no list. */
static struct ch_sched *all_scheds; /* [all_lock] */
static ch_lock_t all_lock;

static void coros_link(struct ch_sched *s, ch_coro *co) {
  co->coros_prev = NULL;
  co->coros_next = s->coros;
  if (s->coros) s->coros->coros_prev = co;
  s->coros = co;
}

static void coros_unlink(struct ch_sched *s, ch_coro *co) {
  if (co->coros_prev) co->coros_prev->coros_next = co->coros_next;
  else s->coros = co->coros_next;
  if (co->coros_next) co->coros_next->coros_prev = co->coros_prev;
}


/* ---- run queue (this thread only) ---------------------------------------------------------------- */

static inline void runq_push(struct ch_sched *s, ch_coro *co) {
  CH_ASSERT(ch_rt_owned(s));
  co->next = NULL;
  if (s->runq_tail) s->runq_tail->next = co;
  else s->runq_head = co;
  s->runq_tail = co;
  s->runq_in++;
  s->runq_movable += co->movable;
}

static inline ch_coro *runq_pop(struct ch_sched *s) {
  ch_coro *co = s->runq_head;
  if (co) {
    s->runq_head = co->next;
    if (!s->runq_head) s->runq_tail = NULL;
    s->runq_out++;
    s->runq_movable -= co->movable;
  }
  return co;
}

static ch_coro *take_runnext(struct ch_sched *s);

void ch_sched_drain_inbox(struct ch_sched *s) {
  if (CH_UNLIKELY(atomic_load_explicit(&s->runnext, memory_order_relaxed))) {
    ch_coro *co = take_runnext(s); /* to the head of the run queue: it goes first */
    if (co) {
      co->next = s->runq_head;
      s->runq_head = co;
      if (!s->runq_tail) s->runq_tail = co;
    }
  }
  ch_lock(&s->inbox_lock);
  ch_coro *head = s->inbox_head, *tail = s->inbox_tail;
  s->inbox_head = s->inbox_tail = NULL;
  atomic_store_explicit(&s->inbox_nonempty, 0, memory_order_relaxed);
  s->runq_in += s->inbox_len, s->inbox_len = 0;
  s->runq_movable += s->inbox_movable, s->inbox_movable = 0;
  ch_unlock(&s->inbox_lock);
  if (!head) return;
  if (s->runq_tail) s->runq_tail->next = head;
  else s->runq_head = head;
  s->runq_tail = tail;
}

/* Append the list head..tail (n coroutines, `movable` of them movable; tail->next is NULL) to s's
 * inbox and poke its loop. */
static void inbox_push_list(struct ch_sched *s, ch_coro *head, ch_coro *tail, size_t n, size_t movable) {
  ch_lock(&s->inbox_lock);
  if (s->inbox_tail) s->inbox_tail->next = head;
  else s->inbox_head = head;
  s->inbox_tail = tail;
  s->inbox_len += n;
  s->inbox_movable += movable;
  atomic_store_explicit(&s->inbox_nonempty, 1, memory_order_relaxed);
  ch_unlock(&s->inbox_lock);
  ch_loop_notify(s->loop);
}

static void inbox_push(struct ch_sched *s, ch_coro *co) {
  co->next = NULL;
  inbox_push_list(s, co, co, 1, co->movable);
}

/* Inside a runtime section (the caller's), so that "s is this thread's" stays true until the push. */
static void make_ready(ch_coro *co) {
  struct ch_sched *s = co->sched;
  if (s == ch_tls_sched) runq_push(s, co);
  else inbox_push(s, co);
}

/* A coroutine that lost its OS thread (handoff.c) comes back from a system call that held it up:
 * it runs next on its scheduler, ahead of the run queue (Go's runnext slot; the kernel, too, lets a
 * task that wakes from a long sleep run soon). It may hold what others wait for — a group-commit
 * leader back from fdatasync, whose followers sleep until it signals them — and natively it would
 * have gone on at once. One slot: a second such coroutine queues normally. */
void ch_sched_requeue(ch_coro *co) {
  co->movable = false; /* lost in the middle of a section: it resumes into s's state */
  struct ch_sched *s = co->sched;
  ch_coro *none = NULL;
  co->next = NULL;
  if (!atomic_compare_exchange_strong_explicit(&s->runnext, &none, co, memory_order_release, memory_order_relaxed)) {
    inbox_push(s, co);
    return;
  }
  atomic_store_explicit(&s->inbox_nonempty, 1, memory_order_release); /* an idle one drains, the monitor sees work */
  ch_loop_notify(s->loop);
}

/* The runnext slot's coroutine, if any, counted as an arrival. */
static inline ch_coro *take_runnext(struct ch_sched *s) {
  ch_coro *co = atomic_exchange_explicit(&s->runnext, NULL, memory_order_acquire);
  if (co) s->runq_in++;
  return co;
}

/* See the park protocol table in internal.h. */
bool ch_wake(ch_coro *co, int reason) {
  CH_RT_SECTION();
  int cur = atomic_load_explicit(&co->park, memory_order_acquire);
  for (;;) {
    if (cur == CH_PARKED) {
      if (atomic_compare_exchange_weak_explicit(&co->park, &cur, reason, memory_order_acq_rel,
                                                memory_order_acquire)) {
        make_ready(co);
        return true;
      }
    } else if (cur == CH_WAKE_SIGNAL && reason != CH_WAKE_SIGNAL) {
      /* Woken only to run a handler: it is queued or running, and will see this reason instead of
       * going back to sleep. */
      if (atomic_compare_exchange_weak_explicit(&co->park, &cur, reason, memory_order_acq_rel,
                                                memory_order_acquire))
        return true;
    } else {
      return false;
    }
  }
}

/* ---- work stealing -------------------------------------------------------------------------------

 * An idle worker takes runnable coroutine-threads from a busy one (the design's point 3). Run queues
 * stay single-owner ([thread], no lock, no atomics on the hot path), so the idle one does not reach
 * into another's queue: it raises its `hungry` flag before it sleeps, and the first busy worker that
 * comes to pick its next coroutine with movable ones queued claims the flag and pushes half of them
 * into the hungry one's inbox — "work requesting" over private queues (Acar, Charguéraud, Rainey,
 * PPoPP 2013), which keeps stealing off the owner's fast path: one load of a local counter per pick,
 * and a shared one only when the owner has something to give.
 *
 * Only coroutines whose resumption touches nothing of the scheduler they were queued on may move: a
 * coroutine-thread with its own TLS (the scheduler it runs on is read from its TLS after each switch,
 * ch_ident_move rewrites it), no glibc-kept lock (glibc recorded the tid: it must not change), and
 * queued fresh, from a yield, or woken from a parking-lot wait without deadline (mutexes, condvars,
 * futex(2), joins of the program: the waiter's registration is global, not in a scheduler's loop or
 * timer heap). An fd wait or a deadline ties it to its scheduler; such coroutines are never moved.
 * The running coroutine is never moved, even when it is in the queue itself (a yield, or a wake-up
 * that beat its switch). Invariant: s->runq_movable (+ inbox_movable) counts the queued coroutines
 * whose `movable` is set; `movable` does not change while a coroutine is queued. */

#define CH_STEAL_SCAN 256   /* queue entries a giver looks at, at most */
#define CH_STEAL_BACKOFF 64 /* picks a giver that found nothing to give waits before it looks again */

static _Atomic int hungry_count; /* workers whose `hungry` is set (a hint: the flags are the truth) */

static bool steal_on(void) { return !ch_config.steal_off && ch_config.workers > 1 && ch_ident_enabled(); }

/* Whether co may move to another scheduler while it is queued, as far as co itself goes. */
bool ch_may_move(const ch_coro *co) {
  return co->is_thread && co->own_tcb && co->pins == 0 && co->nrobust == 0 && co->sched->is_worker &&
         !ch_config.steal_off;
}

static void hungry_set(struct ch_sched *s) {
  if (!atomic_exchange_explicit(&s->hungry, 1, memory_order_acq_rel))
    atomic_fetch_add_explicit(&hungry_count, 1, memory_order_relaxed);
}
static bool hungry_clear(struct ch_sched *s) {
  if (!atomic_exchange_explicit(&s->hungry, 0, memory_order_acq_rel)) return false;
  atomic_fetch_sub_explicit(&hungry_count, 1, memory_order_relaxed);
  return true;
}

/* s has movable coroutines queued and some worker is hungry: give it half of them. */
static __attribute__((noinline)) void give_work(struct ch_sched *s) {
  CH_ASSERT(ch_rt_owned(s) && s->is_worker);
  int n = ch_worker_count();
  struct ch_sched *to = NULL;
  for (int i = 0; i < n && !to; i++) {
    struct ch_sched *h = ch_worker_sched(i);
    if (h && h != s && atomic_load_explicit(&h->hungry, memory_order_relaxed) && hungry_clear(h)) to = h;
  }
  if (!to) return;
  size_t want = s->runq_movable >= 2 ? s->runq_movable / 2 : 1, taken = 0;
  ch_coro *head = NULL, *tail = NULL, *prev = NULL;
  unsigned scanned = 0;
  for (ch_coro *co = s->runq_head, *next; co && taken < want && scanned < CH_STEAL_SCAN; co = next, scanned++) {
    next = co->next;
    if (!co->movable || co == s->current) {
      prev = co;
      continue;
    }
    /* Out of s's queue ... */
    if (prev) prev->next = next;
    else s->runq_head = next;
    if (s->runq_tail == co) s->runq_tail = prev;
    s->runq_out++, s->runq_movable--;
    /* ... and s's registry (a fresh one is on none yet: coro_entry links it where it starts) ... */
    if (co->coros_prev || s->coros == co) {
      coros_unlink(s, co);
      co->coros_prev = co->coros_next = NULL;
      co->relink = true;
    }
    /* ... onto `to`: its TLS says so from its next switch in. */
    co->sched = to;
    ch_ident_move(co, to);
    atomic_fetch_sub_explicit(&s->load, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&to->load, 1, memory_order_relaxed);
    co->next = NULL;
    if (tail) tail->next = co;
    else head = co;
    tail = co;
    taken++;
  }
  if (!taken) { /* all we had was the running coroutine, or beyond the scan: let another giver try, */
    hungry_set(to);
    s->give_after = s->runq_out + CH_STEAL_BACKOFF; /* and look again only after a few picks */
    return;
  }
  inbox_push_list(to, head, tail, taken, taken);
  atomic_fetch_add_explicit(&ch_stats.steals, taken, memory_order_relaxed);
}

/* ---- switching ------------------------------------------------------------------------------------ */

/* A coroutine's control block lives at the top of its own stack (as glibc keeps struct pthread
 * there): the page is the stack's first anyway, so a coroutine costs no allocation of its own. The
 * block and stack have two holders, released in either order: the coroutine running on the stack
 * (until the scheduler has switched off it after its exit) and its handle (until join, or at exit
 * for a detached one). The last one returns the stack to the pool; nothing reads the block after
 * dropping its reference. */
static void coro_unref(struct ch_sched *s, ch_coro *co) {
  if (atomic_fetch_sub_explicit(&co->refs, 1, memory_order_acq_rel) != 1) return;
  struct ch_stack st = co->stack; /* the block is inside the stack we hand back */
  ch_stack_put(s, &st);
}

/* Runs first thing in whatever context just got the CPU: finish the sanitizer hand-off, release the
 * stack of a coroutine that just finished, and restore this coroutine's errno. */
static void after_switch(struct ch_sched *s, ch_coro *self) {
#ifdef CH_ASAN
  const void *old_lo;
  size_t old_size;
  __sanitizer_finish_switch_fiber(self->asan_fake_stack, &old_lo, &old_size);
  /* The first switch of a thread always leaves its main stack: that is how we learn its bounds. */
  if (!s->main_stack_lo) {
    s->main_stack_lo = old_lo;
    s->main_stack_size = old_size;
  }
#endif
  if (s->has_dead) {
    s->has_dead = false;
    coro_unref(s, s->dead); /* we are off its stack now */
  }
  self->movable = false; /* running: whatever it does next may tie it to s again */
  if (CH_UNLIKELY(self->relink)) { /* it moved here from another scheduler (work stealing) */
    self->relink = false;
    coros_link(s, self);
  }
  /* Resumed on another OS thread than last time (its scheduler was handed over, handoff.c): glibc
   * must see this thread's tid in the TCB (mutex owners, raise), and our sections this thread's M. */
  struct ch_m *m = atomic_load_explicit(&s->m, memory_order_relaxed);
  if (CH_UNLIKELY(ch_tls_m != m)) {
    ch_tls_m = m;
    if (self->own_tcb) ch_tls_set_tid(self->tp, s->tid);
  }
  errno = self->saved_errno;
}

void ch_sched_resumed(struct ch_sched *s, ch_coro *self) { after_switch(s, self); }

/* Returns the scheduler `from` runs on when it is resumed: s, unless it moved meanwhile (work
 * stealing writes the new one into its TLS, ch_ident_move). */
static inline struct ch_sched *switch_to(struct ch_sched *s, ch_coro *from, ch_coro *to) {
  CH_ASSERT(ch_rt_owned(s));
  from->saved_errno = errno;
  if (CH_UNLIKELY(!from->stack.guarded) && from->stack.lo && !ch_stack_canary_ok(&from->stack))
    ch_stack_overflow_abort(&from->stack, false);
#ifdef CH_ASAN
  __sanitizer_start_switch_fiber(&from->asan_fake_stack, to->stack.lo ? to->stack.lo : s->main_stack_lo,
                                 to->stack.lo ? to->stack.size : s->main_stack_size);
#endif
  s->current = to;
  s->nswitch++;
  if (CH_UNLIKELY(atomic_load_explicit(&s->preempt, memory_order_relaxed)))
    atomic_store_explicit(&s->preempt, 0, memory_order_relaxed); /* the monitor's request is met */
  ch_cpuclock_switch(&from->cpu, &to->cpu, s->tid); /* one load until CPU clocks are asked for */
  /* The target's thread identity: from here to the jump this code touches no TLS (ident.c). */
  if (from->tp != to->tp) ch_tls_set_tp(to->tp);
  ch_ctx_jump(&from->sp, to->sp, from);
  CH_ASSERT(ch_tls_get_tp() == from->tp); /* resumed under its own identity */
  s = ch_tls_sched;
  after_switch(s, from);
  return s;
}

/* Remember how deep this coroutine's stack has been seen in use (ch_stack_put trims below that).
 * Sampled wherever a coroutine blocks: free, and that is where legacy code spends its life. */
static inline __attribute__((always_inline)) void note_depth(ch_coro *self) {
  char *frame = __builtin_frame_address(0);
  if (frame < self->stack.low_water) self->stack.low_water = frame;
}

/* Poll the inbox, I/O and timers; block when nothing is runnable. I/O is looked at before timers
 * fire, so an fd that is ready when its wait times out counts as ready (poll(2) with timeout 0 must
 * report readiness, not a timeout). */
static void deliver_signal(struct ch_sched *s) {
  unsigned seq = s->sig_seq - 1;
  s->sig_seq = 0;
  if (s->os_coro->park_seq == seq) ch_wake(s->os_coro, CH_WAKE_INTR);
}

/* A worker about to sleep in epoll first watches its inbox for a few microseconds. Wake-ups between
 * workers (a mutex, condvar or join handing over to a coroutine elsewhere) then arrive without the
 * eventfd write, epoll return and eventfd read that waking a sleeping loop costs — libev only
 * writes to the eventfd when the target loop is actually blocked. Bounded, so an idle worker
 * costs almost nothing. True if work arrived. */
#define CH_IDLE_SPIN_NS 20000

static bool idle_spin(struct ch_sched *s) {
  uint64_t until = 0;
  for (unsigned i = 0;; i++) {
    if (atomic_load_explicit(&s->inbox_nonempty, memory_order_relaxed)) {
      ch_sched_drain_inbox(s);
      return s->runq_head != NULL;
    }
    ch_cpu_relax();
    if ((i & 63) == 0) {
      uint64_t now = ch_now_ns();
      if (!until) until = now + CH_IDLE_SPIN_NS;
      else if (now >= until) return false;
    }
  }
}

static void poll_events(struct ch_sched *s, bool may_block) {
  if (CH_UNLIKELY(s->sig_seq)) deliver_signal(s);
  if (atomic_load_explicit(&s->inbox_nonempty, memory_order_relaxed)) ch_sched_drain_inbox(s);
  int64_t timeout = 0;
  bool hungry = false;
  if (may_block) {
    if (s->runq_head) { /* the inbox produced work: no need to ask the kernel */
      if (s->heap_len) ch_timer_fire_expired(s, ch_now_ns());
      return;
    }
    /* Nothing to run: ask the busy ones for work while we wait (work stealing, above). */
    hungry = s->is_worker && steal_on();
    if (hungry) hungry_set(s);
    if (s->is_worker && (!s->heap_len || ch_timer_next(s) > ch_now_ns() + CH_IDLE_SPIN_NS) && idle_spin(s)) {
      if (hungry) hungry_clear(s);
      return;
    }
    uint64_t next = ch_timer_next(s);
    if (next == CH_NO_DEADLINE) {
      timeout = -1;
    } else {
      uint64_t now = ch_now_ns();
      timeout = next > now ? (int64_t)(next - now) : 0;
    }
  }
  ch_loop_run(s, timeout);
  if (hungry) hungry_clear(s);
  if (CH_UNLIKELY(s->sig_seq)) deliver_signal(s);
  if (s->heap_len) ch_timer_fire_expired(s, ch_now_ns());
}

/* Signal handlers run on whatever coroutine the thread is in; a process-directed signal interrupts,
 * natively, the one thread it is delivered to. We play that the thread's main coroutine received it:
 * if main is parked in an interruptible call now, that call ends with EINTR. Async-signal-safe: only
 * records the decision and pokes the loop (ev_async_send is safe in handlers). */
void ch_signal_arrived(bool restart) {
  struct ch_sched *s = ch_tls_sched;
  if (!s) return;
  ch_coro *m = s->os_coro;
  if (atomic_load_explicit(&m->park, memory_order_relaxed) != CH_PARKED) return;
  if (m->intr == CH_INTR_ALWAYS || (m->intr == CH_INTR_NORESTART && !restart)) {
    s->sig_seq = m->park_seq + 1;
    ch_loop_notify(s->loop);
  }
}

/* The next coroutine to run, polling (and blocking) until there is one. May be the caller itself. */
static ch_coro *next_ready(struct ch_sched *s) {
  CH_ASSERT(ch_rt_owned(s));
  if (CH_UNLIKELY(atomic_load_explicit(&s->runnext, memory_order_relaxed))) {
    ch_coro *co = take_runnext(s);
    if (co) {
      s->runq_out++;
      return co;
    }
  }
  for (;;) {
    if (s->runq_head) {
      if (CH_UNLIKELY(s->runq_movable) && s->runq_head != s->runq_tail &&
          CH_UNLIKELY(atomic_load_explicit(&hungry_count, memory_order_relaxed)) && s->runq_out >= s->give_after)
        give_work(s);
      if (CH_UNLIKELY(s->round_left == 0)) {
        poll_events(s, false);
        s->round_left = CH_POLL_EVERY;
      }
      s->round_left--;
      return runq_pop(s);
    }
    poll_events(s, true);
    s->round_left = CH_POLL_EVERY;
  }
}

ch_coro *ch_sched_next_ready(struct ch_sched *s) { return next_ready(s); }

/* The handlers of pending signals its mask lets through (sigmask.c). */
static void run_pending(ch_coro *self) { ch_sig_deliver(self); }

void ch_coro_kill(ch_coro *co, int sig, bool restart) {
  uint64_t bit = 1ull << (sig - 1);
  atomic_fetch_or_explicit(&co->pending_sigs, bit, memory_order_seq_cst);
  /* Blocked by its own mask: pending until unblocked (the unblocking runs it, sigmask.c); only a
   * wait for that very signal (sigwait & co, a signalfd read) is woken. Both sides store, then load
   * the other's word (seq_cst): a mask change racing with us sees the bit, or we see the new mask. */
  if (atomic_load_explicit(&co->sigmask, memory_order_seq_cst) & bit) {
    if (atomic_load_explicit(&co->sigwait_set, memory_order_seq_cst) & bit) ch_wake(co, CH_WAKE_INTR);
    return;
  }
  /* Racy by nature, as signals are: the target's state is looked at now. If it is not parked in an
   * interruptible call, the handler runs when it next blocks. */
  if (co->intr == CH_INTR_ALWAYS || (co->intr == CH_INTR_NORESTART && !restart)) ch_wake(co, CH_WAKE_INTR);
  else ch_wake(co, CH_WAKE_SIGNAL);
}

/* Whether the wait self is parking in ends for a cancellation request now (see CH_CANCEL_*). */
static inline bool cancel_ends_wait(ch_coro *self) {
  return (self->intr != CH_INTR_NONE || self->cancel_wait) && ch_cancel_wanted(self);
}

int ch_park(struct ch_sched *s, uint64_t deadline) {
  CH_ASSERT(ch_rt_owned(s)); /* the caller's section covers its registrations, the park and the clean-up */
  ch_coro *self = s->current;
  /* The program's errno, as it was when it called: what runs below on this coroutine's TLS (libev's
   * epoll_ctl answering EEXIST for an fd another loop had, an eventfd write) must not show through. */
  int saved_errno = errno;
  if (CH_UNLIKELY(atomic_load_explicit(&self->pending_sigs, memory_order_relaxed))) run_pending(self);
  /* A request that came while we were running found nobody to kick: a cancellation point acts as
   * it is entered. Claimed like a wake-up, so nobody else queues us for this park. */
  if (CH_UNLIKELY(atomic_load_explicit(&self->cancel, memory_order_relaxed) & CH_CANCEL_PENDING) &&
      cancel_ends_wait(self)) {
    int p = CH_PARKED;
    if (atomic_compare_exchange_strong_explicit(&self->park, &p, CH_WAKE_INTR, memory_order_acq_rel,
                                                memory_order_acquire)) {
      atomic_store_explicit(&self->park, CH_RUNNING, memory_order_relaxed);
      self->movable = false;
      errno = saved_errno;
      return CH_WAKE_INTR;
    }
  }
  note_depth(self);
  self->park_seq++;
  struct ch_timer t = {.deadline = deadline, .idx = SIZE_MAX, .co = self};
  if (deadline != CH_NO_DEADLINE) ch_timer_add(s, &t);
  int why;
  /* Only the caller knows whether its wait is tied to s (an fd watcher in s's loop ...): a parking-lot
   * wait with no deadline says so by setting self->movable; a timer in s's heap always ties it. */
  CH_ASSERT(!self->movable || (deadline == CH_NO_DEADLINE && self->own_tcb));
  for (;;) {
    ch_coro *next = next_ready(s);
    if (next != self) s = switch_to(s, self, next);
    self->movable = false;
    why = atomic_load_explicit(&self->park, memory_order_acquire);
    if (why != CH_WAKE_SIGNAL) break;
    /* Woken only to run a handler whose call the kernel would restart (or by a cancellation
     * request): run it, then sleep again, still registered where we wait — unless a real wake-up
     * claimed us meanwhile (the CAS fails), or the request ends this wait. */
    run_pending(self);
    int sig = CH_WAKE_SIGNAL;
    if (cancel_ends_wait(self)) {
      why = atomic_compare_exchange_strong_explicit(&self->park, &sig, CH_WAKE_INTR, memory_order_acq_rel,
                                                    memory_order_acquire)
                ? CH_WAKE_INTR
                : sig;
      break;
    }
    if (!atomic_compare_exchange_strong_explicit(&self->park, &sig, CH_PARKED, memory_order_acq_rel,
                                                 memory_order_acquire)) {
      why = sig;
      break;
    }
  }
  CH_ASSERT(why != CH_PARKED && why != CH_RUNNING && why != CH_WAKE_SIGNAL);
  ch_timer_del(s, &t); /* no-op when it fired */
  atomic_store_explicit(&self->park, CH_RUNNING, memory_order_relaxed);
  if (CH_UNLIKELY(atomic_load_explicit(&self->pending_sigs, memory_order_relaxed))) run_pending(self);
  errno = saved_errno;
  return why;
}

void ch_yield(void) {
  CH_RT_SECTION();
  struct ch_sched *s = ch_sched_get();
  if (!s) return;
  ch_coro *self = s->current;
  int saved_errno = errno; /* see ch_park */
  note_depth(self);
  self->movable = ch_may_move(self); /* nothing after the switch below uses s */
  runq_push(s, self);
  ch_coro *next = next_ready(s);
  if (next != self) switch_to(s, self, next);
  self->movable = false;
  errno = saved_errno;
}

int ch_sleep_until(uint64_t deadline) {
  CH_RT_SECTION();
  struct ch_sched *s = ch_sched_get();
  if (!s) return CH_E_NOSCHED;
  s->current->wait_kind = CH_WAIT_SLEEP;
  ch_park_prepare(s->current);
  ch_park(s, deadline);
  return 0;
}

/* ---- coroutine life cycle ------------------------------------------------------------------------- */

static void coro_exit(struct ch_sched *s, ch_coro *self) __attribute__((noreturn));

static void finish(struct ch_sched *s, ch_coro *self, void *retval) __attribute__((noreturn));
static void finish(struct ch_sched *s, ch_coro *self, void *retval) {
  self->retval = retval;
  if (self->is_thread) {
    ch_ident_exit(self); /* C++ thread_local destructors first, then keys: glibc's order */
    ch_thread_on_exit(self);
  } else if (self->own_tcb) {
    ch_ident_exit(self); /* a runtime coroutine on a worker: its block is reused as a thread's is */
  }
  /* In a fork() child this coroutine became the process's only thread (ch_sched_after_fork): its
   * end ends the process as exit(0) would. */
  if (CH_UNLIKELY(self == s->os_coro)) exit(0);
  ch_rt_enter(); /* never left: the coroutine ends inside (coro_exit switches away for good) */
  coros_unlink(s, self); /* before a joiner may release it (coro_exit) */
  coro_exit(s, self);
}

/* A coroutine-thread with its own TCB runs its function the way glibc's start_thread does: under an
 * unwind buffer registered in its TCB, so that glibc's pthread_exit (ch_thread_exit, cancellation)
 * unwinds the coroutine's stack — cleanup handlers, C++ destructors — and lands here. */
static __attribute__((noinline)) void *run_thread_fn(ch_coro *self) {
  __pthread_unwind_buf_t buf;
  if (CH_UNLIKELY(__sigsetjmp_cancel(buf.__cancel_jmp_buf, 0))) {
    /* Unwound. Locals are not to be trusted after the longjmp; the TCB still names the handler
     * buffers the unwinding went through: put back what was there before ours (nothing). */
    __pthread_unregister_cancel(&buf);
    /* The unwinding may have started inside a runtime section (a cancellation acted on in one): it
     * skipped the sections' ends, so close them here. */
    if (ch_tls_m) {
      ch_tls_rt_depth = 1;
      ch_rt_leave();
    }
    return ch_tls_self->retval; /* set by ch_thread_exit */
  }
  __pthread_register_cancel(&buf);
  void *ret = self->fn(self->arg);
  __pthread_unregister_cancel(&buf);
  return ret;
}

static void coro_entry(void *prev) {
  (void)prev;
  struct ch_sched *s = ch_tls_sched;
  ch_coro *self = s->current;
  CH_ASSERT(ch_tls_get_tp() == self->tp);
  after_switch(s, self);
  coros_link(s, self);
  /* Started inside the section of whoever switched to us: this coroutine leaves it for its own code. */
  if (ch_tls_m) {
    ch_tls_rt_depth = 1;
    ch_rt_leave();
  }
  void *ret = self->own_tcb ? run_thread_fn(self) : self->fn(self->arg);
  /* Not `s`: in a fork() child the coroutine that forked belongs to the child's new scheduler. */
  finish(ch_tls_sched, self, ret);
}

void ch_coro_exit_now(void *retval) { finish(ch_tls_sched, ch_self(), retval); }

static void coro_exit(struct ch_sched *s, ch_coro *self) {
  if (!ch_stack_canary_ok(&self->stack)) ch_stack_overflow_abort(&self->stack, false);
  /* We are still running on this stack: whoever runs next releases it (after_switch). The zombie
   * stands in for us as "current" so nothing reads the control block a joiner may free any moment. */
  s->dead = self;
  s->has_dead = true;
  s->zombie.stack = self->stack;
  s->zombie.sched = s;
  s->zombie.tp = self->tp; /* still installed until the jump below */
  s->current = &s->zombie;
  atomic_fetch_sub_explicit(&s->load, 1, memory_order_relaxed);
  int js = CH_JOINABLE;
  if (atomic_compare_exchange_strong_explicit(&self->join_state, &js, CH_EXITED, memory_order_acq_rel,
                                              memory_order_acquire)) {
    ch_coro *joiner = atomic_exchange_explicit(&self->joiner, CH_JOIN_DONE, memory_order_acq_rel);
    if (joiner) ch_wake(joiner, CH_WAKE_OK);
  } else {
    self->magic = 0;
    ch_free(self->keys);
    self->keys = NULL;
    /* detached: the handle's reference goes now; ours when the next coroutine runs (after_switch) */
    atomic_fetch_sub_explicit(&self->refs, 1, memory_order_acq_rel);
  }
  /* From here on `self` may already be released by its joiner: only its stack is still ours. */
  ch_coro *next = next_ready(s);
#ifdef CH_ASAN
  __sanitizer_start_switch_fiber(NULL, next->stack.lo ? next->stack.lo : s->main_stack_lo,
                                 next->stack.lo ? next->stack.size : s->main_stack_size);
#endif
  s->current = next;
  s->nswitch++;
  ch_cpuclock_switch(NULL, &next->cpu, s->tid);
  if (s->zombie.tp != next->tp) ch_tls_set_tp(next->tp);
  ch_ctx_jump(&s->dead_sp_sink, next->sp, NULL);
  __builtin_unreachable();
}

void ch_ctx_returned(void) {
  static const char msg[] = "cohook: internal error: a coroutine entry function returned\n";
  ch_write_err(msg, sizeof msg - 1);
  abort();
}

int ch_spawn_on(struct ch_sched *target, ch_coro **out, cohook_fn fn, void *arg, size_t stack_size,
                bool detached, bool is_thread) {
  CH_RT_SECTION(); /* the caller's stack cache, and the run queue when target is its scheduler */
  /* The stack comes from the caller's cache or the shared pool; it goes back to a cache when the
   * coroutine has ended and its handle is released (coro_unref). */
  /* A size the program asked for is the stack it gets: its thread identity and control block come
   * on top, as glibc counts TLS inside PTHREAD_STACK_MIN. (Default-size stacks hold both, as glibc's
   * default-size thread stacks hold its TLS and descriptor.) Equal to the default or not, a request is
   * a request: its stack is its own mapping. */
  /* Every coroutine on a worker gets a thread identity of its own, the runtime's too (sigmask.c's
   * dispatcher): a worker's scheduler may move to another OS thread (handoff.c), and a coroutine on
   * its OS thread's TLS would then run under another thread's. */
  bool ident = (is_thread || target->is_worker) && ch_ident_enabled();
  bool asked = stack_size != 0;
  size_t extra = asked ? (ident ? ch_ident_reserve() : 0) + CH_CORO_RESERVE : 0;
  if (!asked) stack_size = is_thread ? ch_stack_thread_default() : ch_config.stack_size;
  else if (stack_size > SIZE_MAX / 2) return -EAGAIN; /* no machine maps it */
  struct ch_stack st;
  int rc = ch_stack_get(ch_tls_sched, stack_size + extra, !asked, &st);
  if (rc < 0) return rc;
  void *tp = target->main.tp; /* the OS thread's own identity, unless it gets one of its own */
  char *top = st.lo + st.size;
  if (ident) {
    top = ch_ident_attach(&st, target, &tp);
    if (!top) { /* no TLS block (memory or mappings): EAGAIN, as glibc's pthread_create */
      ch_stack_put(ch_tls_sched, &st);
      return -EAGAIN;
    }
  } else {
    ch_ident_drop(&st); /* this stack's top is the coroutine's own now */
  }
  /* The control block goes right under the identity (or the stack's top), on a cache line of its
   * own; the coroutine's first frame starts below it. A reused stack holds the last one's bytes. */
  top = (char *)(((uintptr_t)top - sizeof(ch_coro)) & ~(uintptr_t)63);
  ch_coro *co = (ch_coro *)(void *)top;
  memset(co, 0, sizeof *co);
  co->stack = st;
  co->tp = tp;
  co->own_tcb = ident;
  atomic_init(&co->refs, 2); /* the coroutine on its stack, and its handle */
  co->magic = CH_CORO_MAGIC;
  co->sched = target;
  co->fn = fn;
  co->arg = arg;
  co->is_thread = is_thread;
  if (is_thread) ch_thread_inherit_name(co->name); /* as clone() copies the creator's comm */
  if (is_thread) ch_sig_thread_init(co);            /* and the creator's signal mask */
  co->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed) & ~(uint64_t)CH_MAIN_ID_BIT;
  atomic_init(&co->park, CH_RUNNING);
  atomic_init(&co->join_state, detached ? CH_DETACHED : CH_JOINABLE);
  atomic_init(&co->joiner, NULL);
  if (ident) ch_ident_set_self(tp, co);
  co->sp = ch_ctx_make(top, coro_entry);
  co->movable = ch_may_move(co); /* coro_entry takes its scheduler from its TLS */
  atomic_fetch_add_explicit(&target->load, 1, memory_order_relaxed);
  if (out) *out = co; /* before it can run: pthread_create publishes the id first, too */
  make_ready(co);
  return 0;
}

int ch_spawn(ch_coro **out, cohook_fn fn, void *arg, size_t stack_size, bool detached) {
  struct ch_sched *s = ch_sched_get();
  if (!s) return CH_E_NOSCHED;
  return ch_spawn_on(s, out, fn, arg, stack_size, detached, false);
}

static void release(ch_coro *co, void **retval) {
  (void)atomic_load_explicit(&co->join_state, memory_order_acquire);
  if (retval) *retval = co->retval;
  co->magic = 0;
  ch_free(co->keys);
  co->keys = NULL;
  coro_unref(ch_tls_sched, co); /* the handle's reference; co may be reused from here on */
}

int ch_join_until(ch_coro *co, void **retval, uint64_t deadline) {
  CH_RT_SECTION();
  struct ch_sched *s = ch_sched_get();
  if (!s) return CH_E_NOSCHED;
  ch_coro *self = s->current;
  if (co == self) return -EDEADLK;
  int js = atomic_load_explicit(&co->join_state, memory_order_acquire);
  if (js == CH_DETACHED || js == CH_JOINED) return -EINVAL;
  if (js == CH_EXITED) {
    release(co, retval);
    return 0;
  }
  if (deadline == 0) return -EBUSY;
  self->wait_kind = CH_WAIT_JOIN;
  self->wait_obj = (uintptr_t)co;
  ch_park_prepare(self);
  ch_coro *expect = NULL;
  if (!atomic_compare_exchange_strong_explicit(&co->joiner, &expect, self, memory_order_acq_rel,
                                               memory_order_acquire)) {
    atomic_store_explicit(&self->park, CH_RUNNING, memory_order_relaxed);
    if (expect != CH_JOIN_DONE) return -EINVAL; /* somebody else is joining it */
    release(co, retval);
    return 0;
  }
  CH_STAT_WAIT(s, CH_FAM_JOIN);
  self->cancel_wait = true; /* pthread_join is a cancellation point */
  int why = ch_park(s, deadline);
  self->cancel_wait = false;
  if (why == CH_WAKE_TIMEOUT || why == CH_WAKE_INTR) {
    /* Withdraw as joiner, unless coro_exit took our pointer meanwhile: then it has finished. */
    expect = self;
    if (atomic_compare_exchange_strong_explicit(&co->joiner, &expect, NULL, memory_order_acq_rel,
                                                memory_order_acquire))
      return why == CH_WAKE_INTR ? -EINTR : -ETIMEDOUT;
  }
  release(co, retval);
  return 0;
}

int ch_join(ch_coro *co, void **retval) { return ch_join_until(co, retval, CH_NO_DEADLINE); }

int ch_detach(ch_coro *co) {
  CH_RT_SECTION();
  int js = CH_JOINABLE;
  if (atomic_compare_exchange_strong_explicit(&co->join_state, &js, CH_DETACHED, memory_order_acq_rel,
                                              memory_order_acquire))
    return 0;
  if (js == CH_EXITED &&
      atomic_compare_exchange_strong_explicit(&co->join_state, &js, CH_JOINED, memory_order_acq_rel,
                                              memory_order_acquire)) {
    release(co, NULL); /* it already finished: detaching an exited coroutine releases it, as for pthreads */
    return 0;
  }
  return -EINVAL;
}

/* ---- per-thread scheduler ------------------------------------------------------------------------- */

void ch_sched_thread_exit(void) {
  struct ch_sched *s = ch_tls_sched;
  if (!s) return;
  /* The main thread's scheduler lives until the process ends: exit() runs TLS destructors while
   * other threads may still wake coroutines on it. */
  if (ch_gettid() == ch_getpid()) return;
  ch_tls_sched = NULL;
  ch_lock(&all_lock);
  for (struct ch_sched **p = &all_scheds; *p; p = &(*p)->all_next)
    if (*p == s) {
      *p = s->all_next;
      break;
    }
  ch_unlock(&all_lock);
  ch_stats_sched_del(s); /* its counts go into the process's (stats.c) */
  ch_loop_free(s->loop);
  ch_stack_thread_fini(s);
  ch_free(s->heap);
  ch_free(s);
}

int ch_process_pid;
__attribute__((constructor(101))) static void pid_init(void) { ch_process_pid = ch_getpid(); }

void ch_sched_after_fork(void) {
  ch_process_pid = ch_getpid();
  ch_mem_after_fork();
  ch_stack_after_fork();
  ch_pl_after_fork();
  ch_stats_after_fork(); /* before this thread's scheduler is made again, below */
  all_scheds = NULL; /* the parent's schedulers belong to threads the child does not have */
  atomic_store_explicit(&hungry_count, 0, memory_order_relaxed); /* and so do their hungry flags */
  atomic_store(&all_lock.state, 0);
  struct ch_sched *old = ch_tls_sched;
  ch_handoff_after_fork(); /* the child's only thread is no M: sections are no-ops until it has workers */
  ch_worker_after_fork(old && old->is_worker);
  if (!old) return;
  ch_coro *cur = old->current;
  ch_thread_after_fork(cur->is_thread);
  ch_gsync_after_fork();
  ch_tls_sched = NULL;
  /* The child shares the parent's epoll instance through the inherited fd: never touch it, just drop
   * our copies of the loop's fds. The parent's other coroutines are gone with its other threads. */
  ch_tls_bypass++;
  ch_loop_free(old->loop);
  ch_tls_bypass--;
  struct ch_sched *s = ch_sched_get();
  /* A coroutine-thread that forked goes on as itself, as the forking thread does natively: same
   * pthread_self(), TLS block, keys and name. It becomes the new scheduler's current coroutine and
   * the one that stands for the OS thread; the new main is never run. */
  if (s && cur != &old->main) {
    cur->sched = s;
    s->current = cur;
    s->os_coro = cur;
    coros_link(s, cur); /* the parent's registry went with its schedulers */
  }
}

/* This thread's scheduler, made on first use; NULL when none can serve here: none could be made
 * (out of fds or memory), or we are inside the runtime's own machinery (ch_tls_bypass: making this
 * very scheduler, libev, a signal handler, a platform call). Callers then do what the native call
 * would do — block the OS thread — and never recurse: making a scheduler calls into glibc
 * (ch_os_thread_register), and an allocator that locks a pthread mutex comes back into
 * our hooks while this thread has no scheduler yet. */
struct ch_sched *ch_sched_get(void) {
  struct ch_sched *s = ch_tls_sched;
  if (CH_LIKELY(s)) return s;
  if (ch_tls_bypass) return NULL;
  ch_tls_bypass++;
  s = ch_alloc(sizeof *s);
  if (!s) goto out;
  s->main.sched = s;
  s->tid = ch_gettid();
  s->main.tp = ch_tls_get_tp(); /* the thread's own (or, in a fork child, the forking coroutine's) */
  s->main.id = (uint32_t)s->tid | CH_MAIN_ID_BIT; /* as ch_self_id() says before we exist */
  atomic_init(&s->main.park, CH_RUNNING);
  atomic_init(&s->main.join_state, CH_DETACHED); /* a thread's main coroutine cannot be joined */
  s->current = &s->main;
  s->os_coro = &s->main;
  atomic_init(&s->due, CH_NO_DEADLINE);
  s->loop = ch_loop_new(s);
  if (!s->loop) {
    ch_free(s);
    s = NULL;
    goto out;
  }
  ch_stack_thread_init(s);
  ch_tls_sched = s;
  ch_lock(&all_lock);
  s->all_next = all_scheds;
  all_scheds = s;
  ch_unlock(&all_lock);
  ch_stats_sched_add(s); /* may start the monitor thread (monitor.c) */
  ch_os_thread_register(); /* the scheduler goes when the thread does */
out:
  ch_tls_bypass--;
  return s;
}
