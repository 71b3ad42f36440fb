/* test_sched.c — coroutine life cycle: spawn/join values, detach, errno per coroutine, join errors,
 * 100 000 coroutines alive at once, custom stack sizes, and a join across OS threads. */
#include <pthread.h>
#include <signal.h>

#include "internal.h"
#include "testutil.h"

static void *ret_arg_times_two(void *arg) { return (void *)((intptr_t)arg * 2); }

static void test_spawn_join_values(void **state) {
  (void)state;
  enum { N = 1000 };
  static cohook_coro_t *co[N];
  for (intptr_t i = 0; i < N; i++) assert_int_equal(cohook_spawn(&co[i], ret_arg_times_two, (void *)i), 0);
  for (intptr_t i = N - 1; i >= 0; i--) { /* join in reverse: order must not matter */
    void *r;
    assert_int_equal(cohook_join(co[i], &r), 0);
    assert_int_equal((intptr_t)r, i * 2);
  }
}

static int detached_ran;
static void *detached_body(void *arg) {
  (void)arg;
  cohook_yield();
  detached_ran++;
  return NULL;
}

static void test_detach(void **state) {
  (void)state;
  detached_ran = 0;
  cohook_spawn_opts_t o = {.detached = 1};
  for (int i = 0; i < 10; i++) assert_int_equal(cohook_spawn_ex(NULL, detached_body, NULL, &o), 0);
  cohook_coro_t *co;
  assert_int_equal(cohook_spawn(&co, detached_body, NULL), 0);
  assert_int_equal(cohook_detach(co), 0);
  assert_int_equal(cohook_detach(co), -EINVAL); /* already detached */
  while (detached_ran < 11) cohook_yield();
  assert_int_equal(detached_ran, 11);
}

static void *self_join(void *arg) {
  (void)arg;
  return (void *)(intptr_t)cohook_join(cohook_self(), NULL);
}

static void test_join_errors(void **state) {
  (void)state;
  cohook_coro_t *co;
  assert_int_equal(cohook_spawn(&co, self_join, NULL), 0);
  void *r;
  assert_int_equal(cohook_join(co, &r), 0);
  assert_int_equal((intptr_t)r, -EDEADLK);
  assert_int_equal(cohook_spawn(NULL, self_join, NULL), -EINVAL); /* joinable but unjoinable: refuse */
  assert_int_equal(cohook_spawn(&co, NULL, NULL), -EINVAL);
  assert_int_equal(cohook_join(NULL, NULL), -EINVAL);
}

static void *errno_keeper(void *arg) {
  int mine = (int)(intptr_t)arg;
  errno = mine;
  for (int i = 0; i < 100; i++) {
    cohook_yield();
    if (errno != mine) return (void *)0;
    errno = mine; /* libc calls in between could legitimately change it; we only check the switch */
  }
  return (void *)1;
}

static void test_errno_per_coroutine(void **state) {
  (void)state;
  cohook_coro_t *a, *b, *c;
  assert_int_equal(cohook_spawn(&a, errno_keeper, (void *)(intptr_t)EINTR), 0);
  assert_int_equal(cohook_spawn(&b, errno_keeper, (void *)(intptr_t)ENOENT), 0);
  assert_int_equal(cohook_spawn(&c, errno_keeper, (void *)(intptr_t)EPIPE), 0);
  errno = EXDEV;
  void *ra, *rb, *rc;
  assert_int_equal(cohook_join(a, &ra), 0);
  assert_int_equal(errno, EXDEV); /* the main coroutine's errno too */
  assert_int_equal(cohook_join(b, &rb), 0);
  assert_int_equal(cohook_join(c, &rc), 0);
  assert_int_equal((intptr_t)ra + (intptr_t)rb + (intptr_t)rc, 3);
}

/* ---- 100 000 alive at once ------------------------------------------------------------------------ */

static long alive, peak_alive;
static int gate_open;

static void *gate_waiter(void *arg) {
  (void)arg;
  alive++;
  if (alive > peak_alive) peak_alive = alive;
  while (!gate_open) cohook_yield();
  alive--;
  return NULL;
}

static long count_maps(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  long n = 0;
  int ch;
  while ((ch = fgetc(f)) != EOF) n += ch == '\n';
  fclose(f);
  return n;
}

static void test_hundred_thousand_alive(void **state) {
  (void)state;
  long n = CH_ON_VALGRIND() ? 5000 : 100000;
  cohook_coro_t **co = calloc((size_t)n, sizeof *co);
  alive = peak_alive = gate_open = 0;
  uint64_t t0 = tu_now_ns();
  for (long i = 0; i < n; i++) assert_int_equal(cohook_spawn(&co[i], gate_waiter, NULL), 0);
  cohook_yield(); /* lets every coroutine run up to the gate */
  assert_int_equal(alive, n);
  long maps = count_maps();
  print_message("  %ld coroutines alive, %ld mappings (vm.max_map_count 65530), %ld guarded stacks, "
                "%.0f ms to spawn and start\n",
                alive, maps, ch_stack_guarded_count(), (double)(tu_now_ns() - t0) / 1e6);
  assert_true(maps < 60000); /* past the guard budget, stacks cost no mapping of their own */
  gate_open = 1;
  for (long i = 0; i < n; i++) assert_int_equal(cohook_join(co[i], NULL), 0);
  assert_int_equal(alive, 0);
  assert_int_equal(peak_alive, n);
  free(co);
}

/* ---- custom stack sizes ---------------------------------------------------------------------------- */

static long recurse(int depth) {
  volatile char pad[1024];
  pad[0] = (char)depth;
  if (depth == 0) return pad[0];
  return recurse(depth - 1) + pad[0];
}

static void *deep(void *arg) { return (void *)recurse((int)(intptr_t)arg); }

static void test_custom_stack_size(void **state) {
  (void)state;
  cohook_spawn_opts_t o = {.stack_size = 2u << 20}; /* 2 MiB: room for ~1500 KiB of frames */
  cohook_coro_t *co;
  assert_int_equal(cohook_spawn_ex(&co, deep, (void *)(intptr_t)1500, &o), 0);
  void *r;
  assert_int_equal(cohook_join(co, &r), 0);
  assert_int_equal((intptr_t)r, recurse(1500)); /* the same frames on the 8 MiB main stack */
}

/* ---- join from another OS thread ------------------------------------------------------------------- */

static cohook_coro_t *_Atomic shared_co;
static _Atomic int thread_done;

static void *slow_value(void *arg) {
  (void)arg;
  cohook_sleep_ns(20 * 1000000);
  return (void *)(intptr_t)4242;
}

static void *owner_thread(void *arg) {
  (void)arg;
  cohook_coro_t *co;
  if (cohook_spawn(&co, slow_value, NULL) != 0) return NULL;
  atomic_store(&shared_co, co);
  /* Keep this thread's scheduler running while the coroutine sleeps and finishes. */
  cohook_sleep_ns(100 * 1000000);
  atomic_store(&thread_done, 1);
  return NULL;
}

static void test_cross_thread_join(void **state) {
  (void)state;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, owner_thread, NULL), 0);
  cohook_coro_t *co;
  while (!(co = atomic_load(&shared_co))) usleep(100);
  uint64_t t0 = tu_now_ns();
  void *r;
  assert_int_equal(cohook_join(co, &r), 0); /* parks this thread's main coroutine; woken via inbox */
  assert_int_equal((intptr_t)r, 4242);
  assert_true(tu_now_ns() - t0 < 90ull * 1000000 * (uint64_t)tu_slow()); /* not only when the thread exits */
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_int_equal(atomic_load(&thread_done), 1);
}

/* The park protocol (internal.h): a wake-up only to run a handler must leave the waiter registered
 * and asleep; only the real wake-up ends the wait, exactly once. Waiters park in the parking lot, on
 * a join and on a timer; a kicker signals them many times before waking them for real. Under ASan
 * and valgrind this catches a waiter that returns while its on-stack entry is still linked. */
static _Atomic int handler_runs;
static int count_handler(int sig, const siginfo_t *si) {
  (void)sig, (void)si;
  atomic_fetch_add(&handler_runs, 1);
  return CH_SIG_RAN | CH_SIG_RESTART;
}
static const struct ch_upcalls counting = {.run_handler = count_handler};

static _Atomic uint32_t word;
static _Atomic int woken_count;

static void *pl_waiter(void *arg) {
  (void)arg;
  while (atomic_load(&word) == 0) {
    int r = ch_pl_wait32(&word, 0, CH_NO_DEADLINE, CH_INTR_NONE);
    assert_true(r == 0 || r == CH_E_CHANGED);
  }
  atomic_fetch_add(&woken_count, 1);
  return (void *)1;
}

static void *sleeper_body(void *arg) {
  (void)arg;
  uint64_t t0 = ch_now_ns();
  ch_sleep_until(ch_deadline_after(20000000)); /* 20 ms, kicked meanwhile */
  return (void *)(uintptr_t)(ch_now_ns() - t0 >= 19000000);
}

static void *joiner_body(void *target) {
  void *rv = NULL;
  assert_int_equal(cohook_join(target, &rv), 0);
  return rv;
}

static void *late_body(void *arg) {
  (void)arg;
  cohook_sleep_ns(5000000);
  return (void *)7;
}

static void test_signal_kicks_keep_waiters(void **state) {
  (void)state;
  ch_upcalls_register(&counting);
  enum { W = 8, ROUNDS = 50 };
  for (int round = 0; round < ROUNDS; round++) {
    atomic_store(&word, 0);
    atomic_store(&woken_count, 0);
    cohook_coro_t *w[W], *sl, *late, *jn;
    for (int i = 0; i < W; i++) assert_int_equal(cohook_spawn(&w[i], pl_waiter, NULL), 0);
    assert_int_equal(cohook_spawn(&sl, sleeper_body, NULL), 0);
    assert_int_equal(cohook_spawn(&late, late_body, NULL), 0);
    assert_int_equal(cohook_spawn(&jn, joiner_body, late), 0);
    cohook_yield(); /* everyone parks */
    for (int k = 0; k < 5; k++) {
      for (int i = 0; i < W; i++) ch_coro_kill(w[i], SIGUSR1, true);
      ch_coro_kill(sl, SIGUSR1, true);
      ch_coro_kill(jn, SIGUSR1, true);
      cohook_yield(); /* the kicked run their handler and sleep again */
    }
    assert_int_equal(atomic_load(&woken_count), 0); /* no kick ended a wait */
    atomic_store(&word, 1);
    ch_pl_wake(&word, W);
    for (int i = 0; i < W; i++) {
      void *rv;
      assert_int_equal(cohook_join(w[i], &rv), 0);
      assert_ptr_equal(rv, (void *)1);
    }
    void *rv;
    assert_int_equal(cohook_join(sl, &rv), 0);
    assert_ptr_equal(rv, (void *)1); /* the sleep was not cut short by the kicks */
    assert_int_equal(cohook_join(jn, &rv), 0);
    assert_ptr_equal(rv, (void *)7);
    assert_int_equal(atomic_load(&woken_count), W);
  }
  assert_true(atomic_load(&handler_runs) >= ROUNDS * (W + 2));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spawn_join_values),   cmocka_unit_test(test_detach),
      cmocka_unit_test(test_join_errors),         cmocka_unit_test(test_errno_per_coroutine),
      cmocka_unit_test(test_hundred_thousand_alive), cmocka_unit_test(test_custom_stack_size),
      cmocka_unit_test(test_cross_thread_join),  cmocka_unit_test(test_signal_kicks_keep_waiters),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
