/* test_api.c — the public helpers: cohook_map's bounded concurrency, cohook_self, argument checks. */
#include "internal.h"
#include "testutil.h"

static int running, max_running;

/* A stand-in for a legacy blocking call: with libhook.so preloaded a plain usleep() here would yield
 * the same way; here the runtime's own sleep plays that part. */
static void *legacy_call(void *item) {
  running++;
  if (running > max_running) max_running = running;
  cohook_sleep_ns(10000000);
  running--;
  return (void *)((intptr_t)item * (intptr_t)item);
}

static void test_map_bounded(void **state) {
  (void)state;
  enum { N = 20 };
  void *items[N], *results[N];
  for (intptr_t i = 0; i < N; i++) items[i] = (void *)i, results[i] = NULL;
  running = max_running = 0;
  uint64_t t0 = tu_now_ns();
  assert_int_equal(cohook_map(legacy_call, items, results, N, 4), 0);
  uint64_t took = tu_now_ns() - t0;
  for (intptr_t i = 0; i < N; i++) assert_int_equal((intptr_t)results[i], i * i);
  assert_int_equal(max_running, 4);
  /* 20 calls of 10 ms, 4 at a time: 5 rounds, about 50 ms; serial would be 200 ms. */
  print_message("  20 x 10 ms calls, 4 at a time: %.1f ms\n", (double)took / 1e6);
  assert_true(took >= 50000000u);
  assert_true(took < 120000000u * (uint64_t)tu_slow());
}

static void test_map_unbounded_and_empty(void **state) {
  (void)state;
  enum { N = 50 };
  void *results[N];
  running = max_running = 0;
  assert_int_equal(cohook_map(legacy_call, NULL, results, N, 0), 0);
  assert_int_equal(max_running, N);
  assert_int_equal(cohook_map(legacy_call, NULL, NULL, 0, 3), 0);
  assert_int_equal(cohook_map(NULL, NULL, NULL, 1, 1), -EINVAL);
}

static void *whoami(void *arg) {
  (void)arg;
  return cohook_self();
}

static void test_self(void **state) {
  (void)state;
  cohook_coro_t *main_self = cohook_self();
  assert_non_null(main_self);
  assert_ptr_equal(cohook_self(), main_self);
  cohook_coro_t *co;
  assert_int_equal(cohook_spawn(&co, whoami, NULL), 0);
  void *r;
  cohook_coro_t *expect = co;
  assert_int_equal(cohook_join(co, &r), 0);
  assert_ptr_equal(r, expect);
  assert_ptr_not_equal(r, main_self);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_map_bounded),
      cmocka_unit_test(test_map_unbounded_and_empty),
      cmocka_unit_test(test_self),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
