/* thr_join_exit — thread life cycle: pthread_exit from a nested call hands its value to
 * pthread_join; detached threads (by attribute, and by pthread_detach after creation) run to the end;
 * pthread_tryjoin_np / pthread_timedjoin_np report EBUSY / ETIMEDOUT while the thread runs and join
 * it afterwards; a thread's pthread_self() is the id its creator got; joining oneself is EDEADLK; a
 * thread with a 2 MiB stack can use 1.5 MiB of it; errno is per thread. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "progs.h"
#include "thr_util.h"

static void wait_flag(_Atomic int *f, int want) {
  for (int i = 0; i < 10000 && atomic_load(f) != want; i++) CHECK(usleep(1000) == 0);
  CHECK(atomic_load(f) == want);
}

/* ---- pthread_exit from deep inside ---------------------------------------------------------------- */

static _Atomic int after_exit;
static void nested(int depth, long value) {
  if (depth == 0) {
    if (value >= 0) pthread_exit((void *)value);
    return;
  }
  nested(depth - 1, value + 1);
  atomic_store(&after_exit, 1); /* never reached */
}

static void *exiting_thread(void *arg) {
  nested(5, (long)(intptr_t)arg);
  atomic_store(&after_exit, 1);
  return (void *)-1;
}

static void *returning_thread(void *arg) { return (void *)((intptr_t)arg * 2); }

/* ---- detached threads ----------------------------------------------------------------------------- */

static _Atomic int detached_done;
static _Atomic int detached_go;
static void *detached_thread(void *arg) {
  (void)arg;
  wait_flag(&detached_go, 1);
  CHECK(usleep(10000) == 0);
  atomic_fetch_add(&detached_done, 1);
  return (void *)42;
}

/* ---- try/timed join ------------------------------------------------------------------------------- */

static _Atomic int release_slow;
static void *slow_thread(void *arg) {
  wait_flag(&release_slow, 1);
  return arg;
}

static void *releaser(void *arg) {
  (void)arg;
  CHECK(usleep(200000) == 0);
  atomic_store(&release_slow, 1);
  return NULL;
}

/* ---- identity ------------------------------------------------------------------------------------- */

static pthread_barrier_t id_bar;
static pthread_t id_given[4];
static _Atomic int id_equal, id_unequal;
static void *id_thread(void *arg) {
  int i = (int)(intptr_t)arg;
  pthread_barrier_wait(&id_bar); /* the creator has written id_given[] by now */
  pthread_t me = pthread_self();
  if (pthread_equal(me, id_given[i])) atomic_fetch_add(&id_equal, 1);
  for (int j = 0; j < 4; j++)
    if (j != i && pthread_equal(me, id_given[j])) atomic_fetch_add(&id_unequal, 1);
  int r = pthread_join(me, NULL);
  return (void *)(intptr_t)r;
}

/* ---- a big stack ---------------------------------------------------------------------------------- */

static long deep(int n) {
  volatile char buf[16 * 1024];
  buf[0] = (char)n;
  buf[sizeof buf - 1] = (char)(n >> 8);
  for (size_t i = 0; i < sizeof buf; i += 512) buf[i] = (char)(i + (size_t)n);
  long s = n ? deep(n - 1) : 0;
  for (size_t i = 0; i < sizeof buf; i += 512) s += buf[i];
  return s + buf[sizeof buf - 1];
}

static void *big_stack_thread(void *arg) {
  (void)arg;
  /* 96 frames of a bit more than 16 KiB: about 1.5 MiB of stack. */
  return (void *)deep(95);
}

/* ---- errno ---------------------------------------------------------------------------------------- */

static _Atomic int errno_bad;
static void *errno_thread(void *arg) {
  int mine = (int)(intptr_t)arg;
  for (int i = 0; i < 50; i++) {
    errno = mine;
    if (i % 2) CHECK(usleep(200) == 0);
    else CHECK(sched_yield() == 0);
    if (errno != mine) atomic_fetch_add(&errno_bad, 1);
  }
  /* A failing call sets this thread's errno only. */
  errno = 0;
  if (close(-1) != -1 || errno != EBADF) atomic_fetch_add(&errno_bad, 1);
  CHECK(usleep(1000) == 0);
  if (errno != EBADF) atomic_fetch_add(&errno_bad, 1);
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  void *ret;
  pthread_t t, ts[4];

  CHECK(pthread_create(&t, NULL, exiting_thread, (void *)100) == 0);
  expect("join pthread_exit thread", pthread_join(t, &ret), 0);
  printf("pthread_exit value: %ld, code after it ran: %s\n", (long)(intptr_t)ret, atomic_load(&after_exit) ? "yes" : "no");
  CHECK(pthread_create(&t, NULL, returning_thread, (void *)21) == 0);
  expect("join returning thread", pthread_join(t, &ret), 0);
  printf("return value: %ld\n", (long)(intptr_t)ret);
  CHECK(pthread_create(&t, NULL, returning_thread, (void *)1) == 0);
  expect("join with NULL value pointer", pthread_join(t, NULL), 0);

  /* Detached by attribute, and by pthread_detach after creation. */
  pthread_attr_t a;
  CHECK(pthread_attr_init(&a) == 0);
  CHECK(pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED) == 0);
  int ds = -1;
  CHECK(pthread_attr_getdetachstate(&a, &ds) == 0);
  printf("attr detachstate: %s\n", ds == PTHREAD_CREATE_DETACHED ? "DETACHED" : "other");
  for (int i = 0; i < 3; i++) CHECK(pthread_create(&t, &a, detached_thread, NULL) == 0);
  CHECK(pthread_attr_destroy(&a) == 0);
  CHECK(pthread_create(&t, NULL, detached_thread, NULL) == 0);
  expect("pthread_detach running thread", pthread_detach(t), 0);
  expect("pthread_detach it again", pthread_detach(t), EINVAL);
  atomic_store(&detached_go, 1);
  wait_flag(&detached_done, 4);
  printf("detached threads finished: %d\n", atomic_load(&detached_done));

  /* tryjoin and timedjoin. */
  int r;
  atomic_store(&release_slow, 0);
  CHECK(pthread_create(&t, NULL, slow_thread, (void *)7) == 0);
  expect("tryjoin while running", pthread_tryjoin_np(t, &ret), EBUSY);
  struct timespec d = thr_in_ms(CLOCK_REALTIME, 100);
  double t0 = now_s();
  expect("timedjoin while running", pthread_timedjoin_np(t, &ret, &d), ETIMEDOUT);
  double took = now_s() - t0;
  int ok = took >= 0.099 && took < 0.5;
  printf("timedjoin waited ~100ms: %s\n", ok ? "yes" : "NO");
  if (!ok) failures++, fprintf(stderr, "timedjoin took %.6f s\n", took);
  d = thr_in_ms(CLOCK_REALTIME, -1000);
  expect("timedjoin in the past while running", pthread_timedjoin_np(t, &ret, &d), ETIMEDOUT);
  atomic_store(&release_slow, 1);
  d = thr_in_ms(CLOCK_REALTIME, 5000);
  ret = NULL;
  expect("timedjoin after release", pthread_timedjoin_np(t, &ret, &d), 0);
  printf("timedjoin value: %ld\n", (long)(intptr_t)ret);

  /* glibc does not refuse a bad timespec here: it keeps waiting (spinning) until the thread ends,
   * then joins it. A releaser ends the thread after 200 ms. */
  atomic_store(&release_slow, 0);
  CHECK(pthread_create(&t, NULL, slow_thread, (void *)9) == 0);
  pthread_t rel;
  CHECK(pthread_create(&rel, NULL, releaser, NULL) == 0);
  struct timespec bad = {0, 2000000000L};
  ret = NULL;
  r = pthread_timedjoin_np(t, &ret, &bad);
  expect("timedjoin bad nsec while running", r, 0);
  if (r != 0) CHECK(pthread_join(t, &ret) == 0);
  printf("timedjoin bad nsec value: %ld\n", (long)(intptr_t)ret);
  CHECK(pthread_join(rel, NULL) == 0);

  atomic_store(&release_slow, 0);
  CHECK(pthread_create(&t, NULL, slow_thread, (void *)8) == 0);
  expect("tryjoin while running", pthread_tryjoin_np(t, &ret), EBUSY);
  atomic_store(&release_slow, 1);
  r = EBUSY;
  for (int i = 0; i < 10000 && r == EBUSY; i++) {
    CHECK(usleep(1000) == 0);
    r = pthread_tryjoin_np(t, &ret);
  }
  expect("tryjoin after it ended", r, 0);
  printf("tryjoin value: %ld\n", (long)(intptr_t)ret);

  /* Identity. */
  printf("main pthread_equal(self, self): %s\n", pthread_equal(pthread_self(), pthread_self()) ? "yes" : "no");
  expect("main joins itself", pthread_join(pthread_self(), NULL), EDEADLK);
  CHECK(pthread_barrier_init(&id_bar, NULL, 5) == 0);
  for (int i = 0; i < 4; i++) {
    CHECK(pthread_create(&ts[i], NULL, id_thread, (void *)(intptr_t)i) == 0);
    id_given[i] = ts[i];
  }
  pthread_barrier_wait(&id_bar);
  int self_join[4];
  for (int i = 0; i < 4; i++) {
    CHECK(pthread_join(ts[i], &ret) == 0);
    self_join[i] = (int)(intptr_t)ret;
  }
  CHECK(pthread_barrier_destroy(&id_bar) == 0);
  printf("threads whose pthread_self equals their id: %d, equal to another's: %d\n", atomic_load(&id_equal),
         atomic_load(&id_unequal));
  printf("threads joining themselves: %s %s %s %s\n", en(self_join[0]), en(self_join[1]), en(self_join[2]),
         en(self_join[3]));
  printf("distinct ids: %s\n", !pthread_equal(ts[0], ts[1]) && !pthread_equal(ts[2], ts[3]) ? "yes" : "no");

  /* A 2 MiB stack, 1.5 MiB of it used. */
  CHECK(pthread_attr_init(&a) == 0);
  CHECK(pthread_attr_setstacksize(&a, 2 * 1024 * 1024) == 0);
  size_t ss = 0;
  CHECK(pthread_attr_getstacksize(&a, &ss) == 0);
  printf("attr stacksize: %zu\n", ss);
  CHECK(pthread_create(&t, &a, big_stack_thread, NULL) == 0);
  CHECK(pthread_attr_destroy(&a) == 0);
  expect("join big stack thread", pthread_join(t, &ret), 0);
  printf("big stack result: %ld\n", (long)(intptr_t)ret);

  /* errno per thread. */
  int codes[] = {EINTR, EAGAIN, ENOENT, EACCES, ERANGE, EPIPE};
  pthread_t et[6];
  errno = ENOMEM;
  for (int i = 0; i < 6; i++) CHECK(pthread_create(&et[i], NULL, errno_thread, (void *)(intptr_t)codes[i]) == 0);
  CHECK(usleep(5000) == 0);
  int main_errno_ok = errno == ENOMEM;
  for (int i = 0; i < 6; i++) CHECK(pthread_join(et[i], NULL) == 0);
  printf("errno mixed between threads: %d, main's errno kept: %s\n", atomic_load(&errno_bad),
         main_errno_ok && errno == ENOMEM ? "yes" : "no");
  if (atomic_load(&errno_bad) || !main_errno_ok) failures++;

  printf("failures: %d\n", failures);
  return failures ? 1 : 0;
}
