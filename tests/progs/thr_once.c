/* thr_once — pthread_once under a crowd: an initialiser that sleeps 1 s while 1000 other threads
 * (and the main thread) call pthread_once on the same control. It runs exactly once and every caller
 * returns only after it completed, all within about a second. Then a second control with a fast
 * initialiser used from 100 threads, and a third whose initialiser itself uses the first control. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "progs.h"

#define SLOW_CALLERS 1000
#define FAST_CALLERS 100

static pthread_once_t slow_once = PTHREAD_ONCE_INIT;
static pthread_once_t fast_once = PTHREAD_ONCE_INIT;
static pthread_once_t nested_once = PTHREAD_ONCE_INIT;
static _Atomic int slow_runs, slow_done, fast_runs, fast_done, nested_runs;
static _Atomic int saw_done, saw_not_done, fast_saw_done, started;
static double t_start;
static _Atomic long latest_return_us; /* after t_start, diagnostics */

static void slow_init(void) {
  atomic_fetch_add(&slow_runs, 1);
  CHECK(sleep(1) == 0);
  atomic_store(&slow_done, 1);
}

static void fast_init(void) {
  atomic_fetch_add(&fast_runs, 1);
  atomic_store(&fast_done, 1);
}

static void nested_init(void) {
  atomic_fetch_add(&nested_runs, 1);
  CHECK(pthread_once(&slow_once, slow_init) == 0); /* long done by now: returns at once */
}

static void *slow_caller(void *arg) {
  (void)arg;
  atomic_fetch_add(&started, 1);
  CHECK(pthread_once(&slow_once, slow_init) == 0);
  if (atomic_load(&slow_done)) atomic_fetch_add(&saw_done, 1);
  else atomic_fetch_add(&saw_not_done, 1);
  long us = (long)((now_s() - t_start) * 1e6);
  long cur = atomic_load(&latest_return_us);
  while (us > cur && !atomic_compare_exchange_weak(&latest_return_us, &cur, us)) {}
  return NULL;
}

static void *fast_caller(void *arg) {
  (void)arg;
  for (int i = 0; i < 3; i++) {
    CHECK(pthread_once(&fast_once, fast_init) == 0);
    if (atomic_load(&fast_done)) atomic_fetch_add(&fast_saw_done, 1);
    CHECK(sched_yield() == 0);
  }
  CHECK(pthread_once(&nested_once, nested_init) == 0);
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  static pthread_t t[SLOW_CALLERS];
  t_start = now_s();
  for (int i = 0; i < SLOW_CALLERS; i++) CHECK(pthread_create(&t[i], NULL, slow_caller, NULL) == 0);
  double created = now_s() - t_start;
  CHECK(pthread_once(&slow_once, slow_init) == 0);
  printf("main after once: done=%d\n", atomic_load(&slow_done));
  for (int i = 0; i < SLOW_CALLERS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  double took = now_s() - t_start;
  printf("slow initialiser runs: %d\n", atomic_load(&slow_runs));
  printf("slow callers started %d, saw it done %d, saw it not done %d\n", atomic_load(&started),
         atomic_load(&saw_done), atomic_load(&saw_not_done));
  int timely = took >= 1.0 && took < 3.0;
  printf("slow once took about 1 s: %s\n", timely ? "yes" : "NO");
  fprintf(stderr, "created %d threads in %.3f s, all done in %.3f s, last return at %.3f s\n", SLOW_CALLERS,
          created, took, (double)atomic_load(&latest_return_us) / 1e6);

  for (int i = 0; i < FAST_CALLERS; i++) CHECK(pthread_create(&t[i], NULL, fast_caller, NULL) == 0);
  for (int i = 0; i < FAST_CALLERS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  printf("fast initialiser runs: %d, callers saw it done %d of %d\n", atomic_load(&fast_runs),
         atomic_load(&fast_saw_done), 3 * FAST_CALLERS);
  printf("nested initialiser runs: %d\n", atomic_load(&nested_runs));
  CHECK(pthread_once(&fast_once, fast_init) == 0);
  printf("fast initialiser runs after main's call: %d\n", atomic_load(&fast_runs));

  int ok = atomic_load(&slow_runs) == 1 && atomic_load(&saw_done) == SLOW_CALLERS && atomic_load(&saw_not_done) == 0 &&
           timely && atomic_load(&fast_runs) == 1 && atomic_load(&fast_saw_done) == 3 * FAST_CALLERS &&
           atomic_load(&nested_runs) == 1;
  printf("%s\n", ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
