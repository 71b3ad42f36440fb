/*
 * signal.c — sigaction/signal: the program's handlers run, wrapped.
 *
 * Why wrap: a coroutine parked in a blocking call is not in a syscall, so the kernel cannot make that
 * call fail with EINTR. The wrapper tells the runtime a handler ran (and whether it was installed with
 * SA_RESTART), which then ends the interrupted wait with EINTR where the kernel would have. While the
 * program's handler runs, hooked calls go straight to libc (design.md §3.7).
 *
 * The program sees exactly what it installed: sigaction's old-action answers come from our record,
 * not from the kernel (which holds our wrapper).
 */
#include <string.h>

#include "hook.h"

static struct sigaction prog[_NSIG];
static _Atomic unsigned char wrapped[_NSIG];

static void wrapper(int sig, siginfo_t *si, void *uc) {
  /* The runtime's kick of an offload helper out of its blocking syscall (runtime/offload.c): the
   * program's handler already ran where the program's thread was interrupted. */
  if (si && si->si_code == SI_QUEUE && si->si_value.sival_ptr == CH_KICK_TAG) return;
  int saved = errno;
  struct sigaction a = prog[sig];
  if (a.sa_flags & SA_RESETHAND) { /* the kernel just reset it; so does the program's view */
    prog[sig].sa_handler = SIG_DFL;
    prog[sig].sa_flags &= ~SA_SIGINFO;
    atomic_store(&wrapped[sig], 0);
  }
  ch_signal_arrived((a.sa_flags & SA_RESTART) != 0);
  errno = saved;
  ch_tls_bypass++;
  if (a.sa_flags & SA_SIGINFO) a.sa_sigaction(sig, si, uc);
  else if (a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN) a.sa_handler(sig);
  ch_tls_bypass--;
}

/* Run the program's handler for a signal delivered to the running coroutine-thread (pthread_kill,
 * or a process-directed one the runtime handed it: si), on that coroutine (an upcall: real.c
 * registers it with the runtime). Its mask meanwhile is its own plus sa_mask and the signal itself
 * (unless SA_NODEFER), as the kernel sets a thread's. */
int ch_hook_run_handler(int sig, const siginfo_t *given) {
  if (sig <= 0 || sig >= _NSIG || !atomic_load(&wrapped[sig])) {
    struct sigaction k;
    REAL(sigaction)(sig, NULL, &k);
    if (k.sa_handler == SIG_DFL) ch_sig_default(sig); /* the process's: terminate, stop ... */
    if (k.sa_handler == SIG_DFL || k.sa_handler == SIG_IGN) return 0;
  }
  struct sigaction a = prog[sig];
  if (a.sa_flags & SA_RESETHAND) { /* one-shot, as the kernel resets it on delivery */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
  }
  siginfo_t si;
  if (given) {
    si = *given;
  } else {
    memset(&si, 0, sizeof si);
    si.si_signo = sig;
    si.si_code = SI_TKILL;
    si.si_pid = getpid();
    si.si_uid = getuid();
  }
  ch_coro *co = ch_thread_self();
  uint64_t saved = 0;
  if (co) {
    uint64_t m = atomic_load(&co->sigmask) | ch_sig_from_set(&a.sa_mask);
    if (!(a.sa_flags & SA_NODEFER)) m |= 1ull << (sig - 1);
    saved = ch_sig_mask_swap(co, m);
  }
  int saved_errno = errno;
  ch_tls_bypass++;
  if (a.sa_flags & SA_SIGINFO) a.sa_sigaction(sig, &si, NULL);
  else if (a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN) a.sa_handler(sig);
  ch_tls_bypass--;
  errno = saved_errno;
  if (co) ch_sig_mask_swap(co, saved);
  return CH_SIG_RAN | ((a.sa_flags & SA_RESTART) ? CH_SIG_RESTART : 0);
}

/* The upcall intr_signal: a signal the kernel would let interrupt a blocking syscall (a handler,
 * ours, without SA_RESTART), whose delivery changes nothing else (no SA_RESETHAND; not one of the
 * synchronous signals). */
int ch_hook_intr_signal(void) {
  for (int sig = 1; sig < _NSIG; sig++) {
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP || sig == SIGSYS)
      continue;
    if (atomic_load(&wrapped[sig]) && !(prog[sig].sa_flags & (SA_RESTART | SA_RESETHAND))) return sig;
  }
  return 0;
}

bool ch_sig_restarts(int sig) {
  return sig > 0 && sig < _NSIG && atomic_load(&wrapped[sig]) && (prog[sig].sa_flags & SA_RESTART);
}

CH_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  if (sig <= 0 || sig >= _NSIG || !act || act->sa_handler == SIG_DFL || act->sa_handler == SIG_IGN) {
    struct sigaction kold;
    int r = REAL(sigaction)(sig, act, old ? &kold : NULL);
    if (r == 0 && sig > 0 && sig < _NSIG) {
      if (old) *old = atomic_load(&wrapped[sig]) ? prog[sig] : kold;
      if (act) atomic_store(&wrapped[sig], 0);
    }
    return r;
  }
  struct sigaction w = *act, kold, knew;
  w.sa_sigaction = wrapper;
  w.sa_flags |= SA_SIGINFO;
  int r = REAL(sigaction)(sig, &w, &kold);
  if (r != 0) return r;
  if (old) *old = atomic_load(&wrapped[sig]) ? prog[sig] : kold;
  prog[sig] = *act;
  /* Read back as glibc would: with the flags libc itself adds (SA_RESTORER on x86-64). */
  if (REAL(sigaction)(sig, NULL, &knew) == 0) prog[sig].sa_flags |= knew.sa_flags & ~(SA_SIGINFO | act->sa_flags) & 0x04000000;
  atomic_store(&wrapped[sig], 1);
  return 0;
}

/* glibc implements these with its internal sigaction, which we would not see. */
CH_EXPORT int siginterrupt(int sig, int flag) {
  struct sigaction a;
  if (sigaction(sig, NULL, &a) < 0) return -1;
  if (flag) a.sa_flags &= ~SA_RESTART;
  else a.sa_flags |= SA_RESTART;
  return sigaction(sig, &a, NULL);
}

static __sighandler_t install(int sig, __sighandler_t h, int flags, bool block_self) {
  struct sigaction act, old;
  memset(&act, 0, sizeof act);
  act.sa_handler = h;
  sigemptyset(&act.sa_mask);
  bool real_handler = h != SIG_DFL && h != SIG_IGN; /* glibc sets no flags to restore a default */
  if (real_handler && block_self && sig > 0 && sig < _NSIG) sigaddset(&act.sa_mask, sig);
  act.sa_flags = real_handler ? flags : 0;
  if (sigaction(sig, &act, &old) < 0) return SIG_ERR;
  return old.sa_handler;
}

/* System V semantics: one-shot, not blocked while it runs, calls not restarted. */
CH_EXPORT __sighandler_t sysv_signal(int sig, __sighandler_t h) {
  return install(sig, h, SA_RESETHAND | SA_NODEFER, false);
}
CH_EXPORT __sighandler_t __sysv_signal(int sig, __sighandler_t h) { return sysv_signal(sig, h); }
CH_EXPORT __sighandler_t bsd_signal(int sig, __sighandler_t h) { return install(sig, h, SA_RESTART, true); }

/* glibc's signal() has BSD semantics: SA_RESTART, the signal blocked during its handler. It calls
 * its internal sigaction directly, so it must be provided here to be wrapped at all. */
CH_EXPORT __sighandler_t signal(int sig, __sighandler_t h) { return install(sig, h, SA_RESTART, true); }

/* ---- masks and waits of coroutine-threads (runtime/sigmask.c) ------------------------------------- *
 *
 * From a coroutine-thread these act on its own mask and pending set; from an OS thread they are
 * libc's, and the main thread's mask is noted (the runtime dispatches the process-directed signals
 * it blocks but some coroutine-thread does not). */

static ch_coro *sig_coro(void) { return ch_tls_bypass ? NULL : ch_thread_self(); }

/* The main thread's mask after a change it made through libc. */
static void note_main(int how, const sigset_t *set, const sigset_t *old) {
  if (!set || !ch_sig_on_main()) return;
  uint64_t o = ch_sig_from_set(old), m = ch_sig_from_set(set);
  ch_sig_main_mask(how == SIG_BLOCK ? o | m : how == SIG_UNBLOCK ? o & ~m : m);
}

/* An OS thread's mask change goes to libc (pthread_sigmask and sigprocmask answer errors in their own
 * conventions; fn's answer is returned as it is), noted if it is the main thread's. */
static int os_thread_mask(int (*fn)(int, const sigset_t *, sigset_t *), int how, const sigset_t *set, sigset_t *old) {
  sigset_t o;
  int r = fn(how, set, &o);
  if (r == 0) {
    note_main(how, set, &o);
    if (old) *old = o;
  }
  return r;
}

CH_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old) {
  ch_coro *co = sig_coro();
  if (!co) return os_thread_mask(REAL(pthread_sigmask), how, set, old);
  return -ch_sig_procmask(co, how, set, old);
}

CH_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old) {
  ch_coro *co = sig_coro();
  if (!co) return os_thread_mask(REAL(sigprocmask), how, set, old);
  return (int)ch_ret(ch_sig_procmask(co, how, set, old));
}

CH_EXPORT int sigpending(sigset_t *set) {
  ch_coro *co = sig_coro();
  if (!co) return REAL(sigpending)(set);
  ch_sig_pending(co, set);
  return 0;
}

CH_EXPORT int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *ts) {
  ch_coro *co = sig_coro();
  if (!co) return REAL(sigtimedwait)(set, info, ts);
  if (ts && (ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000 || ts->tv_sec < 0)) return (int)ch_ret(-EINVAL);
  CH_STAT_CALL(CH_FAM_SLEEP);
  uint64_t deadline = !ts ? CH_NO_DEADLINE
                      : ts->tv_sec == 0 && ts->tv_nsec == 0
                          ? 0
                          : ch_deadline_after((int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec);
  return (int)ch_ret(ch_sig_timedwait(co, set, info, deadline));
}

CH_EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *info) {
  if (!sig_coro()) return REAL(sigwaitinfo)(set, info);
  return sigtimedwait(set, info, NULL);
}

/* POSIX: sigwait is not interrupted by handlers (glibc retries on EINTR); returns the error. */
CH_EXPORT int sigwait(const sigset_t *set, int *sig) {
  ch_coro *co = sig_coro();
  if (!co) return REAL(sigwait)(set, sig);
  CH_STAT_CALL(CH_FAM_SLEEP);
  long r;
  do r = ch_sig_timedwait(co, set, NULL, CH_NO_DEADLINE);
  while (r == -EINTR);
  if (r < 0) return (int)-r;
  *sig = (int)r;
  return 0;
}

CH_EXPORT int sigsuspend(const sigset_t *mask) {
  ch_coro *co = sig_coro();
  if (!co) return REAL(sigsuspend)(mask);
  CH_STAT_CALL(CH_FAM_SLEEP);
  return (int)ch_ret(ch_sig_suspend(co, mask));
}

CH_EXPORT int pause(void) {
  ch_coro *co = sig_coro();
  if (!co) return REAL(pause)();
  CH_STAT_CALL(CH_FAM_SLEEP);
  return (int)ch_ret(ch_sig_suspend(co, NULL));
}

/* raise() is a tgkill to the calling task: for a coroutine-thread, its own pending set, and a
 * signal it does not block is handled before raise returns, as natively. */
CH_EXPORT int raise(int sig) {
  ch_coro *co = sig_coro();
  if (!co) return REAL(raise)(sig);
  if (sig <= 0 || sig >= _NSIG) return (int)ch_ret(-EINVAL);
  ch_coro_kill(co, sig, ch_sig_restarts(sig));
  ch_sig_deliver(co);
  return 0;
}

/* ---- signalfd: reads by a coroutine-thread see its own pending signals too, and park ---------- */

#define SFD_MAX 4096
static struct {
  _Atomic uint64_t mask;
  _Atomic uint32_t gen; /* the fd's generation when made (fdtab.c): a reused number is no match */
  _Atomic bool on;
} sfds[SFD_MAX];

void ch_hook_signalfd_made(int fd, const sigset_t *mask) {
  if (fd < 0 || fd >= SFD_MAX) return;
  atomic_store(&sfds[fd].mask, ch_sig_from_set(mask));
  atomic_store(&sfds[fd].gen, ch_fd_gen(fd));
  atomic_store(&sfds[fd].on, true);
}

long ch_hook_signalfd_read(int fd, void *buf, size_t n) {
  ch_coro *co = sig_coro();
  if (!co || fd < 0 || fd >= SFD_MAX || !atomic_load(&sfds[fd].on) || atomic_load(&sfds[fd].gen) != ch_fd_gen(fd))
    return CH_E_PASS;
  struct ch_fdinfo *fi = ch_fd_info(fd);
  bool nonblock = fi && atomic_load(&fi->user_nonblock);
  return ch_sig_signalfd_read(co, fd, atomic_load(&sfds[fd].mask), nonblock, buf, n);
}

/* Keep the wrapper's view of the main thread's mask from the start (we run on it, at load). */
__attribute__((constructor(102))) static void sig_main_init(void) {
  sigset_t cur;
  REAL(sigprocmask)(SIG_BLOCK, NULL, &cur);
  ch_sig_init_main(ch_sig_from_set(&cur));
}
