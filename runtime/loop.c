/*
 * loop.c — the one file that talks to libev (as redis's ae.c is the one file that talks to epoll).
 *
 * Each scheduler owns one libev loop holding:
 *   - one persistent ev_io per fd that a coroutine ever waited on. It stays started between waits, so a
 *     coroutine that waits on the same fd again costs no epoll_ctl; it is narrowed only when the kernel
 *     reports readiness nobody waits for (libev's epoll is level-triggered: an unwanted EPOLLOUT on a
 *     writable socket would otherwise wake us on every iteration);
 *   - one ev_async, so other threads can queue wake-ups (the scheduler's inbox);
 *   - the timeout for blocking, from the scheduler's own timer heap (timer.c). libev's epoll backend
 *     rounds waits up to whole milliseconds, so a deadline at least CH_COARSE_NS away uses an ev_timer
 *     that fires 1 ms early, and the final approach to a deadline uses a timerfd, which the kernel
 *     fires with nanosecond resolution. A 100 us sleep therefore takes ~100 us, not 1 ms, and a
 *     long-lived deadline (SO_RCVTIMEO that never expires) costs no syscall at all.
 *
 * libev is created with EVFLAG_NOSIGMASK and without signal watchers: a preloaded library must never
 * change the program's signal dispositions or masks.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "internal.h"

#define CH_COARSE_NS 2000000   /* below this, wait on the timerfd */
#define CH_EARLY_NS 1000000    /* the coarse ev_timer fires this much before the deadline */

struct ch_fdwaiter {
  struct ch_fdwaiter *next, *prev;
  struct ch_fdslot *slot;
  ch_coro *co;
  int fd;
  int events;  /* COHOOK_READABLE / COHOOK_WRITABLE */
  int revents;
};

struct ch_fdslot {
  ev_io io;                    /* first member: the callback casts back */
  struct ch_fdwaiter *waiters;
  uint32_t gen;                /* fdtab generation the watcher was added under; see fdtab.c */
  bool added;                  /* the watcher has been given to epoll at least once for this gen */
};

struct ch_loop {
  struct ev_loop *ev;
  struct ch_sched *s;
  ev_async wake;
  ev_timer alarm;
  ev_io tfd_io;
  int tfd;
  struct ch_fdslot **slots;
  size_t nslots;
};

static int to_ev(int events) {
  return ((events & COHOOK_READABLE) ? EV_READ : 0) | ((events & COHOOK_WRITABLE) ? EV_WRITE : 0);
}

static int from_ev(int revents) {
  /* libev reports EPOLLERR/EPOLLHUP as every requested event; so do we: the caller's next I/O call
   * then sees the error or EOF itself, exactly as the program would natively. */
  return ((revents & EV_READ) ? COHOOK_READABLE : 0) | ((revents & EV_WRITE) ? COHOOK_WRITABLE : 0);
}

static void async_cb(struct ev_loop *ev, ev_async *w, int revents) {
  (void)revents;
  struct ch_loop *l = ev_userdata(ev);
  (void)w;
  ch_sched_drain_inbox(l->s);
}

static void alarm_cb(struct ev_loop *ev, ev_timer *w, int revents) {
  (void)ev, (void)w, (void)revents; /* only there to end the wait; the scheduler fires the timers */
}

static void tfd_cb(struct ev_loop *ev, ev_io *w, int revents) {
  (void)ev, (void)revents;
  uint64_t ticks;
  /* Clear the expiry so the timerfd does not stay readable; raw syscall: read() may be hooked. */
  long r = syscall(SYS_read, w->fd, &ticks, sizeof ticks);
  (void)r;
}

static void fd_cb(struct ev_loop *ev, ev_io *w, int revents) {
  struct ch_fdslot *slot = (struct ch_fdslot *)w;
  int got = from_ev(revents), want = 0;
  for (struct ch_fdwaiter *x = slot->waiters; x; x = x->next) {
    want |= x->events;
    if ((x->events & got) && ch_wake(x->co, CH_WAKE_OK)) x->revents = x->events & got;
  }
  /* Readiness nobody asked for: narrow the watcher (or stop it) so level-triggered epoll does not
   * report it again and again. A waiter that was just woken still counts as wanting: it usually waits
   * again right away, and keeping its interest saves two epoll_ctl calls. */
  int want_ev = to_ev(want);
  if (revents & ~want_ev & (EV_READ | EV_WRITE)) {
    ev_io_stop(ev, w);
    if (want_ev) {
      ev_io_modify(w, want_ev);
      ev_io_start(ev, w);
    }
  }
}

struct ch_loop *ch_loop_new(struct ch_sched *s) {
  struct ch_loop *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  /* libev aborts the process if it cannot make its eventfd (ev_async_start): make sure one can be
   * made first, and report failure instead — the hooks then block the thread the native way. */
  long probe = syscall(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (probe < 0) {
    free(l);
    return NULL;
  }
  syscall(SYS_close, probe);
  /* Inside: libev's epoll_create1 and eventfd come back to our hooks, which move them out of the
   * program's way (hook/fd.c, ch_fd_make_internal). */
  ch_tls_bypass++;
  l->ev = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV | EVFLAG_NOSIGMASK | EVFLAG_NOINOTIFY |
                      EVFLAG_NOTIMERFD);
  if (!l->ev) {
    ch_tls_bypass--;
    free(l);
    return NULL;
  }
  l->s = s;
  l->tfd = -1;
  ev_set_userdata(l->ev, l);
  ev_async_init(&l->wake, async_cb);
  ev_async_start(l->ev, &l->wake);
  ch_tls_bypass--;
  ev_init(&l->alarm, alarm_cb);
  return l;
}

void ch_loop_free(struct ch_loop *l) {
  if (!l) return;
  for (size_t i = 0; i < l->nslots; i++) free(l->slots[i]);
  free(l->slots);
  if (l->tfd >= 0) syscall(SYS_close, l->tfd), ch_fd_forget(l->tfd);
  ch_tls_bypass++; /* libev closes its own fds: let those closes through */
  ev_loop_destroy(l->ev);
  ch_tls_bypass--;
  free(l);
}

void ch_loop_notify(struct ch_loop *l) {
  ch_tls_bypass++; /* ev_async_send write()s to an eventfd: that is ours, not the program's */
  ev_async_send(l->ev, &l->wake);
  ch_tls_bypass--;
}

/* Arm the precise timer for an absolute CLOCK_MONOTONIC deadline. Returns false if unavailable. */
static bool arm_timerfd(struct ch_loop *l, uint64_t deadline) {
  if (l->tfd < 0) {
    l->tfd = (int)syscall(SYS_timerfd_create, CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (l->tfd < 0) return false;
    l->tfd = ch_fd_make_internal(l->tfd);
    ev_io_init(&l->tfd_io, tfd_cb, l->tfd, EV_READ);
    ev_io_start(l->ev, &l->tfd_io);
  }
  struct itimerspec its = {.it_value = {.tv_sec = (time_t)(deadline / 1000000000u),
                                        .tv_nsec = (long)(deadline % 1000000000u)}};
  return timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0;
}

void ch_loop_run(struct ch_sched *s, int64_t timeout_ns) {
  struct ch_loop *l = s->loop;
  ch_tls_bypass++; /* libev's epoll_wait, read and write calls are its own */
  if (timeout_ns == 0) {
    ev_run(l->ev, EVRUN_NOWAIT);
  } else if (timeout_ns < 0) {
    ev_run(l->ev, EVRUN_ONCE);
  } else if (timeout_ns >= CH_COARSE_NS || !arm_timerfd(l, ch_now_ns() + (uint64_t)timeout_ns)) {
    ev_now_update(l->ev);
    ev_timer_set(&l->alarm, (double)(timeout_ns >= CH_COARSE_NS ? timeout_ns - CH_EARLY_NS : timeout_ns) / 1e9,
                 0.);
    ev_timer_start(l->ev, &l->alarm);
    ev_run(l->ev, EVRUN_ONCE);
    ev_timer_stop(l->ev, &l->alarm);
  } else {
    ev_run(l->ev, EVRUN_ONCE);
  }
  ch_tls_bypass--;
}

static struct ch_fdslot *slot_get(struct ch_loop *l, int fd) {
  if ((size_t)fd >= l->nslots) {
    size_t n = l->nslots ? l->nslots : 64;
    while (n <= (size_t)fd) n *= 2;
    struct ch_fdslot **ns = realloc(l->slots, n * sizeof *ns);
    if (!ns) return NULL;
    memset(ns + l->nslots, 0, (n - l->nslots) * sizeof *ns);
    l->slots = ns;
    l->nslots = n;
  }
  struct ch_fdslot *slot = l->slots[fd];
  if (!slot) {
    slot = calloc(1, sizeof *slot);
    if (!slot) return NULL;
    ev_init(&slot->io, fd_cb);
    l->slots[fd] = slot;
  }
  return slot;
}

/* Make sure slot's watcher covers `ev`. Costs no syscall when it already does (the common case: the
 * same coroutine waits on the same fd again), one epoll_ctl otherwise. */
static void watch(struct ch_loop *l, struct ch_fdslot *slot, int fd, int ev) {
  uint32_t gen = ch_fd_gen(fd);
  bool active = ev_is_active(&slot->io);
  if (slot->added && slot->gen == gen && active && (slot->io.events & ev) == ev) return;
  int nev = (active ? (slot->io.events & (EV_READ | EV_WRITE)) : 0) | ev;
  ev_io_stop(l->ev, &slot->io);
  if (!slot->added || slot->gen != gen) {
    /* New to us, or the number now names another file: ev_io_set's EV__IOFDSET makes libev
     * re-add the fd to epoll even though, as far as it knows, nothing changed. */
    ev_io_set(&slot->io, fd, nev);
    slot->gen = gen;
    slot->added = true;
  } else {
    ev_io_modify(&slot->io, nev);
  }
  ev_io_start(l->ev, &slot->io);
}

/* Register n waiters, park once, unregister. Returns the park reason (CH_WAKE_*) or -ENOMEM. */
static int wait_on(struct ch_sched *s, struct ch_fdwaiter *ws, size_t n, uint64_t deadline) {
  struct ch_loop *l = s->loop;
  size_t i;
  for (i = 0; i < n; i++) {
    struct ch_fdslot *slot = slot_get(l, ws[i].fd);
    if (!slot) break;
    ws[i].slot = slot;
    ws[i].co = s->current;
    ws[i].revents = 0;
    ws[i].prev = NULL;
    ws[i].next = slot->waiters;
    if (ws[i].next) ws[i].next->prev = &ws[i];
    slot->waiters = &ws[i];
    watch(l, slot, ws[i].fd, to_ev(ws[i].events));
  }
  int why = -ENOMEM;
  if (i == n) {
    ch_park_prepare(s->current);
    why = ch_park(s, deadline);
  }
  while (i--) {
    struct ch_fdwaiter *w = &ws[i];
    if (w->prev) w->prev->next = w->next;
    else w->slot->waiters = w->next;
    if (w->next) w->next->prev = w->prev;
  }
  return why;
}

int ch_fd_wait(int fd, int events, uint64_t deadline) {
  struct ch_sched *s = ch_sched_get();
  if (!s) return -EAGAIN;
  if (fd < 0) return -EBADF;
  if (!to_ev(events)) return -EINVAL;
  struct ch_fdwaiter w = {.fd = fd, .events = events};
  switch (wait_on(s, &w, 1, deadline)) {
    case CH_WAKE_OK: return w.revents;
    case CH_WAKE_TIMEOUT: return -ETIMEDOUT;
    case CH_WAKE_CLOSED: return -EBADF;
    case CH_WAKE_INTR: return -EINTR;
    default: return -ENOMEM;
  }
}

int ch_fd_wait_any(const int *fds, const int *events, size_t n, uint64_t deadline) {
  struct ch_sched *s = ch_sched_get();
  if (!s) return -EAGAIN;
  struct ch_fdwaiter local[16], *ws = n <= 16 ? local : calloc(n, sizeof *ws);
  if (!ws) return -ENOMEM;
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (fds[i] < 0 || !to_ev(events[i])) continue;
    ws[m].fd = fds[i];
    ws[m].events = events[i];
    m++;
  }
  int why = wait_on(s, ws, m, deadline);
  if (ws != local) free(ws);
  switch (why) {
    case CH_WAKE_OK: case CH_WAKE_CLOSED: return 1; /* the caller's re-poll reports what happened */
    case CH_WAKE_TIMEOUT: return -ETIMEDOUT;
    case CH_WAKE_INTR: return -EINTR;
    default: return -ENOMEM;
  }
}

void ch_fd_closed(int fd) {
  /* The kernel drops the epoll registration when the last reference to the file goes; libev does
   * not know. The new generation makes the next waiter on this number re-add it (on every thread). */
  ch_fd_forget(fd);
  struct ch_sched *s = ch_sched_peek();
  if (!s || fd < 0 || (size_t)fd >= s->loop->nslots) return;
  struct ch_fdslot *slot = s->loop->slots[fd];
  if (!slot) return;
  for (struct ch_fdwaiter *x = slot->waiters; x; x = x->next) ch_wake(x->co, CH_WAKE_CLOSED);
  ev_io_stop(s->loop->ev, &slot->io);
}
