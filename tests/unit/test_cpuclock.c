/* test_cpuclock.c — per-coroutine CPU clocks (runtime/cpuclock.c) on coroutines of one scheduler:
 * clock ids (ours, never a real thread's), time charged at the switches to the coroutine that ran,
 * a reader on another OS thread while the coroutine runs (never backwards), and ids that outlive
 * their coroutine (they name nothing, even once their table entry is reused). */
#include <pthread.h>

#include "internal.h"
#include "sys.h"
#include "testutil.h"

#define MS 1000000ull

static uint64_t os_cpu(void) { /* the static runtime: plain libc, the OS thread's clock */
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static _Atomic int spun, release_all;
static uint64_t spinner_final, idler_final;

/* Spins 40 ms of the OS thread's CPU in 1 ms pieces, yielding between them. */
static void *spinner(void *unused) {
  (void)unused;
  uint64_t start = os_cpu();
  while (os_cpu() - start < 40 * MS) {
    uint64_t piece = os_cpu();
    while (os_cpu() - piece < 1 * MS) {
    }
    cohook_yield();
  }
  spinner_final = ch_cpuclock_self(cohook_self());
  atomic_store(&spun, 1);
  while (!atomic_load(&release_all)) cohook_yield();
  ch_cpuclock_thread_exit(cohook_self()); /* as a coroutine-thread's end does (thread.c) */
  clockid_t again;
  return (void *)(intptr_t)ch_cpuclock_id(cohook_self(), &again);
}

static void *idler(void *unused) {
  (void)unused;
  while (!atomic_load(&spun)) cohook_yield();
  idler_final = ch_cpuclock_self(cohook_self());
  while (!atomic_load(&release_all)) cohook_yield();
  ch_cpuclock_thread_exit(cohook_self());
  return NULL;
}

static clockid_t watched;
static _Atomic int backwards, reads;

/* Another OS thread reads the spinner's clock while it runs: never backwards. */
static void *reader(void *unused) {
  (void)unused;
  uint64_t last = 0;
  while (!atomic_load(&spun)) {
    uint64_t ns;
    assert_int_equal(ch_cpuclock_get(watched, NULL, &ns), 0);
    if (ns < last) atomic_fetch_add(&backwards, 1);
    last = ns;
    atomic_fetch_add(&reads, 1);
  }
  return NULL;
}

static void test_slices(void **state) {
  (void)state;
  cohook_coro_t *s, *i;
  assert_int_equal(cohook_spawn(&s, spinner, NULL), 0);
  assert_int_equal(cohook_spawn(&i, idler, NULL), 0);
  clockid_t cs, ci, cs2;
  assert_int_equal(ch_cpuclock_id(s, &cs), 0);
  assert_int_equal(ch_cpuclock_id(i, &ci), 0);
  assert_int_equal(ch_cpuclock_id(s, &cs2), 0);
  assert_int_equal(cs, cs2); /* one id per coroutine */
  assert_true(cs != ci);
  assert_true(ch_cpuclock_is_ours(cs) && ch_cpuclock_is_ours(ci));
  /* Not ours: the calling thread's clock and a real thread's (glibc's encoding of a tid). */
  assert_false(ch_cpuclock_is_ours(CLOCK_THREAD_CPUTIME_ID));
  assert_false(ch_cpuclock_is_ours((clockid_t)(((unsigned)~ch_gettid() << 3) | 6u)));
  assert_false(ch_cpuclock_is_ours((clockid_t)(((unsigned)~3 << 3) | 3u))); /* fd 3's dynamic clock */
  watched = cs;
  pthread_t r;
  assert_int_equal(pthread_create(&r, NULL, reader, NULL), 0);
  uint64_t os0 = os_cpu();
  while (!atomic_load(&spun)) cohook_yield();
  uint64_t os_used = os_cpu() - os0;
  assert_int_equal(pthread_join(r, NULL), 0);
  uint64_t ns_s, ns_i;
  assert_int_equal(ch_cpuclock_get(cs, NULL, &ns_s), 0);
  assert_int_equal(ch_cpuclock_get(ci, NULL, &ns_i), 0);
  print_message("spinner %.2f ms (own %.2f), idler %.2f ms, OS thread %.2f ms; %d reads from outside\n",
                ns_s / 1e6, spinner_final / 1e6, ns_i / 1e6, os_used / 1e6, atomic_load(&reads));
  assert_int_equal(atomic_load(&backwards), 0);
  assert_true(ns_s >= 39 * MS);                      /* its 40 pieces of 1 ms, each charged to it */
  assert_true(ns_s >= spinner_final && ns_s - spinner_final < 2 * MS * (uint64_t)tu_slow());
  assert_true(ns_i < 10 * MS * (uint64_t)tu_slow()); /* its turns are a yield each */
  assert_true(ns_i >= idler_final || idler_final == 0);
  assert_true(ns_s + ns_i <= os_used + 1 * MS);      /* nothing is charged twice */
  atomic_store(&release_all, 1);
  void *rv;
  assert_int_equal(cohook_join(s, &rv), 0);
  assert_int_equal((int)(intptr_t)rv, -ESRCH); /* no id for an ended thread */
  assert_int_equal(cohook_join(i, NULL), 0);
  uint64_t ns;
  assert_int_equal(ch_cpuclock_get(cs, NULL, &ns), -EINVAL);
  assert_int_equal(ch_cpuclock_get(ci, NULL, &ns), -EINVAL);
  /* A new coroutine gets a freed entry under a new generation: the old ids still name nothing. */
  cohook_coro_t *n;
  assert_int_equal(cohook_spawn(&n, idler, NULL), 0);
  clockid_t cn;
  assert_int_equal(ch_cpuclock_id(n, &cn), 0);
  assert_true(cn != cs && cn != ci);
  assert_int_equal(ch_cpuclock_get(cn, NULL, &ns), 0);
  assert_int_equal(ch_cpuclock_get(cs, NULL, &ns), -EINVAL);
  assert_int_equal(ch_cpuclock_get(ci, NULL, &ns), -EINVAL);
  assert_int_equal(cohook_join(n, NULL), 0); /* spun and release_all are still set: it ends at once */
  assert_int_equal(ch_cpuclock_get(cn, NULL, &ns), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_slices)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
