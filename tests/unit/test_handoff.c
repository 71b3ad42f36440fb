/* test_handoff.c — a worker's scheduler moves to another OS thread when its coroutine blocks the OS
 * thread in a call the runtime does not see (handoff.c): the other coroutines of that scheduler keep
 * their timing, the stuck one comes back on the new OS thread with its own TLS (errno) intact, and the
 * spare OS thread is counted. Runs on one worker, so without a handoff the sleeper would wait for the
 * blocked coroutine. */
#include <pthread.h>

#include "internal.h"
#include "sys.h"
#include "testutil.h"

#define BLOCK_MS 300

struct blocker {
  int tid_before, tid_after;
  int errno_after;
};

static void *blocker_fn(void *arg) {
  struct blocker *b = arg;
  b->tid_before = ch_gettid();
  errno = 1234;
  /* A raw system call: the runtime cannot see it, the OS thread blocks. */
  struct timespec ts = {.tv_sec = 0, .tv_nsec = BLOCK_MS * 1000000L};
  ch_sys(SYS_nanosleep, &ts, NULL, 0);
  errno = 1234;
  /* Back into the runtime: the scheduler has gone to another OS thread meanwhile; this coroutine
   * follows it there. */
  ch_sleep_until(ch_now_ns() + 1000000);
  b->errno_after = errno;
  b->tid_after = ch_gettid();
  return NULL;
}

struct sleeper {
  uint64_t took_ns;
};

static void *sleeper_fn(void *arg) {
  struct sleeper *s = arg;
  uint64_t t0 = ch_now_ns();
  for (int i = 0; i < 20; i++) ch_sleep_until(ch_now_ns() + 5000000); /* 20 x 5 ms */
  s->took_ns = ch_now_ns() - t0;
  return NULL;
}

static void test_stuck_coroutine_hands_off(void **state) {
  (void)state;
  if (!ch_handoff_enabled()) skip(); /* COHOOK_TLS=worker, no membarrier (valgrind) */
  uint64_t handoffs0 = atomic_load(&ch_stats.handoffs);
  struct blocker b = {0};
  struct sleeper s = {0};
  ch_coro *cb, *cs;
  assert_int_equal(ch_thread_create(&cb, blocker_fn, &b, 0, false), 0);
  assert_int_equal(ch_thread_create(&cs, sleeper_fn, &s, 0, false), 0);
  assert_int_equal(ch_join(cs, NULL), 0);
  assert_int_equal(ch_join(cb, NULL), 0);
  /* 100 ms of sleeps: without the handoff at least BLOCK_MS, with it about 100 + the threshold. */
  assert_true(s.took_ns < (uint64_t)(BLOCK_MS - 50) * 1000000u);
  assert_true(atomic_load(&ch_stats.handoffs) > handoffs0);
  assert_true(atomic_load(&ch_stats.spares_made) >= 1);
  assert_int_equal(b.errno_after, 1234);       /* its TLS came along */
  assert_int_not_equal(b.tid_after, b.tid_before); /* on another OS thread now */
}

/* Sections nest and cost nothing where no OS thread can lose its scheduler (this main thread). */
static void test_sections_outside_workers(void **state) {
  (void)state;
  assert_null(ch_tls_m);
  ch_rt_enter();
  ch_rt_enter();
  ch_rt_leave();
  ch_rt_leave();
  struct ch_sched *s = ch_sched_get();
  assert_non_null(s);
  assert_true(ch_rt_owned(s));
  assert_null(atomic_load(&s->m)); /* not a worker: never handed over */
}

int main(void) {
  ch_config.workers = 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sections_outside_workers),
      cmocka_unit_test(test_stuck_coroutine_hands_off),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
