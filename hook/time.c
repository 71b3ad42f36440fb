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

/* ---- CPU-time clocks: a coroutine-thread's own (runtime/cpuclock.c) ---------------------------------
 * The kernel's thread CPU clock measures the OS thread, which runs many coroutine-threads: the calling
 * thread's clock (CLOCK_THREAD_CPUTIME_ID) and the ids pthread_getcpuclockid gives for
 * coroutine-threads are answered from the runtime's accounting. Every other clock — the wall and
 * monotonic clocks above all, which programs read constantly — goes straight on to libc's vDSO call:
 * one compare and one indirect call more than natively. times() and clock() stay process-wide, as
 * natively (clock() reaches the kernel inside libc, not through this hook). */

static int cpu_clock_gettime(clockid_t clk, struct timespec *ts) {
  ch_coro *self = ch_tls_bypass ? NULL : ch_thread_self();
  uint64_t ns;
  if (clk == CLOCK_THREAD_CPUTIME_ID && self) {
    ns = ch_cpuclock_self(self);
  } else if (ch_cpuclock_is_ours(clk) && !ch_tls_bypass) {
    int r = ch_cpuclock_get(clk, self, &ns);
    if (r < 0) return (int)ch_ret(r);
  } else {
    return REAL(clock_gettime)(clk, ts);
  }
  ns_ts((int64_t)ns, ts);
  return 0;
}

CH_EXPORT int clock_gettime(clockid_t clk, struct timespec *ts) {
  if (CH_LIKELY(clk >= 0 && clk != CLOCK_THREAD_CPUTIME_ID)) return REAL(clock_gettime)(clk, ts);
  return cpu_clock_gettime(clk, ts);
}

/* Our ids name a clock of nanosecond resolution while their thread lives, as the kernel's do. */
CH_EXPORT int clock_getres(clockid_t clk, struct timespec *res) {
  uint64_t ns;
  if (!ch_cpuclock_is_ours(clk) || ch_tls_bypass) return REAL(clock_getres)(clk, res);
  int r = ch_cpuclock_get(clk, ch_thread_self(), &ns);
  if (r < 0) return (int)ch_ret(r);
  if (res) *res = (struct timespec){.tv_sec = 0, .tv_nsec = 1};
  return 0;
}

/* RUSAGE_THREAD from a coroutine-thread: its own CPU time (split into user and system time as the
 * kernel splits its OS thread's, see cpuclock.c); everything else is the kernel's answer. */
CH_EXPORT int getrusage(int who, struct rusage *ru) {
  ch_coro *self = who == RUSAGE_THREAD && !ch_tls_bypass ? ch_thread_self() : NULL;
  if (!self) return REAL(getrusage)(who, ru);
  return (int)ch_ret(ch_cpuclock_rusage_thread(self, ru));
}
