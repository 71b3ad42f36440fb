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

/* Run the program's handler for a pthread_kill'ed coroutine-thread, on that coroutine (an upcall:
 * real.c registers it with the runtime). */
bool ch_hook_run_handler(int sig) {
  if (sig <= 0 || sig >= _NSIG || !atomic_load(&wrapped[sig])) {
    struct sigaction k;
    REAL(sigaction)(sig, NULL, &k);
    if (k.sa_handler == SIG_DFL || k.sa_handler == SIG_IGN) {
      if (k.sa_handler == SIG_DFL) kill(getpid(), sig); /* default action: the process's */
      return true;
    }
  }
  struct sigaction a = prog[sig];
  siginfo_t si;
  memset(&si, 0, sizeof si);
  si.si_signo = sig;
  si.si_code = SI_TKILL;
  si.si_pid = getpid();
  si.si_uid = getuid();
  int saved = errno;
  ch_tls_bypass++;
  if (a.sa_flags & SA_SIGINFO) a.sa_sigaction(sig, &si, NULL);
  else if (a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN) a.sa_handler(sig);
  ch_tls_bypass--;
  errno = saved;
  return (a.sa_flags & SA_RESTART) != 0;
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
