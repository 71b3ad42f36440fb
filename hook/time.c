/*
 * time.c — sleeps. A sleeping coroutine parks on a timer; the thread runs the others.
 * Interrupted by a signal handler (any: nanosleep is never restarted), they return EINTR and the
 * remaining time, as the kernel does.
 */
#include "hook.h"

static int64_t ts_ns(const struct timespec *ts) {
  return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static void ns_ts(int64_t ns, struct timespec *ts) {
  if (ns < 0) ns = 0;
  ts->tv_sec = ns / 1000000000;
  ts->tv_nsec = ns % 1000000000;
}

static bool valid(const struct timespec *ts) {
  return ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000 && ts->tv_sec >= 0;
}

CH_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem) {
  if (ch_tls_bypass || !req) return REAL(nanosleep)(req, rem);
  if (!valid(req)) return (int)ch_ret(-EINVAL);
  CH_STAT_CALL(CH_FAM_SLEEP);
  uint64_t deadline = ch_deadline_after(ts_ns(req));
  long r = ch_io_sleep_until(deadline);
  if (r == -EINTR && rem) ns_ts((int64_t)(deadline - ch_now_ns()), rem);
  if (r == CH_E_NOSCHED) return REAL(nanosleep)(req, rem); /* no scheduler serves here: block */
  return (int)ch_ret(r);
}

CH_EXPORT int usleep(useconds_t us) {
  struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};
  return nanosleep(&ts, NULL);
}

/* As glibc: on interruption, the whole seconds not slept. */
CH_EXPORT unsigned int sleep(unsigned int s) {
  int saved = errno;
  struct timespec ts = {.tv_sec = s, .tv_nsec = 0};
  if (nanosleep(&ts, &ts) < 0) return (unsigned int)ts.tv_sec;
  errno = saved;
  return 0;
}

/* Returns an error number, not -1/errno, as POSIX specifies for clock_nanosleep. */
CH_EXPORT int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem) {
  bool known = clk == CLOCK_REALTIME || clk == CLOCK_MONOTONIC || clk == CLOCK_BOOTTIME || clk == CLOCK_TAI;
  if (ch_tls_bypass || !known || !req) return REAL(clock_nanosleep)(clk, flags, req, rem);
  if (!valid(req)) return EINVAL;
  CH_STAT_CALL(CH_FAM_SLEEP);
  int64_t rel = ts_ns(req);
  if (flags & TIMER_ABSTIME) {
    /* An absolute time on the requested clock becomes a deadline on ours. A later jump of the
     * realtime clock is not followed (a known difference, noted in the README). */
    struct timespec now;
    clock_gettime(clk, &now);
    rel -= ts_ns(&now);
  }
  uint64_t deadline = rel <= 0 ? ch_now_ns() : ch_deadline_after(rel);
  long r = ch_io_sleep_until(deadline);
  if (r == CH_E_NOSCHED) return REAL(clock_nanosleep)(clk, flags, req, rem);
  if (r == -EINTR) {
    if (rem && !(flags & TIMER_ABSTIME)) ns_ts((int64_t)(deadline - ch_now_ns()), rem);
    return EINTR;
  }
  return 0;
}
