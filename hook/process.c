/*
 * process.c — fork, waiting for children, system().
 *
 * fork: the child keeps only the forking coroutine (as a forked process keeps only the calling
 * thread) and gets a fresh runtime: the parent's epoll instance is shared through the inherited fd
 * and must never be touched from the child.
 *
 * The blocking waits (no WNOHANG) and system() on a worker park the coroutine instead of blocking
 * the worker (runtime/proc.c). libc's wait(), wait3() and waitpid() reach wait4 inside libc, where
 * no hook sees it, so each entry point is hooked.
 */
#include "hook.h"

CH_EXPORT pid_t fork(void) {
  pid_t p = REAL(fork)();
  if (p == 0) {
    ch_sched_after_fork();
    ch_sig_after_fork();
    ch_cpuclock_after_fork(ch_thread_self());
  }
  return p;
}

CH_EXPORT pid_t wait4(pid_t pid, int *status, int options, struct rusage *ru) {
  long r = ch_proc_wait4(pid, status, options, ru);
  if (r != CH_E_PASS) return (pid_t)ch_ret(r);
  return REAL(wait4)(pid, status, options, ru);
}

CH_EXPORT pid_t waitpid(pid_t pid, int *status, int options) {
  long r = ch_proc_wait4(pid, status, options, NULL);
  if (r != CH_E_PASS) return (pid_t)ch_ret(r);
  return REAL(waitpid)(pid, status, options);
}

CH_EXPORT pid_t wait(int *status) {
  long r = ch_proc_wait4(-1, status, 0, NULL);
  if (r != CH_E_PASS) return (pid_t)ch_ret(r);
  return REAL(wait)(status);
}

CH_EXPORT pid_t wait3(int *status, int options, struct rusage *ru) {
  long r = ch_proc_wait4(-1, status, options, ru);
  if (r != CH_E_PASS) return (pid_t)ch_ret(r);
  return REAL(wait3)(status, options, ru);
}

CH_EXPORT int waitid(idtype_t type, id_t id, siginfo_t *info, int options) {
  long r = ch_proc_waitid((int)type, (int)id, info, options);
  if (r != CH_E_PASS) return (int)ch_ret(r);
  return REAL(waitid)(type, id, info, options);
}

CH_EXPORT int system(const char *line) {
  int status, err;
  if (!ch_proc_system(line, &status, &err)) return REAL(system)(line);
  if (err == EINTR) ch_cancel_test(); /* a cancellation request ended the wait: it acts here */
  if (err) errno = err;
  return status;
}
