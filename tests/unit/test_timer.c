/* test_timer.c — deadlines: the heap itself, wake-up order, precision, and 10 000 concurrent sleeps. */
#include "internal.h"
#include "testutil.h"

static void test_heap_orders_and_removes(void **state) {
  (void)state;
  struct ch_sched *s = ch_sched_get();
  enum { N = 2000 };
  static struct ch_timer t[N];
  srand(7);
  for (int i = 0; i < N; i++) {
    t[i] = (struct ch_timer){.deadline = (uint64_t)rand() % 100000, .idx = SIZE_MAX};
    ch_timer_add(s, &t[i]);
  }
  for (int i = 0; i < N; i += 3) ch_timer_del(s, &t[i]); /* removal from the middle keeps the heap valid */
  uint64_t last = 0;
  size_t popped = 0;
  while (s->heap_len) {
    struct ch_timer *top = s->heap[0];
    assert_true(top->deadline >= last);
    last = top->deadline;
    ch_timer_del(s, top);
    popped++;
  }
  assert_int_equal(popped, N - (N + 2) / 3);
}

static int order[64];
static int norder;

static void *sleeper(void *arg) {
  int ms = (int)(intptr_t)arg;
  cohook_sleep_ns((uint64_t)ms * 1000000u);
  order[norder++] = ms;
  return NULL;
}

static void test_wake_order(void **state) {
  (void)state;
  int ms[] = {31, 5, 17, 2, 23, 11, 29, 7, 13, 19, 3, 37};
  enum { N = sizeof ms / sizeof ms[0] };
  cohook_coro_t *co[N];
  norder = 0;
  for (int i = 0; i < N; i++) assert_int_equal(cohook_spawn(&co[i], sleeper, (void *)(intptr_t)ms[i]), 0);
  for (int i = 0; i < N; i++) assert_int_equal(cohook_join(co[i], NULL), 0);
  assert_int_equal(norder, N);
  for (int i = 1; i < N; i++) assert_true(order[i - 1] < order[i]);
}

static uint64_t median(uint64_t *v, int n) {
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
      uint64_t t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  return v[n / 2];
}

static void test_sleep_precision(void **state) {
  (void)state;
  /* Never early; late by little. 100 us must not become libev's 1 ms granularity. */
  uint64_t want[] = {100000, 1500000, 20000000};
  for (int k = 0; k < 3; k++) {
    uint64_t took[7];
    for (int i = 0; i < 7; i++) {
      uint64_t t0 = tu_now_ns();
      assert_int_equal(cohook_sleep_ns(want[k]), 0);
      took[i] = tu_now_ns() - t0;
      assert_true(took[i] >= want[k]);
    }
    uint64_t med = median(took, 7);
    print_message("  sleep %7.3f ms -> median %7.3f ms\n", (double)want[k] / 1e6, (double)med / 1e6);
    assert_true(med < want[k] + 600000u * (uint64_t)tu_slow());
  }
}

static void *sleep_100ms(void *arg) {
  (void)arg;
  cohook_sleep_ns(100000000u);
  return NULL;
}

static void test_ten_thousand_sleepers(void **state) {
  (void)state;
  enum { N = 10000 };
  static cohook_coro_t *co[N];
  uint64_t t0 = tu_now_ns();
  for (int i = 0; i < N; i++) assert_int_equal(cohook_spawn(&co[i], sleep_100ms, NULL), 0);
  for (int i = 0; i < N; i++) assert_int_equal(cohook_join(co[i], NULL), 0);
  uint64_t took = tu_now_ns() - t0;
  print_message("  10000 coroutines x sleep(100 ms): %.1f ms wall\n", (double)took / 1e6);
  assert_true(took >= 100000000u);
  assert_true(took < 1000000000u * (uint64_t)tu_slow()); /* the bound; the figure is printed above */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_heap_orders_and_removes),
      cmocka_unit_test(test_wake_order),
      cmocka_unit_test(test_sleep_precision),
      cmocka_unit_test(test_ten_thousand_sleepers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
