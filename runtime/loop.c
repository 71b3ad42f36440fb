/*
 * loop.c — the one file that talks to libev (as redis's ae.c is the one file that talks to epoll).
 *
 * Each scheduler owns one libev loop holding:
 *   - one persistent ev_io per fd that a coroutine ever waited on. It stays started between waits, so a
 *     coroutine that waits on the same fd again costs no epoll_ctl; it is narrowed only when the kernel
 *     reports readiness nobody waits for (libev's epoll is level-triggered: an unwanted EPOLLOUT on a
 *     writable socket would otherwise wake us on every iteration);
 *   - one ev_async, so other threads can queue wake-ups (the scheduler's inbox);
 *   - for urgent data (POLLPRI, select's exception sets), which libev does not watch: a second epoll
 *     instance of ours, made on first use, itself watched by an ev_io. An fd someone waits on for
 *     urgent data is added to it once, edge-triggered (EPOLLPRI | EPOLLET): an urgent byte that
 *     arrives while nobody waits needs no clearing, and every waiter asks the kernel (a zero-timeout
 *     poll) before it parks. Each entry carries the fd's generation (fdtab.c): an entry left from a
 *     file closed under another fd number reports a stale generation and is ignored. Database
 *     servers ask for POLLPRI with POLLIN out of habit (MariaDB waits for every statement so);
 *     without this each such wait blocked its worker's OS thread;
 *   - the timeout for blocking, from the scheduler's own timer heap (timer.c). libev's epoll backend
 *     rounds waits up to whole milliseconds, so a deadline at least CH_COARSE_NS away uses an ev_timer
 *     that fires 1 ms early, and the final approach to a deadline uses a timerfd, which the kernel
 *     fires with nanosecond resolution. A 100 us sleep therefore takes ~100 us, not 1 ms, and a
 *     long-lived deadline (SO_RCVTIMEO that never expires) costs no syscall at all.
 *
 * libev is created with EVFLAG_NOSIGMASK and without signal watchers: a preloaded library must never
 * change the program's signal dispositions or masks. It allocates through the runtime's own memory
 * (ev_set_allocator, mem.c), never the program's allocator.
 *
 * Losing the loop's fds. In libhook.so the program's close() cannot reach them (hook/fd.c). In
 * libcohook.so nothing stands between the program's close() and libev's epoll fd and eventfd — a
 * daemon closes every fd above 2 at start. So there the loop keeps a sentinel: an eventfd of ours,
 * registered in libev's epoll instance, through which that instance is found once (the one whose
 * /proc/self/fdinfo lists the sentinel) and recognised later (adding the sentinel again must answer
 * EEXIST). It is checked before libev applies watcher changes (libev asserts if epoll_ctl fails on
 * its own fd); a failed epoll_wait arrives through libev's syserr callback (it would otherwise abort
 * the process). Either way the loop is rebuilt — a new libev loop, every watched fd re-added — and
 * the old one abandoned without touching its fds, whose numbers may belong to the program by now.
 *
 * Ownership: a loop is touched only by its scheduler's thread (asserted at every entry), except
 * ch_loop_notify, which any thread may call.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>

#include "internal.h"
#include "sys.h"

#define CH_COARSE_NS 2000000   /* below this, wait on the timerfd */
#define CH_EARLY_NS 1000000    /* the coarse ev_timer fires this much before the deadline */

struct ch_fdwaiter {
  struct ch_fdwaiter *next, *prev;
  struct ch_fdslot *slot;
  ch_coro *co;
  int fd;
  int events;  /* COHOOK_READABLE / COHOOK_WRITABLE / CH_FD_URGENT */
  int revents;
};

struct ch_fdslot {
  ev_io io;                    /* first member: the callback casts back */
  struct ch_fdwaiter *waiters;
  uint32_t gen;                /* fdtab generation the watcher was added under; see fdtab.c */
  bool added;                  /* the watcher has been given to epoll at least once for this gen */
  bool uadded;                 /* the fd is in the urgent-data epoll set for generation ugen */
  uint32_t ugen;
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
  /* libcohook.so only (see above): the sentinel eventfd, libev's epoll fd, and whether a watcher
   * changed since the last run (libev will call epoll_ctl). -1 where unused. */
  ev_io sentinel_io;
  int sentinel, backend;
  int epfd; /* libev's epoll fd as the hook made it internal (libhook.so), else -1: for the monitor */
  int ufd;  /* the urgent-data epoll set (see above), -1 until first used */
  ev_io ufd_io;
  bool dirty;
};

#define CH_EV_FLAGS (EVBACKEND_EPOLL | EVFLAG_NOENV | EVFLAG_NOSIGMASK | EVFLAG_NOINOTIFY | EVFLAG_NOTIMERFD)

/* Set by libev's syserr callback (a failed epoll_wait: our fds were closed under us); the loop is
 * rebuilt right after the ev_run that hit it. Per thread: a loop runs on its own thread only. */
static CH_TLS int loop_broken;

static void syserr_cb(const char *msg) {
  (void)msg;
  loop_broken = 1;
}

/* libev's allocator (realloc semantics). A block libev made before we gave it this allocator (a
 * program that uses libev itself, started before us) goes back to the allocator that made it. */
static void *ev_mem(void *ptr, long size) {
  if (ptr && !ch_mem_owns(ptr)) {
    if (size) return realloc(ptr, (size_t)size);
    free(ptr);
    return NULL;
  }
  if (size) return ch_realloc(ptr, (size_t)size);
  ch_free(ptr);
  return NULL;
}

/* Priority 101: before ordinary constructors, which might already start a libev loop of their own. */
__attribute__((constructor(101))) static void loop_global_init(void) {
  ev_set_allocator(ev_mem);
  ev_set_syserr_cb(syserr_cb);
}

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
  long r = ch_sys(SYS_read, w->fd, &ticks, sizeof ticks);
  (void)r;
}

static void fd_cb(struct ev_loop *ev, ev_io *w, int revents) {
  struct ch_fdslot *slot = (struct ch_fdslot *)w;
  int got = from_ev(revents), want = 0;
  for (struct ch_fdwaiter *x = slot->waiters; x; x = x->next) {
    CH_ASSERT(x->slot == slot && x->co->sched == ((struct ch_loop *)ev_userdata(ev))->s);
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

/* The urgent-data set has events: wake who waits for urgent data on those fds. */
static void urgent_cb(struct ev_loop *ev, ev_io *w, int revents) {
  (void)w, (void)revents;
  struct ch_loop *l = ev_userdata(ev);
  struct epoll_event evs[32];
  long n = ch_sys6(SYS_epoll_pwait, l->ufd, (long)evs, 32, 0, 0, 8); /* more: next round (level) */
  for (long i = 0; i < n; i++) {
    int fd = (int)(uint32_t)evs[i].data.u64;
    uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
    if (fd < 0 || (size_t)fd >= l->nslots || !l->slots[fd] || ch_fd_gen(fd) != gen) continue;
    for (struct ch_fdwaiter *x = l->slots[fd]->waiters; x; x = x->next)
      if ((x->events & CH_FD_URGENT) && ch_wake(x->co, CH_WAKE_OK)) x->revents = CH_FD_URGENT;
  }
}

/* Make sure fd is in the urgent-data set; false if it cannot be (a file that cannot be polled). */
static bool watch_urgent(struct ch_loop *l, struct ch_fdslot *slot, int fd) {
  uint32_t gen = ch_fd_gen(fd);
  if (slot->uadded && slot->ugen == gen) return true;
  if (l->ufd < 0) {
    long u = ch_sys(SYS_epoll_create1, EPOLL_CLOEXEC, 0, 0);
    if (u < 0) return false;
    l->ufd = ch_fd_make_internal((int)u);
    ev_io_init(&l->ufd_io, urgent_cb, l->ufd, EV_READ);
    ev_io_start(l->ev, &l->ufd_io);
    l->dirty = l->backend >= 0;
  }
  struct epoll_event e = {.events = EPOLLPRI | EPOLLET, .data.u64 = (uint64_t)gen << 32 | (uint32_t)fd};
  long r = ch_sys4(SYS_epoll_ctl, l->ufd, EPOLL_CTL_ADD, fd, &e);
  if (r == -EEXIST) r = ch_sys4(SYS_epoll_ctl, l->ufd, EPOLL_CTL_MOD, fd, &e); /* same file, new gen */
  if (r < 0) return false;
  slot->uadded = true;
  slot->ugen = gen;
  return true;
}

/* ---- guarding the loop's fds where nothing interposes close() (libcohook.so) ------------------------ */

static void sentinel_cb(struct ev_loop *ev, ev_io *w, int revents) { (void)ev, (void)w, (void)revents; }

/* Does /proc/self/fdinfo/fd list `target` as a watched fd ("tfd: <target> ")? */
static bool fdinfo_watches(int fd, int target) {
  char path[48], buf[4096], want[24];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  snprintf(want, sizeof want, "tfd: %8d ", target);
  int f = (int)ch_sys4(SYS_openat, -100 /* AT_FDCWD */, path, 0 /* O_RDONLY */ | 02000000 /* O_CLOEXEC */, 0);
  if (f < 0) return false;
  long n = ch_sys(SYS_read, f, buf, sizeof buf - 1);
  ch_sys(SYS_close, f, 0, 0);
  if (n <= 0) return false;
  buf[n] = 0;
  return strstr(buf, want) != NULL;
}

/* Find libev's epoll fd: the open eventpoll instance that watches our sentinel. -1 if none. */
static int find_backend(int sentinel) {
  int dir = (int)ch_sys4(SYS_openat, -100, "/proc/self/fd", 0200000 /* O_DIRECTORY */ | 02000000, 0);
  if (dir < 0) return -1;
  char buf[4096];
  int found = -1;
  long n;
  while (found < 0 && (n = ch_sys(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
    for (long off = 0; off < n && found < 0;) {
      struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; } *d =
          (void *)(buf + off);
      off += d->reclen;
      if (d->name[0] < '0' || d->name[0] > '9') continue;
      int fd = atoi(d->name);
      if (fd != dir && fd != sentinel && fdinfo_watches(fd, sentinel)) found = fd;
    }
  }
  ch_sys(SYS_close, dir, 0, 0);
  return found;
}

/* Give a fresh loop its sentinel and learn its epoll fd. Failing that, the loop works unguarded. */
static void guard(struct ch_loop *l) {
  l->sentinel = l->backend = -1;
  long fd = ch_sys(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK, 0);
  if (fd < 0) return;
  l->sentinel = ch_fd_make_internal((int)fd);
  ev_io_init(&l->sentinel_io, sentinel_cb, l->sentinel, EV_READ);
  ev_io_start(l->ev, &l->sentinel_io);
  ev_run(l->ev, EVRUN_NOWAIT); /* libev applies the change: epoll_ctl(ADD, sentinel) */
  l->backend = find_backend(l->sentinel);
}

/* Is libev's epoll fd still the instance we made? One epoll_ctl: adding the sentinel again must
 * answer EEXIST. */
static bool backend_alive(struct ch_loop *l) {
  if (l->backend < 0) return true; /* unguarded */
  struct epoll_event e = {.events = 0};
  long r = ch_sys4(SYS_epoll_ctl, l->backend, EPOLL_CTL_ADD, l->sentinel, &e);
  if (r == -EEXIST) return true;
  if (r == 0) ch_sys4(SYS_epoll_ctl, l->backend, EPOLL_CTL_DEL, l->sentinel, &e); /* not ours: undo */
  return false;
}

/* A fresh libev loop with our async watcher, or NULL. */
static struct ev_loop *make_ev(struct ch_loop *l) {
  /* libev aborts the process if it cannot make its eventfd (ev_async_start): make sure one can be
   * made first, and report failure instead — the hooks then block the thread the native way. */
  long probe = ch_sys(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK, 0);
  if (probe < 0) return NULL;
  ch_sys(SYS_close, probe, 0, 0);
  /* Inside: libev's epoll_create1 and eventfd come back to our hooks (in libhook.so), which move
   * them out of the program's way (hook/fd.c, ch_fd_make_internal). */
  ch_tls_bypass++;
  ch_tls_fd_capture = -1; /* libev's epoll_create1 comes first: its fd is the backend */
  struct ev_loop *ev = ev_loop_new(CH_EV_FLAGS);
  l->epfd = ch_tls_fd_capture >= 0 ? ch_tls_fd_capture : -1;
  ch_tls_fd_capture = -2;
  if (ev) {
    ev_set_userdata(ev, l);
    ev_async_init(&l->wake, async_cb);
    ev_async_start(ev, &l->wake);
  }
  ch_tls_bypass--;
  return ev;
}

struct ch_loop *ch_loop_new(struct ch_sched *s) {
  struct ch_loop *l = ch_alloc(sizeof *l);
  if (!l) return NULL;
  l->s = s;
  l->tfd = -1;
  l->ev = make_ev(l);
  if (!l->ev) {
    ch_free(l);
    return NULL;
  }
  ev_init(&l->alarm, alarm_cb);
  l->sentinel = l->backend = -1;
  l->ufd = -1;
  if (!ch_plat()->interposed) guard(l);
  return l;
}

/* The loop's fds were closed under us (loop_broken): start over with a new libev loop and re-add
 * every fd that has waiters. The old loop is abandoned, not destroyed: destroying would close fd
 * numbers that may already be the program's. Its memory (a few KiB) is the price, once per loss. */
static void rebuild(struct ch_loop *l) {
  loop_broken = 0;
  struct ev_loop *ev = make_ev(l);
  if (!ev) ch_die("cohook: the event loop's file descriptors were closed and no new loop can be made "
                  "(out of fds or memory?)");
  l->ev = ev;
  ev_init(&l->alarm, alarm_cb);
  l->tfd = l->ufd = -1; /* the old numbers are not ours any more: forget them, never close them */
  if (!ch_plat()->interposed) guard(l);
  l->dirty = true;
  for (size_t fd = 0; fd < l->nslots; fd++) {
    struct ch_fdslot *slot = l->slots[fd];
    if (!slot) continue;
    int want = 0;
    for (struct ch_fdwaiter *x = slot->waiters; x; x = x->next) {
      want |= to_ev(x->events);
      /* Urgent-data waiters: the set is gone; woken, they ask the kernel and wait again. */
      if (x->events & CH_FD_URGENT) ch_wake(x->co, CH_WAKE_OK);
    }
    ev_init(&slot->io, fd_cb);
    slot->added = slot->uadded = false;
    if (want && ch_sys(SYS_fcntl, fd, F_GETFD, 0) < 0) {
      /* Closed too (libev would assert on it): its waiters see what the program's call would. */
      for (struct ch_fdwaiter *x = slot->waiters; x; x = x->next) ch_wake(x->co, CH_WAKE_CLOSED);
      continue;
    }
    /* Re-added with its waiters' interest; an fd that was closed too is reported to them as ready
     * (libev's fd_kill), and their retry meets EBADF, as the program's own call would. */
    if (want) {
      ev_io_set(&slot->io, (int)fd, want);
      slot->gen = ch_fd_gen((int)fd);
      slot->added = true;
      ev_io_start(l->ev, &slot->io);
    }
  }
}

void ch_loop_free(struct ch_loop *l) {
  if (!l) return;
  for (size_t i = 0; i < l->nslots; i++) ch_free(l->slots[i]);
  ch_free(l->slots);
  if (l->tfd >= 0) ch_sys(SYS_close, l->tfd, 0, 0), ch_fd_forget(l->tfd);
  if (l->sentinel >= 0) ch_sys(SYS_close, l->sentinel, 0, 0), ch_fd_forget(l->sentinel);
  if (l->ufd >= 0) ch_sys(SYS_close, l->ufd, 0, 0), ch_fd_forget(l->ufd);
  ch_tls_bypass++; /* libev closes its own fds: let those closes through */
  ev_loop_destroy(l->ev);
  ch_tls_bypass--;
  ch_free(l);
}

bool ch_loop_pending(struct ch_loop *l) {
  int fd = l->epfd >= 0 ? l->epfd : l->backend;
  if (fd < 0) return true; /* cannot tell: say yes (a needless handoff costs a thread switch) */
  struct epoll_event e;
  return ch_sys6(SYS_epoll_pwait, fd, (long)&e, 1, 0, 0, 8) > 0;
}

void ch_loop_notify(struct ch_loop *l) {
  ch_tls_bypass++; /* ev_async_send write()s to an eventfd: that is ours, not the program's */
  ev_async_send(l->ev, &l->wake);
  ch_tls_bypass--;
}

/* Arm the precise timer for an absolute CLOCK_MONOTONIC deadline. Returns false if unavailable. */
static bool arm_timerfd(struct ch_loop *l, uint64_t deadline) {
  if (l->tfd < 0) {
    l->tfd = (int)ch_sys(SYS_timerfd_create, CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC, 0);
    if (l->tfd < 0) return false;
    l->tfd = ch_fd_make_internal(l->tfd);
    ev_io_init(&l->tfd_io, tfd_cb, l->tfd, EV_READ);
    ev_io_start(l->ev, &l->tfd_io);
  }
  struct itimerspec its = {.it_value = {.tv_sec = (time_t)(deadline / 1000000000u),
                                        .tv_nsec = (long)(deadline % 1000000000u)}};
  if (ch_sys4(SYS_timerfd_settime, l->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0) return true;
  loop_broken = 1; /* our timerfd was closed under us: rebuild after this round */
  return false;
}

void ch_loop_run(struct ch_sched *s, int64_t timeout_ns) {
  struct ch_loop *l = s->loop;
  CH_ASSERT(s == ch_tls_sched);
  ch_tls_bypass++; /* libev's epoll_wait, read and write calls are its own */
  s->st.npoll++;   /* odd while in here: the monitor tells idle from stuck (stats.h) */
  if (CH_UNLIKELY(l->dirty)) {
    l->dirty = false;
    if (!backend_alive(l)) rebuild(l);
  }
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
  if (CH_UNLIKELY(loop_broken)) rebuild(l);
  s->st.npoll++;
  ch_tls_bypass--;
}

static struct ch_fdslot *slot_get(struct ch_loop *l, int fd) {
  if ((size_t)fd >= l->nslots) {
    size_t n = l->nslots ? l->nslots : 64;
    while (n <= (size_t)fd) n *= 2;
    struct ch_fdslot **ns = ch_realloc(l->slots, n * sizeof *ns);
    if (!ns) return NULL;
    memset(ns + l->nslots, 0, (n - l->nslots) * sizeof *ns);
    l->slots = ns;
    l->nslots = n;
  }
  struct ch_fdslot *slot = l->slots[fd];
  if (!slot) {
    slot = ch_alloc(sizeof *slot);
    if (!slot) return NULL;
    ev_init(&slot->io, fd_cb);
    l->slots[fd] = slot;
    l->s->st.fd_watchers++;
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
  l->dirty = l->backend >= 0; /* libev will call epoll_ctl: make sure its fd is still ours first */
}

/* Register n waiters, park once, unregister. Returns the park reason (CH_WAKE_*), -ENOMEM, or
 * CH_E_NOSCHED when an fd cannot be watched for urgent data (the caller waits natively). */
static int wait_on(struct ch_sched *s, struct ch_fdwaiter *ws, size_t n, uint64_t deadline) {
  struct ch_loop *l = s->loop;
  CH_ASSERT(s == ch_tls_sched && l->s == s);
  size_t i;
  bool nosched = false;
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
    if (to_ev(ws[i].events)) watch(l, slot, ws[i].fd, to_ev(ws[i].events));
    if ((ws[i].events & CH_FD_URGENT) && !watch_urgent(l, slot, ws[i].fd)) {
      i++; /* registered: taken off below */
      nosched = true;
      break;
    }
  }
  int why = nosched ? CH_E_NOSCHED : -ENOMEM;
  if (i == n && !nosched) {
    s->current->wait_kind = n == 0 ? CH_WAIT_SLEEP : n == 1 ? CH_WAIT_FD : CH_WAIT_FDS;
    s->current->wait_obj = n ? (uintptr_t)ws[0].fd : 0;
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
  CH_RT_SECTION();
  struct ch_sched *s = ch_sched_get();
  if (!s) return CH_E_NOSCHED;
  if (fd < 0) return -EBADF;
  if (!(events & (COHOOK_READABLE | COHOOK_WRITABLE | CH_FD_URGENT))) return -EINVAL;
  struct ch_fdwaiter w = {.fd = fd, .events = events};
  CH_STAT_WAIT(s, (events & COHOOK_READABLE) ? CH_FAM_READ : CH_FAM_WRITE);
  switch (wait_on(s, &w, 1, deadline)) {
    case CH_WAKE_OK: return w.revents;
    case CH_WAKE_TIMEOUT: return -ETIMEDOUT;
    case CH_WAKE_CLOSED: return -EBADF;
    case CH_WAKE_INTR: return -EINTR;
    case CH_E_NOSCHED: return CH_E_NOSCHED;
    default: return -ENOMEM;
  }
}

int ch_fd_wait_any(const int *fds, const int *events, size_t n, uint64_t deadline) {
  CH_RT_SECTION();
  struct ch_sched *s = ch_sched_get();
  if (!s) return CH_E_NOSCHED;
  struct ch_fdwaiter local[16], *ws = n <= 16 ? local : ch_alloc(n * sizeof *ws);
  if (!ws) return -ENOMEM;
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (fds[i] < 0 || !(events[i] & (COHOOK_READABLE | COHOOK_WRITABLE | CH_FD_URGENT))) continue;
    ws[m].fd = fds[i];
    ws[m].events = events[i];
    m++;
  }
  CH_STAT_WAIT(s, CH_FAM_POLL);
  int why = wait_on(s, ws, m, deadline);
  if (ws != local) ch_free(ws);
  switch (why) {
    case CH_WAKE_OK: case CH_WAKE_CLOSED: return 1; /* the caller's re-poll reports what happened */
    case CH_WAKE_TIMEOUT: return -ETIMEDOUT;
    case CH_WAKE_INTR: return -EINTR;
    case CH_E_NOSCHED: return CH_E_NOSCHED;
    default: return -ENOMEM;
  }
}

void ch_fd_closed(int fd) {
  /* The kernel drops the epoll registration when the last reference to the file goes; libev does
   * not know. The new generation makes the next waiter on this number re-add it (on every thread). */
  ch_fd_forget(fd);
  CH_RT_SECTION();
  struct ch_sched *s = ch_sched_peek();
  if (!s || fd < 0 || (size_t)fd >= s->loop->nslots) return;
  struct ch_fdslot *slot = s->loop->slots[fd];
  if (!slot || (!slot->waiters && !ev_is_active(&slot->io))) return;
  /* A vfork() child runs on its parent's memory, this very scheduler included, with a copy of the
   * parent's fd table: its close() closes nothing of the parent's, and touching the loop would wake
   * the parent's waiters with EBADF and take the fd out of the parent's epoll set. Only here, where
   * the loop would be touched, is it worth the system call to tell. */
  if (CH_UNLIKELY(ch_getpid() != ch_process_pid)) return;
  for (struct ch_fdwaiter *x = slot->waiters; x; x = x->next) ch_wake(x->co, CH_WAKE_CLOSED);
  ev_io_stop(s->loop->ev, &slot->io);
}
