/* thr_keys_cond — thread-specific data and condition variables.
 * Keys: 50 threads keep their own values across sleeps and yields; destructors run once per thread
 * with that thread's value (in that thread); a destructor that sets the value again is called again,
 * up to PTHREAD_DESTRUCTOR_ITERATIONS; deleted keys, and new keys after a delete, read NULL.
 * Condition variables: timed waits on the monotonic clock (condattr) and the realtime clock time
 * out after ~100 ms; bad timespecs and clocks are refused; pthread_cond_signal lets exactly one of
 * several waiters through; broadcast lets all through; a signal nobody waits for is not remembered;
 * a process-shared condition variable works between the threads of one process. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "progs.h"
#include "thr_util.h"

#define NTHREADS 50

static pthread_t main_thread;

/* ---- keys ----------------------------------------------------------------------------------------- */

struct rec {
  int id;
  pthread_t self;
  _Atomic int dtor_calls, dtor_wrong_thread;
};

static pthread_key_t key, key_plain, key_again, key_null;
static struct rec recs[NTHREADS];
static _Atomic int mixed, plain_mixed, again_calls[NTHREADS], null_dtor_calls;

static void rec_dtor(void *p) {
  struct rec *r = p;
  atomic_fetch_add(&r->dtor_calls, 1);
  if (!pthread_equal(r->self, pthread_self())) atomic_fetch_add(&r->dtor_wrong_thread, 1);
  /* The value is already NULL while the destructor runs. */
  if (pthread_getspecific(key) != NULL) atomic_fetch_add(&mixed, 1000);
}

/* Sets its value again each time: called again, up to PTHREAD_DESTRUCTOR_ITERATIONS times. */
static void again_dtor(void *p) {
  int id = (int)(intptr_t)p - 1;
  int n = atomic_fetch_add(&again_calls[id], 1) + 1;
  if (n < 100) CHECK(pthread_setspecific(key_again, p) == 0);
}

static void null_dtor(void *p) {
  (void)p;
  atomic_fetch_add(&null_dtor_calls, 1);
}

static void *key_thread(void *arg) {
  struct rec *r = arg;
  if (pthread_getspecific(key) != NULL || pthread_getspecific(key_plain) != NULL) atomic_fetch_add(&mixed, 1);
  r->self = pthread_self();
  CHECK(pthread_setspecific(key, r) == 0);
  CHECK(pthread_setspecific(key_plain, (void *)(intptr_t)(r->id + 1)) == 0);
  CHECK(pthread_setspecific(key_again, (void *)(intptr_t)(r->id + 1)) == 0);
  CHECK(pthread_setspecific(key_null, r) == 0);
  for (int i = 0; i < 20; i++) {
    if ((i + r->id) % 3 == 0) CHECK(usleep((useconds_t)(100 + (r->id * 37 + i * 11) % 900)) == 0);
    else CHECK(sched_yield() == 0);
    if (pthread_getspecific(key) != r) atomic_fetch_add(&mixed, 1);
    if (pthread_getspecific(key_plain) != (void *)(intptr_t)(r->id + 1)) atomic_fetch_add(&plain_mixed, 1);
  }
  CHECK(pthread_setspecific(key_null, NULL) == 0); /* no destructor call for a NULL value */
  return NULL;
}

static _Atomic int step;
static pthread_key_t key_deleted;
static _Atomic int deleted_dtor_calls;
static void deleted_dtor(void *p) {
  (void)p;
  atomic_fetch_add(&deleted_dtor_calls, 1);
}
static void *deleted_key_thread(void *arg) {
  pthread_key_t *newkey = arg;
  CHECK(pthread_setspecific(key_deleted, (void *)1) == 0);
  atomic_store(&step, 1);
  for (int i = 0; i < 10000 && atomic_load(&step) != 2; i++) CHECK(usleep(1000) == 0);
  CHECK(atomic_load(&step) == 2);
  /* The main thread deleted key_deleted and made a new key: this thread reads NULL under it. */
  return pthread_getspecific(*newkey) == NULL ? (void *)1 : (void *)2;
}

static void keys(void) {
  CHECK(pthread_key_create(&key, rec_dtor) == 0);
  CHECK(pthread_key_create(&key_plain, NULL) == 0);
  CHECK(pthread_key_create(&key_again, again_dtor) == 0);
  CHECK(pthread_key_create(&key_null, null_dtor) == 0);
  CHECK(pthread_setspecific(key, &recs[0]) == 0); /* the main thread's own value, never seen by others */
  pthread_t t[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    recs[i].id = i;
    CHECK(pthread_create(&t[i], NULL, key_thread, &recs[i]) == 0);
  }
  for (int i = 0; i < NTHREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  int calls = 0, once = 0, wrong = 0, again_hist[6] = {0};
  for (int i = 0; i < NTHREADS; i++) {
    calls += atomic_load(&recs[i].dtor_calls);
    once += atomic_load(&recs[i].dtor_calls) == 1;
    wrong += atomic_load(&recs[i].dtor_wrong_thread);
    int a = atomic_load(&again_calls[i]);
    again_hist[a < 5 ? a : 5]++;
  }
  printf("keys: values mixed %d, plain values mixed %d\n", atomic_load(&mixed), atomic_load(&plain_mixed));
  printf("keys: destructor calls %d, threads with exactly one %d, in the wrong thread %d\n", calls, once, wrong);
  printf("keys: main thread value still %s\n", pthread_getspecific(key) == &recs[0] ? "its own" : "WRONG");
  int iter_max = -1;
  for (int i = 0; i < 6; i++)
    if (again_hist[i]) iter_max = i;
  printf("keys: re-setting destructor called %d times per thread in %d threads\n", iter_max,
         again_hist[iter_max < 0 ? 0 : iter_max]);
  printf("keys: destructor calls for NULL values %d\n", atomic_load(&null_dtor_calls));
  if (atomic_load(&mixed) || atomic_load(&plain_mixed) || calls != NTHREADS || once != NTHREADS || wrong ||
      atomic_load(&null_dtor_calls))
    failures++;

  /* Delete and create again. */
  pthread_key_t k1, k2;
  CHECK(pthread_key_create(&k1, NULL) == 0);
  CHECK(pthread_setspecific(k1, (void *)0x1234) == 0);
  expect("key delete", pthread_key_delete(k1), 0);
  expect("key delete again", pthread_key_delete(k1), EINVAL);
  expect("setspecific on a deleted key", pthread_setspecific(k1, (void *)1), EINVAL);
  printf("getspecific on a deleted key: %s\n", pthread_getspecific(k1) == NULL ? "NULL" : "not NULL");
  CHECK(pthread_key_create(&k2, NULL) == 0);
  printf("new key after delete: %s\n", pthread_getspecific(k2) == NULL ? "NULL" : "not NULL");
  CHECK(pthread_setspecific(k2, (void *)0x5678) == 0);
  printf("new key value: %s\n", pthread_getspecific(k2) == (void *)0x5678 ? "as set" : "WRONG");
  expect("key delete k2", pthread_key_delete(k2), 0);

  /* A key deleted while a thread holds a value: its destructor is not called; a new key reads NULL. */
  CHECK(pthread_key_create(&key_deleted, deleted_dtor) == 0);
  pthread_key_t newkey;
  pthread_t th;
  atomic_store(&step, 0);
  CHECK(pthread_create(&th, NULL, deleted_key_thread, &newkey) == 0);
  for (int i = 0; i < 10000 && atomic_load(&step) != 1; i++) CHECK(usleep(1000) == 0);
  CHECK(atomic_load(&step) == 1);
  CHECK(pthread_key_delete(key_deleted) == 0);
  CHECK(pthread_key_create(&newkey, deleted_dtor) == 0);
  atomic_store(&step, 2);
  void *res;
  CHECK(pthread_join(th, &res) == 0);
  printf("thread's view of the new key: %s\n", res == (void *)1 ? "NULL" : "not NULL");
  printf("destructor calls for a deleted key: %d\n", atomic_load(&deleted_dtor_calls));
  CHECK(pthread_key_delete(newkey) == 0);
}

/* ---- condition variables -------------------------------------------------------------------------- */

static void timed_case(const char *what, pthread_cond_t *cv, pthread_mutex_t *m, clockid_t clk, int use_clockwait) {
  char w[128];
  CHECK(pthread_mutex_lock(m) == 0);
  struct timespec ts = thr_in_ms(clk, 100);
  double t0 = now_s();
  int r = use_clockwait ? pthread_cond_clockwait(cv, m, clk, &ts) : pthread_cond_timedwait(cv, m, &ts);
  double took = now_s() - t0;
  expect(what, r, ETIMEDOUT);
  int ok = took >= 0.099 && took < 0.5;
  snprintf(w, sizeof w, "%s waited ~100ms", what);
  printf("%s: %s\n", w, ok ? "yes" : "NO");
  if (!ok) failures++, fprintf(stderr, "%s took %.6f s\n", what, took);
  /* The mutex is held again (it is error-checking: unlock tells). */
  snprintf(w, sizeof w, "%s then unlock", what);
  expect(w, pthread_mutex_unlock(m), 0);
}

/* Waiters that consume one token each, in a predicate loop. */
#define NWAITERS 5
static pthread_mutex_t tm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tcv = PTHREAD_COND_INITIALIZER;
static int tokens, waiting, passed;
static long raw_wakeups; /* returns from pthread_cond_wait, spurious ones included: stderr only */

static void *token_waiter(void *arg) {
  (void)arg;
  CHECK(pthread_mutex_lock(&tm) == 0);
  waiting++;
  while (tokens == 0) {
    CHECK(pthread_cond_wait(&tcv, &tm) == 0);
    raw_wakeups++;
  }
  tokens--;
  passed++;
  waiting--;
  CHECK(pthread_mutex_unlock(&tm) == 0);
  return NULL;
}

static int read_locked(int *v) {
  CHECK(pthread_mutex_lock(&tm) == 0);
  int x = *v;
  CHECK(pthread_mutex_unlock(&tm) == 0);
  return x;
}

static void wait_for_waiting(int n) {
  for (int i = 0; i < 10000 && read_locked(&waiting) != n; i++) CHECK(usleep(1000) == 0);
  CHECK(read_locked(&waiting) == n);
}

static void signal_one(void) {
  pthread_t t[NWAITERS];
  for (int i = 0; i < NWAITERS; i++) CHECK(pthread_create(&t[i], NULL, token_waiter, NULL) == 0);
  wait_for_waiting(NWAITERS); /* all of them inside pthread_cond_wait: the mutex is free again */
  for (int k = 1; k <= 3; k++) {
    CHECK(pthread_mutex_lock(&tm) == 0);
    tokens++;
    CHECK(pthread_cond_signal(&tcv) == 0);
    CHECK(pthread_mutex_unlock(&tm) == 0);
    for (int i = 0; i < 2000 && read_locked(&passed) < k; i++) CHECK(usleep(1000) == 0);
    CHECK(usleep(50000) == 0); /* would a second one get through? */
    printf("signal %d: passed %d, still waiting %d\n", k, read_locked(&passed), read_locked(&waiting));
  }
  CHECK(pthread_mutex_lock(&tm) == 0);
  tokens += NWAITERS - 3;
  CHECK(pthread_cond_broadcast(&tcv) == 0);
  CHECK(pthread_mutex_unlock(&tm) == 0);
  for (int i = 0; i < NWAITERS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  printf("broadcast: passed %d, still waiting %d, tokens left %d\n", passed, waiting, tokens);
  fprintf(stderr, "returns from pthread_cond_wait: %ld\n", raw_wakeups);
  if (passed != NWAITERS || waiting || tokens) failures++;
}

/* A timed waiter woken by a signal long before its deadline. */
static int early_r;
static double early_took;
static void *early_waiter(void *arg) {
  (void)arg;
  CHECK(pthread_mutex_lock(&tm) == 0);
  waiting++;
  struct timespec ts = thr_in_ms(CLOCK_REALTIME, 5000);
  double t0 = now_s();
  early_r = 0;
  while (tokens == 0 && early_r == 0) early_r = pthread_cond_timedwait(&tcv, &tm, &ts);
  early_took = now_s() - t0;
  if (tokens) tokens--;
  waiting--;
  CHECK(pthread_mutex_unlock(&tm) == 0);
  return NULL;
}

static pthread_mutex_t ps_m;
static pthread_cond_t ps_cv;
static int ps_turn; /* 0: ping's turn, 1: pong's */
static long ps_count;
static void *ps_side(void *arg) {
  int me = (int)(intptr_t)arg;
  for (int i = 0; i < 500; i++) {
    CHECK(pthread_mutex_lock(&ps_m) == 0);
    while (ps_turn != me) CHECK(pthread_cond_wait(&ps_cv, &ps_m) == 0);
    ps_count++;
    if (i % 100 == 0) CHECK(usleep(1000) == 0); /* sleeping while holding the mutex, now and then */
    ps_turn = !me;
    CHECK(pthread_cond_broadcast(&ps_cv) == 0);
    CHECK(pthread_mutex_unlock(&ps_m) == 0);
  }
  return NULL;
}

static void mixed_wait(void) {
  pthread_condattr_t ca;
  CHECK(pthread_condattr_init(&ca) == 0);
  CHECK(pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED) == 0);
  pthread_cond_t cv;
  CHECK(pthread_cond_init(&cv, &ca) == 0);
  CHECK(pthread_condattr_destroy(&ca) == 0);
  pthread_mutex_t m = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
  const char *who = pthread_equal(pthread_self(), main_thread) ? "main" : "thread";
  char w[128];
  CHECK(pthread_mutex_lock(&m) == 0);
  struct timespec ts = thr_in_ms(CLOCK_REALTIME, 50);
  int r;
  do r = pthread_cond_timedwait(&cv, &m, &ts); while (r == 0);
  snprintf(w, sizeof w, "%s: pshared cond, errorcheck mutex: timedwait", who);
  expect(w, r, ETIMEDOUT);
  snprintf(w, sizeof w, "%s: pshared cond, errorcheck mutex: unlock", who);
  expect(w, pthread_mutex_unlock(&m), 0);
  /* Nobody signals this condition variable: glibc's timed wait returns only at its deadline. */
  CHECK(pthread_mutex_lock(&m) == 0);
  ts = thr_in_ms(CLOCK_REALTIME, 100);
  double t0 = now_s();
  r = pthread_cond_timedwait(&cv, &m, &ts);
  double took = now_s() - t0;
  snprintf(w, sizeof w, "%s: pshared cond, one timedwait of 100 ms, no signal", who);
  expect(w, r, ETIMEDOUT);
  if (r == ETIMEDOUT && (took < 0.099 || took > 0.5)) failures++, fprintf(stderr, "%s took %.6f s\n", w, took);
  CHECK(pthread_mutex_unlock(&m) == 0);
  CHECK(pthread_cond_destroy(&cv) == 0);
}

static void *mixed_wait_thread(void *arg) {
  (void)arg;
  mixed_wait();
  return NULL;
}

static void conds(void) {
  pthread_condattr_t ca;
  CHECK(pthread_condattr_init(&ca) == 0);
  clockid_t clk = -1;
  CHECK(pthread_condattr_getclock(&ca, &clk) == 0);
  printf("condattr default clock: %s\n", clk == CLOCK_REALTIME ? "CLOCK_REALTIME" : "other");
  expect("condattr setclock CLOCK_PROCESS_CPUTIME_ID", pthread_condattr_setclock(&ca, CLOCK_PROCESS_CPUTIME_ID), EINVAL);
  expect("condattr setclock CLOCK_MONOTONIC", pthread_condattr_setclock(&ca, CLOCK_MONOTONIC), 0);
  CHECK(pthread_condattr_getclock(&ca, &clk) == 0);
  printf("condattr clock: %s\n", clk == CLOCK_MONOTONIC ? "CLOCK_MONOTONIC" : "other");
  pthread_cond_t mono, real = PTHREAD_COND_INITIALIZER;
  CHECK(pthread_cond_init(&mono, &ca) == 0);
  CHECK(pthread_condattr_destroy(&ca) == 0);
  pthread_mutex_t m = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;

  timed_case("monotonic cond timedwait", &mono, &m, CLOCK_MONOTONIC, 0);
  timed_case("realtime cond timedwait", &real, &m, CLOCK_REALTIME, 0);
  timed_case("realtime cond clockwait monotonic", &real, &m, CLOCK_MONOTONIC, 1);
  timed_case("monotonic cond clockwait realtime", &mono, &m, CLOCK_REALTIME, 1);

  CHECK(pthread_mutex_lock(&m) == 0);
  struct timespec past = thr_in_ms(CLOCK_REALTIME, -1000);
  expect("timedwait in the past", pthread_cond_timedwait(&real, &m, &past), ETIMEDOUT);
  struct timespec bad = {0, 2000000000L};
  expect("timedwait bad nsec", pthread_cond_timedwait(&real, &m, &bad), EINVAL);
  struct timespec ts = thr_in_ms(CLOCK_MONOTONIC, 100);
  expect("clockwait CLOCK_PROCESS_CPUTIME_ID", pthread_cond_clockwait(&real, &m, CLOCK_PROCESS_CPUTIME_ID, &ts), EINVAL);
  expect("mutex still held after refused waits: relock", pthread_mutex_lock(&m), EDEADLK);
  CHECK(pthread_mutex_unlock(&m) == 0);
  expect("cond_wait with mutex not held", pthread_cond_wait(&real, &m), EPERM);
  CHECK(pthread_cond_destroy(&mono) == 0);
  CHECK(pthread_cond_destroy(&real) == 0);

  /* A signal with nobody waiting is not remembered. */
  CHECK(pthread_cond_signal(&tcv) == 0);
  CHECK(pthread_cond_broadcast(&tcv) == 0);
  CHECK(pthread_mutex_lock(&tm) == 0);
  ts = thr_in_ms(CLOCK_REALTIME, 100);
  int r;
  do r = pthread_cond_timedwait(&tcv, &tm, &ts); while (r == 0); /* spurious wake-ups aside */
  expect("wait after a signal nobody waited for", r, ETIMEDOUT);
  CHECK(pthread_mutex_unlock(&tm) == 0);

  signal_one();

  pthread_t t;
  CHECK(pthread_create(&t, NULL, early_waiter, NULL) == 0);
  wait_for_waiting(1);
  CHECK(pthread_mutex_lock(&tm) == 0);
  tokens++;
  CHECK(pthread_cond_signal(&tcv) == 0);
  CHECK(pthread_mutex_unlock(&tm) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  expect("timedwait woken by signal", early_r, 0);
  printf("woken in time: %s\n", early_took > 0.0 && early_took < 2.0 ? "yes" : "NO");

  /* A process-shared condition variable with a private error-checking mutex, in this thread and in
   * another one. */
  mixed_wait();
  pthread_t mt;
  CHECK(pthread_create(&mt, NULL, mixed_wait_thread, NULL) == 0);
  CHECK(pthread_join(mt, NULL) == 0);

  /* Process-shared mutex and condition variable, between two threads of this process. */
  pthread_mutexattr_t ma;
  CHECK(pthread_mutexattr_init(&ma) == 0);
  CHECK(pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) == 0);
  CHECK(pthread_mutex_init(&ps_m, &ma) == 0);
  CHECK(pthread_mutexattr_destroy(&ma) == 0);
  CHECK(pthread_condattr_init(&ca) == 0);
  CHECK(pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED) == 0);
  CHECK(pthread_cond_init(&ps_cv, &ca) == 0);
  CHECK(pthread_condattr_destroy(&ca) == 0);
  pthread_t a, b;
  CHECK(pthread_create(&a, NULL, ps_side, (void *)0) == 0);
  CHECK(pthread_create(&b, NULL, ps_side, (void *)1) == 0);
  CHECK(pthread_join(a, NULL) == 0);
  CHECK(pthread_join(b, NULL) == 0);
  printf("pshared cond ping-pong: %ld turns\n", ps_count);
  if (ps_count != 1000) failures++;
  CHECK(pthread_cond_destroy(&ps_cv) == 0);
  CHECK(pthread_mutex_destroy(&ps_m) == 0);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  main_thread = pthread_self();
  keys();
  conds();
  printf("failures: %d\n", failures);
  return failures ? 1 : 0;
}
