/* test_steal.c — work stealing (sched.c): coroutine-threads queued on a busy worker are taken by an
 * idle one, and run there with their own TLS (a __thread value, errno) intact; what is tied to its
 * scheduler (a wait with a deadline: a timer in that scheduler's heap) never moves; COHOOK_STEAL=off
 * moves nothing.
 *
 * All jobs are placed on worker 0 of two; worker 1 has nothing, so it asks for work. Each job computes
 * for a little while, then lets the others run (a yield, a parking-lot wait, or a zero-length sleep),
 * many times over. */
#include <pthread.h>

#include "internal.h"
#include "sys.h"
#include "testutil.h"

#define JOBS 8
#define ROUNDS 300
#define SPIN_NS 20000

enum { BY_YIELD, BY_SLEEP, BY_LOT };

struct job {
  int id, how;
  struct ch_sched *w1;
  int rounds_on_w1;   /* rounds that ran on worker 1 */
  int moved_in_wait;  /* waits it came back from on another scheduler than it entered them on */
  int tls_broken;     /* rounds after which the __thread value or errno was not ours */
};

static __thread int mine; /* each coroutine-thread's own */
static _Atomic int started, finished;
static _Atomic uint32_t gate; /* BY_LOT: the main thread moves it on and wakes its waiters */

static void spin(uint64_t ns) {
  uint64_t until = ch_now_ns() + ns;
  while (ch_now_ns() < until) ch_cpu_relax();
}

static void *job_fn(void *arg) {
  struct job *j = arg;
  mine = j->id;
  for (int r = 0; r < ROUNDS; r++) {
    spin(SPIN_NS);
    if (r == 0) atomic_fetch_add(&started, 1);
    errno = 1000 + j->id;
    struct ch_sched *before = ch_tls_sched;
    if (j->how == BY_YIELD) {
      ch_yield();
    } else if (j->how == BY_SLEEP) {
      ch_sleep_until(ch_now_ns()); /* a deadline: tied to this scheduler's timer heap */
    } else {
      uint32_t g = atomic_load(&gate); /* a parking-lot wait without deadline, as a mutex's */
      while (atomic_load(&gate) == g) ch_pl_wait32(&gate, g, CH_NO_DEADLINE, CH_INTR_NONE);
    }
    if (ch_tls_sched != before) j->moved_in_wait++;
    if (mine != j->id || errno != 1000 + j->id) j->tls_broken++;
    if (ch_tls_sched == j->w1) j->rounds_on_w1++;
  }
  atomic_fetch_add(&finished, 1);
  return NULL;
}

/* Run JOBS jobs, all started on worker 0 (stealing is held off until each has run once, so that what
 * moves, moves in mid-life); returns the steals counted meanwhile. */
static uint64_t run_jobs(struct job *jobs, int how) {
  struct ch_sched *w0 = ch_worker_sched(0), *w1 = ch_worker_sched(1);
  assert_non_null(w0);
  assert_non_null(w1);
  bool steal_was_off = ch_config.steal_off;
  ch_config.steal_off = true;
  atomic_store(&started, 0);
  atomic_store(&finished, 0);
  uint64_t steals0 = atomic_load(&ch_stats.steals);
  ch_coro *co[JOBS];
  for (int i = 0; i < JOBS; i++) {
    jobs[i] = (struct job){.id = i, .how = how, .w1 = w1};
    assert_int_equal(ch_spawn_on(w0, &co[i], job_fn, &jobs[i], 0, false, true), 0);
  }
  while (atomic_load(&started) < JOBS) ch_sleep_until(ch_now_ns() + 100000);
  ch_config.steal_off = steal_was_off;
  ch_loop_notify(w1->loop); /* idle since before: it asks for work the next time it goes idle */
  while (atomic_load(&finished) < JOBS) {
    if (how == BY_LOT) {
      atomic_fetch_add(&gate, 1);
      ch_pl_wake(&gate, INT32_MAX);
    }
    ch_sleep_until(ch_now_ns() + 50000);
  }
  for (int i = 0; i < JOBS; i++) assert_int_equal(ch_join(co[i], NULL), 0);
  return atomic_load(&ch_stats.steals) - steals0;
}

static void check_moved(struct job *jobs, uint64_t steals) {
  int moved = 0, on_w1 = 0;
  for (int i = 0; i < JOBS; i++) {
    assert_int_equal(jobs[i].tls_broken, 0);
    moved += jobs[i].moved_in_wait;
    on_w1 += jobs[i].rounds_on_w1 > 0;
  }
  print_message("steals %llu, moves seen across a wait %d, jobs that ran on worker 1: %d of %d\n",
                (unsigned long long)steals, moved, on_w1, JOBS);
  assert_true(steals > 0);
  assert_true(moved > 0);
  assert_true(on_w1 > 0);
}

static void test_idle_worker_takes_yielders(void **state) {
  (void)state;
  if (!ch_ident_enabled()) skip(); /* COHOOK_TLS=worker: nothing may move */
  struct job jobs[JOBS];
  uint64_t steals = run_jobs(jobs, BY_YIELD);
  check_moved(jobs, steals);
}

/* Woken from a parking-lot wait (what mutexes, condvars and futex(2) use) on another scheduler. */
static void test_idle_worker_takes_lot_waiters(void **state) {
  (void)state;
  if (!ch_ident_enabled()) skip();
  struct job jobs[JOBS];
  uint64_t steals = run_jobs(jobs, BY_LOT);
  check_moved(jobs, steals);
}

static void test_deadline_waits_stay(void **state) {
  (void)state;
  if (!ch_ident_enabled()) skip();
  struct job jobs[JOBS];
  run_jobs(jobs, BY_SLEEP);
  for (int i = 0; i < JOBS; i++) {
    assert_int_equal(jobs[i].tls_broken, 0);
    assert_int_equal(jobs[i].moved_in_wait, 0);
    assert_int_equal(jobs[i].rounds_on_w1, 0);
  }
}

static void test_steal_off(void **state) {
  (void)state;
  if (!ch_ident_enabled()) skip();
  ch_config.steal_off = true;
  struct job jobs[JOBS];
  uint64_t steals = run_jobs(jobs, BY_YIELD);
  ch_config.steal_off = false;
  assert_int_equal(steals, 0);
  for (int i = 0; i < JOBS; i++) assert_int_equal(jobs[i].rounds_on_w1, 0);
}

int main(void) {
  ch_config.workers = 2;
  assert_non_null(ch_worker_pick()); /* start the pool */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_idle_worker_takes_yielders),
      cmocka_unit_test(test_idle_worker_takes_lot_waiters),
      cmocka_unit_test(test_deadline_waits_stay),
      cmocka_unit_test(test_steal_off),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
