/* stall_futex — threads blocked in a raw futex wait (syscall(SYS_futex, FUTEX_WAIT_PRIVATE), as
 * libstdc++, Rust's std and hand-written locks do) on a word that a third thread sets only after it has
 * done blocking work of its own: a pipe read fed by a fourth thread 50 ms later, then a 50 ms sleep.
 *
 * Natively every thread has its own kernel task, so the waker runs while the waiters sleep in the
 * kernel. A runtime that runs threads as coroutines on a few OS threads must not let a waiter's
 * futex wait hold up the waker (or the feeder), or this deadlocks. Two waiters, so that with two
 * workers one can sit on each.
 *
 * Each wait is bounded (8 s, far beyond the ~100 ms the wake takes natively), so a stalled run ends
 * with "woken: no" lines rather than hanging until the harness's timeout. */
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "progs_util.h"

enum { WAITERS = 2, WAIT_LIMIT_S = 8 };

static _Atomic int word;   /* 0 until the waker has done its work, then 1 */
static int feed[2];        /* feeder -> waker */
static _Atomic int waiting; /* waiters that got as far as their first futex wait */

static long futex(_Atomic int *addr, int op, int val, const struct timespec *ts) {
  return syscall(SYS_futex, (int *)addr, op, val, ts, NULL, 0);
}

static void *waiter(void *arg) {
  long id = (long)arg;
  double t0 = now_s(), left;
  int announced = 0;
  while (atomic_load(&word) == 0 && (left = WAIT_LIMIT_S - (now_s() - t0)) > 0) {
    if (!announced) announced = 1, atomic_fetch_add(&waiting, 1);
    struct timespec ts = {(time_t)left, (long)((left - (time_t)left) * 1e9)};
    long r = futex(&word, FUTEX_WAIT_PRIVATE, 0, &ts);
    CHECK(r == 0 || errno == EAGAIN || errno == EINTR || errno == ETIMEDOUT);
  }
  int woken = atomic_load(&word) == 1;
  fprintf(stderr, "waiter %ld: %s after %.3f s\n", id, woken ? "woken" : "gave up", now_s() - t0);
  return (void *)(long)woken;
}

static void *waker(void *arg) {
  (void)arg;
  char c;
  CHECK(read(feed[0], &c, 1) == 1); /* blocks until the feeder writes */
  msleep(50);
  atomic_store(&word, 1);
  CHECK(futex(&word, FUTEX_WAKE_PRIVATE, WAITERS, NULL) >= 0);
  return (void *)(long)c;
}

static void *feeder(void *arg) {
  (void)arg;
  msleep(50);
  write_all(feed[1], "x", 1);
  return NULL;
}

int main(void) {
  CHECK(pipe(feed) == 0);
  pthread_t w[WAITERS], wk, fd;
  double t0 = now_s();
  for (long i = 0; i < WAITERS; i++) CHECK(pthread_create(&w[i], NULL, waiter, (void *)i) == 0);
  CHECK(pthread_create(&wk, NULL, waker, NULL) == 0);
  CHECK(pthread_create(&fd, NULL, feeder, NULL) == 0);
  void *v;
  for (int i = 0; i < WAITERS; i++) {
    CHECK(pthread_join(w[i], &v) == 0);
    printf("waiter %d woken by the waker: %s\n", i, v ? "yes" : "no");
  }
  CHECK(pthread_join(wk, &v) == 0);
  printf("waker read '%c' from the feeder\n", (char)(long)v);
  CHECK(pthread_join(fd, NULL) == 0);
  double took = now_s() - t0;
  fprintf(stderr, "took %.3f s, %d waiter(s) reached the futex wait\n", took, atomic_load(&waiting));
  printf("done in under 4 s: %s\n", took < 4 ? "yes" : "no");
  return 0;
}
