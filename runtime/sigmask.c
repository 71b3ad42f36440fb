/*
 * sigmask.c — signal masks, pending signals and signal waits per coroutine-thread.
 *
 * The kernel keeps a signal mask per task, and a coroutine-thread has no task of its own: its
 * worker blocks every asynchronous signal (worker.c) and runs many coroutine-threads. So the mask
 * of a coroutine-thread is ours (co->sigmask, signals 1..64 as bit sig-1), and so is what is
 * pending for it (co->pending_sigs):
 *
 *   - pthread_sigmask/sigprocmask from a coroutine-thread change co->sigmask only (SIGKILL and
 *     SIGSTOP never, as the kernel); a new coroutine-thread starts with its creator's mask (an OS
 *     thread's real one when an OS thread creates it), as clone() copies it.
 *   - pthread_kill to a coroutine-thread sets a pending bit (sched.c, ch_coro_kill); a blocked one
 *     stays pending until the mask lets it through, then its handler runs on that coroutine
 *     (ch_sig_deliver, from the park path or right after the mask changed).
 *   - Process-directed signals (kill(getpid()), a terminal's SIGINT, SIGTERM from outside): the
 *     kernel delivers them to an OS thread that does not block them and prefers the thread-group
 *     leader (complete_signal()). Workers block everything, so when the program's main thread also
 *     blocks a signal that some coroutine-thread leaves unblocked, the kernel keeps it pending for
 *     the process. For exactly those signals (the dispatch set) the runtime holds a signalfd, read
 *     by a coroutine of its own on a worker (the dispatcher); each signal read is handed to one
 *     coroutine-thread that does not block it (found by a walk of each worker's registry of live
 *     coroutines, on that worker's thread), where it runs the handler and interrupts the blocking
 *     call as natively. A signal the main thread does not block still goes to the main thread, as
 *     the kernel decides before we could see it — native behaviour too (the leader is preferred).
 *   - Waits (sigwait & co, sigsuspend/pause, signalfd reads, ppoll/pselect/epoll_pwait masks) park
 *     the coroutine: see the functions below.
 *
 * Counting who unblocks what must cost nothing on thread creation: coroutine-threads are counted
 * per distinct mask (a few slots: programs use a handful of masks), one atomic add at creation and
 * one at exit. The dispatch set is recomputed only when a slot's count goes to or from zero, or the
 * main thread's mask changes (its pthread_sigmask/sigprocmask, seen by the hooks).
 *
 * Limits (README): the main thread's mask is known from its pthread_sigmask/sigprocmask calls only
 * (not its sigsuspend/ppoll masks); beyond CH_SIG_SLOTS-1 distinct masks in use, the rest count as
 * "unblocks everything"; a process-directed signal that no coroutine-thread accepts any more when
 * it is read (the mask changed meanwhile) stays pending in the runtime (shown by sigpending, taken
 * by the first coroutine-thread that unblocks or waits for it), where the program's OS threads do
 * not see it; real-time signals of one number are delivered one at a time, their siginfo is the
 * last one read.
 */
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>

#include "internal.h"
#include "emul.h"
#include "sys.h"
#include "tls.h"

#define BIT(sig) (1ull << ((sig) - 1))
/* Never blocked (the kernel ignores attempts) */
#define UNBLOCKABLE (BIT(SIGKILL) | BIT(SIGSTOP))
/* Never dispatched: the synchronous signals (workers leave them unblocked, so the kernel delivers
 * them itself) and glibc's internal ones (SIGCANCEL, SIGSETXID). */
#define NOT_DISPATCHED                                                                              \
  (UNBLOCKABLE | BIT(SIGSEGV) | BIT(SIGBUS) | BIT(SIGILL) | BIT(SIGFPE) | BIT(SIGTRAP) | BIT(SIGSYS) | \
   BIT(32) | BIT(33))

uint64_t ch_sig_from_set(const sigset_t *s) {
  uint64_t m;
  memcpy(&m, s, sizeof m); /* glibc's sigset_t: signal n is bit n-1 of its first word */
  return m;
}

void ch_sig_to_set(uint64_t m, sigset_t *s) {
  sigemptyset(s);
  memcpy(s, &m, sizeof m);
}

/* ---- the masks in use, and the dispatch set ------------------------------------------------------ */

#define CH_SIG_SLOTS 32
struct slot {
  _Atomic uint64_t mask; /* written once, before nslots publishes it (under lock) */
  _Atomic long n;        /* live coroutine-threads with this mask */
};
static struct slot slots[CH_SIG_SLOTS];
static _Atomic int nslots;
static ch_lock_t lock;                /* slot creation, the dispatch set and the dispatcher */
static _Atomic uint64_t main_blocked; /* the main thread's mask, as its hooked calls set it */
static void *main_tp;                 /* the main thread's thread pointer (recognise it for free) */
static _Atomic bool dirty;            /* a slot came into use: the dispatch set may have grown */
static uint64_t disp_set;             /* [lock] what the signalfd holds */
static int disp_fd = -1;              /* [lock] */
static _Atomic uint64_t proc_pending; /* process-directed signals nobody could take (see above) */
static struct signalfd_siginfo proc_info[65]; /* the last one read of each signal */

void ch_sig_init_main(uint64_t mask) {
  main_tp = ch_tls_get_tp();
  atomic_store(&main_blocked, mask);
}

bool ch_sig_on_main(void) { return main_tp && ch_tls_get_tp() == main_tp; }

static int slot_of(uint64_t mask) {
  int n = atomic_load_explicit(&nslots, memory_order_acquire);
  for (int i = 0; i < n; i++)
    if (atomic_load_explicit(&slots[i].mask, memory_order_relaxed) == mask) return i;
  ch_lock(&lock);
  n = atomic_load_explicit(&nslots, memory_order_relaxed);
  int i;
  for (i = 0; i < n; i++)
    if (atomic_load_explicit(&slots[i].mask, memory_order_relaxed) == mask) break;
  if (i == n) {
    if (n < CH_SIG_SLOTS - 1) {
      atomic_store_explicit(&slots[n].mask, mask, memory_order_relaxed);
      atomic_store_explicit(&nslots, n + 1, memory_order_release);
    } else {
      i = CH_SIG_SLOTS - 1; /* overflow: counted as unblocking everything (mask 0) */
    }
  }
  ch_unlock(&lock);
  return i;
}

static void recompute_locked(bool may_start);

static void slot_ref(ch_coro *co, uint64_t mask) {
  co->sig_slot = slot_of(mask);
  if (atomic_fetch_add_explicit(&slots[co->sig_slot].n, 1, memory_order_acq_rel) == 0)
    atomic_store_explicit(&dirty, true, memory_order_release);
}

static void slot_unref(ch_coro *co) {
  if (atomic_fetch_sub_explicit(&slots[co->sig_slot].n, 1, memory_order_acq_rel) == 1) {
    ch_lock(&lock);
    recompute_locked(false); /* it can only shrink */
    ch_unlock(&lock);
  }
}

static void *dispatcher(void *arg);

/* The dispatch set: signals the main thread blocks, that some coroutine-thread does not block. */
static void recompute_locked(bool may_start) {
  uint64_t unblocked = 0;
  int n = atomic_load_explicit(&nslots, memory_order_acquire);
  for (int i = 0; i < CH_SIG_SLOTS; i++)
    if ((i < n || i == CH_SIG_SLOTS - 1) && atomic_load_explicit(&slots[i].n, memory_order_acquire) > 0)
      unblocked |= ~atomic_load_explicit(&slots[i].mask, memory_order_relaxed);
  uint64_t set = unblocked & atomic_load(&main_blocked) & ~NOT_DISPATCHED;
  int probe = ch_monitor_probe_signal(); /* workers leave it unblocked: the kernel delivers it */
  if (probe) set &= ~BIT(probe);
  if (set == disp_set) return;
  if (disp_fd < 0) {
    if (!set || !may_start || !ch_worker_count()) return;
    int fd = (int)ch_sys4(SYS_signalfd4, -1, &set, 8, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) return; /* out of fds: such signals stay pending, as before */
    fd = ch_fd_make_internal(fd);
    ch_coro *co;
    if (ch_spawn_on(ch_worker_pick(), &co, dispatcher, (void *)(intptr_t)fd, 0, true, false) < 0) {
      ch_sys(SYS_close, fd, 0, 0);
      return;
    }
    disp_fd = fd;
  } else {
    ch_sys4(SYS_signalfd4, disp_fd, &set, 8, 0); /* the same fd, a new mask */
  }
  disp_set = set;
}

void ch_sig_update(void) {
  if (!atomic_exchange_explicit(&dirty, false, memory_order_acq_rel)) return;
  CH_RT_SECTION(); /* before the lock: the dispatcher's start spawns (handoff.c: no lock into a section) */
  ch_lock(&lock);
  recompute_locked(true);
  ch_unlock(&lock);
}

void ch_sig_main_mask(uint64_t mask) {
  if (atomic_exchange(&main_blocked, mask) == mask) return;
  CH_RT_SECTION();
  ch_lock(&lock);
  recompute_locked(true);
  ch_unlock(&lock);
}

/* ---- a coroutine-thread's life ------------------------------------------------------------------- */

void ch_sig_thread_init(ch_coro *co) {
  ch_coro *self = ch_thread_self();
  uint64_t mask;
  if (self) {
    mask = atomic_load_explicit(&self->sigmask, memory_order_relaxed);
  } else if (ch_sig_on_main()) {
    mask = atomic_load_explicit(&main_blocked, memory_order_relaxed);
  } else {
    sigset_t cur;
    ch_sys4(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &cur, _NSIG / 8);
    mask = ch_sig_from_set(&cur);
    /* A worker (an API coroutine creating a thread) blocks everything for the runtime's sake: the
     * program's threads had the pool starter's mask. */
    if (ch_on_worker()) mask = ch_sig_from_set(ch_worker_program_mask());
  }
  mask &= ~UNBLOCKABLE;
  atomic_init(&co->sigmask, mask);
  slot_ref(co, mask);
}

void ch_sig_thread_exit(ch_coro *co) {
  slot_unref(co);
  atomic_store(&co->pending_sigs, 0); /* thread-directed pending signals die with the thread */
}

void ch_sig_after_fork(void) {
  for (int i = 0; i < CH_SIG_SLOTS; i++) atomic_store(&slots[i].n, 0);
  atomic_store(&lock.state, 0);
  if (disp_fd >= 0) ch_sys(SYS_close, disp_fd, 0, 0); /* the parent's dispatcher is not here */
  disp_fd = -1;
  disp_set = 0;
  atomic_store(&proc_pending, 0);
  ch_coro *co = ch_thread_self();
  if (!co) { /* an OS thread forked: it is the child's leader now */
    sigset_t cur;
    ch_sys4(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &cur, _NSIG / 8);
    main_tp = ch_tls_get_tp();
    atomic_store(&main_blocked, ch_sig_from_set(&cur));
    return;
  }
  /* The forking thread is the child's only one (and its leader): the kernel must see its mask. */
  uint64_t m = atomic_load(&co->sigmask);
  sigset_t s;
  ch_sig_to_set(m, &s);
  ch_sys4(SYS_rt_sigprocmask, SIG_SETMASK, &s, NULL, _NSIG / 8);
  main_tp = co->tp;
  atomic_store(&main_blocked, m);
  atomic_fetch_add(&slots[co->sig_slot].n, 1);
}

/* ---- delivery ------------------------------------------------------------------------------------ */

/* The siginfo of a pending signal: the dispatched one's, or NULL (pthread_kill: the hook makes one). */
static const siginfo_t *info_of(ch_coro *co, int sig, siginfo_t *buf) {
  if (!(atomic_fetch_and(&co->pending_proc, ~BIT(sig)) & BIT(sig))) return NULL;
  const struct signalfd_siginfo *f = &proc_info[sig];
  memset(buf, 0, sizeof *buf);
  buf->si_signo = sig;
  buf->si_code = f->ssi_code;
  buf->si_pid = (pid_t)f->ssi_pid;
  buf->si_uid = (uid_t)f->ssi_uid;
  buf->si_value.sival_ptr = (void *)(uintptr_t)f->ssi_ptr;
  return buf;
}

/* Move what the process has pending for nobody (see above) to co, if its mask now takes it. */
static void take_proc_pending(ch_coro *co, uint64_t accept) {
  uint64_t p = atomic_load(&proc_pending) & accept;
  while (p) {
    uint64_t b = p & -p;
    p &= ~b;
    if (atomic_fetch_and(&proc_pending, ~b) & b) {
      atomic_fetch_or(&co->pending_proc, b);
      atomic_fetch_or(&co->pending_sigs, b);
    }
  }
}

/* Run the handlers of co's pending signals its mask lets through (co is running: the park path of
 * sched.c's run_pending, or right after its mask changed). A coroutine parking in a wait that a
 * handler ends (sig_waiting) and that just ran one, or that has a signal it waits for (sigwait_set)
 * pending, claims its own wake-up: it would otherwise sleep through what was already there. */
void ch_sig_deliver(ch_coro *co) {
  uint64_t mask = atomic_load_explicit(&co->sigmask, memory_order_seq_cst);
  uint64_t bits = atomic_fetch_and_explicit(&co->pending_sigs, mask, memory_order_seq_cst) & ~mask;
  bool intr = false;
  for (int sig = 1; bits && sig <= 64; sig++, bits >>= 1) {
    if (!(bits & 1)) continue;
    siginfo_t buf;
    const siginfo_t *si = info_of(co, sig, &buf);
    int r = ch_upcalls && ch_upcalls->run_handler ? ch_upcalls->run_handler(sig, si) : 0;
    if (r & CH_SIG_RAN) {
      co->sig_handled++;
      if (co->intr == CH_INTR_ALWAYS || (co->intr == CH_INTR_NORESTART && !(r & CH_SIG_RESTART))) intr = true;
    }
  }
  if (CH_UNLIKELY(co->sig_waiting) &&
      (intr || (atomic_load(&co->pending_sigs) & atomic_load(&co->sigwait_set))) &&
      atomic_load_explicit(&co->park, memory_order_acquire) == CH_PARKED)
    ch_wake(co, CH_WAKE_INTR);
}

static bool restarts(int sig) { return ch_upcalls && ch_upcalls->sig_restarts && ch_upcalls->sig_restarts(sig); }

struct walk {
  int sig;
  bool found;
};

/* On a worker's own thread: its registry of live coroutines is this thread's to read. */
static void *walk(void *arg) {
  CH_RT_SECTION(); /* the registry is its scheduler's [thread] state */
  struct walk *w = arg;
  uint64_t b = BIT(w->sig);
  for (ch_coro *co = ch_tls_sched->coros; co; co = co->coros_next) {
    if (!co->is_thread || (atomic_load(&co->sigmask) & b)) continue;
    atomic_fetch_or(&co->pending_proc, b);
    ch_coro_kill(co, w->sig, restarts(w->sig));
    w->found = true;
    break;
  }
  return NULL;
}

static void dispatch(const struct signalfd_siginfo *si) {
  int sig = (int)si->ssi_signo;
  if (sig < 1 || sig > 64) return;
  proc_info[sig] = *si;
  struct walk w = {.sig = sig};
  for (int i = 0; i < ch_worker_count() && !w.found; i++) {
    struct ch_sched *s = ch_worker_sched(i);
    if (!s) continue;
    if (s == ch_tls_sched) {
      walk(&w);
      continue;
    }
    ch_coro *c;
    if (ch_spawn_on(s, &c, walk, &w, 0, false, false) == 0) ch_join(c, NULL);
  }
  if (!w.found) atomic_fetch_or(&proc_pending, BIT(sig));
}

static void *dispatcher(void *arg) {
  int fd = (int)(intptr_t)arg;
  for (;;) {
    struct signalfd_siginfo si;
    long r = ch_sys(SYS_read, fd, &si, sizeof si);
    if (r == (long)sizeof si) {
      dispatch(&si);
      continue;
    }
    if (r != -EAGAIN && r != -EINTR) return NULL; /* gone (a fork child closed it) */
    if (ch_fd_wait(fd, COHOOK_READABLE, CH_NO_DEADLINE) == -EBADF) return NULL;
  }
}

/* ---- the calling coroutine-thread's mask --------------------------------------------------------- */

/* Install mask as co's own: the table of masks in use follows, and pending signals it now lets
 * through run. */
static void set_mask(ch_coro *co, uint64_t mask) {
  mask &= ~UNBLOCKABLE;
  uint64_t old = atomic_exchange_explicit(&co->sigmask, mask, memory_order_seq_cst);
  if (old != mask) {
    int was = co->sig_slot;
    slot_ref(co, mask);
    if (atomic_fetch_sub_explicit(&slots[was].n, 1, memory_order_acq_rel) == 1) atomic_store(&dirty, true);
    ch_sig_update();
    /* A forked child's only thread: the kernel must agree. */
    struct ch_sched *s = ch_tls_sched;
    if (CH_UNLIKELY(s && s->os_coro == co)) {
      sigset_t k;
      ch_sig_to_set(mask, &k);
      ch_sys4(SYS_rt_sigprocmask, SIG_SETMASK, &k, NULL, _NSIG / 8);
      atomic_store(&main_blocked, mask);
    }
  }
  take_proc_pending(co, ~mask);
  if (atomic_load(&co->pending_sigs) & ~mask) ch_sig_deliver(co);
}

int ch_sig_procmask(ch_coro *co, int how, const sigset_t *set, sigset_t *old) {
  uint64_t cur = atomic_load_explicit(&co->sigmask, memory_order_relaxed);
  if (set) {
    uint64_t m = ch_sig_from_set(set) & ~(BIT(32) | BIT(33)); /* glibc keeps its own out */
    switch (how) {
      case SIG_BLOCK: m = cur | m; break;
      case SIG_UNBLOCK: m = cur & ~m; break;
      case SIG_SETMASK: break;
      default: return -EINVAL;
    }
    if (old) ch_sig_to_set(cur, old);
    set_mask(co, m);
  } else if (old) {
    ch_sig_to_set(cur, old);
  }
  return 0;
}

/* Raw, for the hook layer while a handler runs (its sa_mask): no bookkeeping, no delivery. */
uint64_t ch_sig_mask_swap(ch_coro *co, uint64_t mask) {
  return atomic_exchange_explicit(&co->sigmask, mask & ~UNBLOCKABLE, memory_order_seq_cst);
}

void ch_sig_pending(ch_coro *co, sigset_t *out) {
  sigset_t k;
  ch_sys(SYS_rt_sigpending, &k, _NSIG / 8, 0); /* the worker's own and the process's */
  uint64_t m = ch_sig_from_set(&k) | atomic_load(&co->pending_sigs) | atomic_load(&proc_pending);
  ch_sig_to_set(m & atomic_load(&co->sigmask), out);
}

/* ---- waits --------------------------------------------------------------------------------------- */

/* Take a signal of set pending for co (its own, or the process's that nobody took): its number and
 * siginfo, or 0. */
static int take(ch_coro *co, uint64_t set, siginfo_t *info) {
  take_proc_pending(co, set);
  uint64_t p = atomic_load(&co->pending_sigs) & set;
  while (p) {
    int sig = __builtin_ctzll(p) + 1;
    p &= p - 1;
    if (!(atomic_fetch_and(&co->pending_sigs, ~BIT(sig)) & BIT(sig))) continue;
    siginfo_t buf;
    const siginfo_t *si = info_of(co, sig, &buf);
    if (si) {
      *info = *si;
    } else {
      memset(info, 0, sizeof *info);
      info->si_signo = sig;
      info->si_code = SI_TKILL;
      info->si_pid = ch_process_pid;
      info->si_uid = (uid_t)ch_sys0(SYS_getuid);
    }
    return sig;
  }
  return 0;
}

/* Park co until a signal of `set` is pending for it (taken: > 0, *info filled), fd (if >= 0)
 * becomes readable (0: the caller reads it), a handler interrupts the wait as `intr` says (-EINTR),
 * or the deadline passes (-EAGAIN). */
static int wait_sig(ch_coro *co, uint64_t set, int fd, int intr, uint64_t deadline, siginfo_t *info) {
  unsigned handled = co->sig_handled;
  atomic_store(&co->sigwait_set, set);
  co->sig_waiting = true;
  int r;
  for (;;) {
    if ((r = take(co, set, info)) > 0) break;
    if (co->sig_handled != handled) {
      r = -EINTR;
      break;
    }
    co->intr = intr;
    co->wait_kind = CH_WAIT_OTHER;
    int w = fd >= 0 ? ch_fd_wait(fd, COHOOK_READABLE, deadline) : ch_fd_wait_any(NULL, NULL, 0, deadline);
    co->intr = CH_INTR_NONE;
    if (w > 0) {
      r = 0;
      if (fd >= 0) break;
    } else if (w == -ETIMEDOUT) {
      r = take(co, set, info);
      if (r == 0) r = -EAGAIN;
      break;
    } else if (w != -EINTR) {
      r = w;
      break;
    }
  }
  co->sig_waiting = false;
  atomic_store(&co->sigwait_set, 0);
  return r;
}

static void from_sfd(const struct signalfd_siginfo *f, siginfo_t *info) {
  memset(info, 0, sizeof *info);
  info->si_signo = (int)f->ssi_signo;
  info->si_errno = f->ssi_errno;
  info->si_code = f->ssi_code;
  info->si_pid = (pid_t)f->ssi_pid;
  info->si_uid = (uid_t)f->ssi_uid;
  info->si_status = f->ssi_status;
  info->si_value.sival_ptr = (void *)(uintptr_t)f->ssi_ptr;
}

/* sigtimedwait for a coroutine-thread (deadline CH_NO_DEADLINE: sigwaitinfo): the signal number,
 * -EAGAIN, -EINTR. Signals pending for the process come through a signalfd of this call's own,
 * made only if none is pending at once. */
long ch_sig_timedwait(ch_coro *co, const sigset_t *setp, siginfo_t *info, uint64_t deadline) {
  uint64_t set = ch_sig_from_set(setp) & ~UNBLOCKABLE;
  siginfo_t tmp;
  if (!info) info = &tmp;
  int sig = take(co, set, info);
  if (sig) return sig;
  sigset_t k;
  ch_sig_to_set(set, &k);
  struct timespec zero = {0, 0};
  long r = ch_sys4(SYS_rt_sigtimedwait, &k, info, &zero, _NSIG / 8); /* the process's, at once */
  if (r > 0 || deadline == 0) return r;
  int fd = (int)ch_sys4(SYS_signalfd4, -1, &set, 8, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return fd;
  fd = ch_fd_make_internal(fd);
  for (;;) {
    r = wait_sig(co, set, fd, CH_INTR_ALWAYS, deadline, info);
    if (r != 0) break;
    struct signalfd_siginfo f;
    long n = ch_sys(SYS_read, fd, &f, sizeof f);
    if (n == (long)sizeof f) {
      from_sfd(&f, info);
      r = (long)f.ssi_signo;
      break;
    }
  }
  ch_fd_closed(fd);
  ch_sys(SYS_close, fd, 0, 0);
  return r;
}

/* A read of the program's signalfd (mask `set`) by a coroutine-thread: what is pending for the
 * coroutine itself comes first (the kernel gives a thread its own pending signals too), then the
 * fd; a blocking one parks. Returns bytes or -errno. */
long ch_sig_signalfd_read(ch_coro *co, int fd, uint64_t set, bool nonblock, void *buf, size_t n) {
  if (n < sizeof(struct signalfd_siginfo)) return -EINVAL;
  set &= ~UNBLOCKABLE;
  sigset_t k;
  ch_sig_to_set(set, &k);
  for (;;) {
    siginfo_t info;
    int sig = take(co, set, &info);
    /* What the process (or this worker) has pending: dequeued as the fd's read would, without
     * ever blocking the worker on a blocking fd. */
    if (!sig) {
      struct timespec zero = {0, 0};
      long r = ch_sys4(SYS_rt_sigtimedwait, &k, &info, &zero, _NSIG / 8);
      if (r > 0) sig = (int)r;
      else if (r != -EAGAIN) return r;
    }
    if (!sig && nonblock) return -EAGAIN;
    if (!sig) {
      /* signal(7): a signalfd read is restarted after an SA_RESTART handler */
      int w = wait_sig(co, set, fd, CH_INTR_NORESTART, CH_NO_DEADLINE, &info);
      if (w == -EINTR) return -EINTR;
      if (w < 0) return w;
      if (w == 0) continue; /* the fd is readable: dequeue above */
      sig = w;
    }
    struct signalfd_siginfo f;
    memset(&f, 0, sizeof f);
    f.ssi_signo = (uint32_t)sig;
    f.ssi_errno = info.si_errno;
    f.ssi_code = info.si_code;
    f.ssi_pid = (uint32_t)info.si_pid;
    f.ssi_uid = (uint32_t)info.si_uid;
    f.ssi_ptr = (uint64_t)(uintptr_t)info.si_value.sival_ptr;
    if (sig == SIGCHLD) f.ssi_status = info.si_status;
    memcpy(buf, &f, sizeof f);
    return (long)sizeof f; /* one at a time (the kernel fills the buffer with as many as fit) */
  }
}

/* sigsuspend (and pause: the current mask): wait with `mask` until a handler has run. -EINTR. */
long ch_sig_suspend(ch_coro *co, const sigset_t *mask) {
  uint64_t old = atomic_load(&co->sigmask);
  unsigned handled = co->sig_handled;
  co->sig_waiting = true; /* before the mask: a handler it lets through ends the wait */
  set_mask(co, mask ? ch_sig_from_set(mask) & ~(BIT(32) | BIT(33)) : old);
  while (co->sig_handled == handled) {
    co->intr = CH_INTR_ALWAYS;
    co->wait_kind = CH_WAIT_OTHER;
    ch_fd_wait_any(NULL, NULL, 0, CH_NO_DEADLINE);
    co->intr = CH_INTR_NONE;
  }
  co->sig_waiting = false;
  set_mask(co, old);
  return -EINTR;
}

/* ppoll/pselect/epoll_pwait with a mask: install it for the wait, as the kernel does atomically. A
 * pending signal it lets through runs now and the call ends with EINTR before looking at the fds;
 * one that comes later interrupts the wait (the callers wait with CH_INTR_ALWAYS). */
bool ch_sig_mask_enter(ch_coro *co, const sigset_t *mask, uint64_t *saved) {
  *saved = atomic_load(&co->sigmask);
  unsigned handled = co->sig_handled;
  co->sig_waiting = true;
  set_mask(co, ch_sig_from_set(mask) & ~(BIT(32) | BIT(33)));
  return co->sig_handled == handled;
}

void ch_sig_mask_leave(ch_coro *co, uint64_t saved) {
  co->sig_waiting = false;
  set_mask(co, saved);
}

/* The default action of sig, taken on this OS thread: the kernel's (terminate, dump, stop), by
 * letting it through here for one tgkill; nothing for those whose default is to ignore. */
void ch_sig_default(int sig) {
  if (sig == SIGCHLD || sig == SIGCONT || sig == SIGURG || sig == SIGWINCH) return;
  sigset_t one, old;
  sigemptyset(&one);
  sigaddset(&one, sig);
  ch_sys4(SYS_rt_sigprocmask, SIG_UNBLOCK, &one, &old, _NSIG / 8);
  ch_sys(SYS_tgkill, ch_getpid(), ch_gettid(), sig);
  ch_sys4(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, _NSIG / 8);
}
