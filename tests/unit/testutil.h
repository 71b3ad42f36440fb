/* testutil.h — helpers shared by the cmocka unit tests. */
#ifndef CH_TESTUTIL_H
#define CH_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sanitize.h"

static inline uint64_t tu_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Slow-down factor: timing bounds widen under valgrind and sanitizers. */
static inline int tu_slow(void) {
#ifdef CH_ASAN
  return 4;
#else
  return CH_ON_VALGRIND() ? 20 : 1;
#endif
}

struct tu_child {
  int status;      /* as from waitpid */
  char err[4096];  /* what the child wrote to stderr */
};

/* Run fn() in a forked child with stderr captured; the child exits 0 if fn returns. */
static inline void tu_run_child(void (*fn)(void), struct tu_child *out) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    dup2(p[1], 2);
    fn();
    _exit(0);
  }
  close(p[1]);
  size_t n = 0;
  ssize_t r;
  while (n < sizeof out->err - 1 && (r = read(p[0], out->err + n, sizeof out->err - 1 - n)) > 0)
    n += (size_t)r;
  out->err[n] = 0;
  close(p[0]);
  assert_int_equal(waitpid(pid, &out->status, 0), pid);
}

#endif
