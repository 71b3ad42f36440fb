/*
 * process.c — fork. The child keeps only the forking coroutine (as a forked process keeps only the
 * calling thread) and gets a fresh runtime: the parent's epoll instance is shared through the
 * inherited fd and must never be touched from the child.
 */
#include "hook.h"

CH_EXPORT pid_t fork(void) {
  pid_t p = REAL(fork)();
  if (p == 0) ch_sched_after_fork();
  return p;
}
