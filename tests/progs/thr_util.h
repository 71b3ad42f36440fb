/* thr_util.h — shared by the thr_* programs: pthread calls return an error number, printed by name;
 * expect() prints the result (what is compared natively vs preloaded) and counts mismatches;
 * thr_in_ms() makes the deadline of a timed wait. */
#ifndef THR_UTIL_H
#define THR_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "progs.h"

static const char *en(int e) {
  static char buf[32];
  switch (e) {
  case 0: return "OK";
  case EAGAIN: return "EAGAIN";
  case EBUSY: return "EBUSY";
  case EDEADLK: return "EDEADLK";
  case EINVAL: return "EINVAL";
  case ENOTRECOVERABLE: return "ENOTRECOVERABLE";
  case ENOTSUP: return "ENOTSUP";
  case EOWNERDEAD: return "EOWNERDEAD";
  case EPERM: return "EPERM";
  case ESRCH: return "ESRCH";
  case ETIMEDOUT: return "ETIMEDOUT";
  default: snprintf(buf, sizeof buf, "E%d", e); return buf;
  }
}

static int failures;

static void expect(const char *what, int got, int want) {
  printf("%s: %s\n", what, en(got));
  if (got != want) {
    fprintf(stderr, "%s: got %s, expected %s\n", what, en(got), en(want));
    failures++;
  }
}

/* The absolute time ms milliseconds from now on clock clk (ms may be negative: a time in the past),
 * for the timed waits. */
static inline struct timespec thr_in_ms(clockid_t clk, long ms) {
  struct timespec ts;
  CHECK(clock_gettime(clk, &ts) == 0);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  if (ts.tv_nsec < 0) ts.tv_sec--, ts.tv_nsec += 1000000000L;
  return ts;
}

#endif
