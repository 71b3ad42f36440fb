/* thr_sem — unnamed semaphores: ping-pong between two threads (100 000 round trips), the error cases
 * (trywait on zero, timedwait timing out, a bad timespec, overflow, a bad initial value), values
 * reported by sem_getvalue, several waiters sharing posts, and a process-shared semaphore in shared
 * memory between a fork()ed child and its parent. */
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "progs.h"

#define ROUNDS 100000

static const char *en(int e) {
  static char buf[32];
  switch (e) {
  case 0: return "OK";
  case EAGAIN: return "EAGAIN";
  case ETIMEDOUT: return "ETIMEDOUT";
  case EINVAL: return "EINVAL";
  case EOVERFLOW: return "EOVERFLOW";
  case EINTR: return "EINTR";
  default: snprintf(buf, sizeof buf, "E%d", e); return buf;
  }
}

static int failures;
/* For calls returning 0 or -1 with errno: report "OK" or the errno name. */
static void expect(const char *what, int r, int want_errno) {
  int e = r == 0 ? 0 : r == -1 ? errno : -1000;
  printf("%s: %s\n", what, r == 0 || r == -1 ? en(e) : "BAD RETURN");
  if (e != want_errno) {
    fprintf(stderr, "%s: got %d (%s), expected %s\n", what, r, en(e), en(want_errno));
    failures++;
  }
}

static int value(sem_t *s) {
  int v = -12345;
  CHECK(sem_getvalue(s, &v) == 0);
  return v;
}

static struct timespec in_ms(long ms) {
  struct timespec ts;
  CHECK(clock_gettime(CLOCK_REALTIME, &ts) == 0);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  return ts;
}

/* ---- ping-pong ------------------------------------------------------------------------------------ */

static sem_t ping, pong;
static long ball; /* handed back and forth: only one side touches it at a time */

static void *ponger(void *arg) {
  (void)arg;
  for (int i = 0; i < ROUNDS; i++) {
    CHECK(sem_wait(&ping) == 0);
    ball = ball * 3 + 1;
    CHECK(sem_post(&pong) == 0);
  }
  return NULL;
}

static void *pinger(void *arg) {
  (void)arg;
  for (int i = 0; i < ROUNDS; i++) {
    ball = ball % 1000003;
    CHECK(sem_post(&ping) == 0);
    CHECK(sem_wait(&pong) == 0);
  }
  return NULL;
}

/* ---- several waiters ------------------------------------------------------------------------------ */

static sem_t many;
static _Atomic int got_many;
static void *many_waiter(void *arg) {
  (void)arg;
  for (int i = 0; i < 250; i++) {
    CHECK(sem_wait(&many) == 0);
    atomic_fetch_add(&got_many, 1);
  }
  return NULL;
}

/* A waiter blocked in sem_timedwait that a post wakes well before its deadline. */
static sem_t late;
static double late_took;
static int late_r, late_errno;
static void *late_waiter(void *arg) {
  (void)arg;
  struct timespec ts = in_ms(5000);
  double t0 = now_s();
  late_r = sem_timedwait(&late, &ts);
  late_errno = errno;
  late_took = now_s() - t0;
  return NULL;
}

static void pshared_fork(void) {
  struct shm {
    sem_t to_child, to_parent;
    long counter;
  } *shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(shm != MAP_FAILED);
  CHECK(sem_init(&shm->to_child, 1, 0) == 0);
  CHECK(sem_init(&shm->to_parent, 1, 0) == 0);
  shm->counter = 0;
  fflush(stdout);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    for (int i = 0; i < 1000; i++) {
      if (sem_wait(&shm->to_child) != 0) _exit(10);
      shm->counter += 2;
      if (sem_post(&shm->to_parent) != 0) _exit(11);
    }
    /* A last post after a pause: the parent is blocked in sem_wait meanwhile. */
    usleep(100000);
    shm->counter += 1000000;
    if (sem_post(&shm->to_parent) != 0) _exit(12);
    _exit(0);
  }
  for (int i = 0; i < 1000; i++) {
    shm->counter += 1;
    CHECK(sem_post(&shm->to_child) == 0);
    CHECK(sem_wait(&shm->to_parent) == 0);
  }
  double t0 = now_s();
  CHECK(sem_wait(&shm->to_parent) == 0);
  double took = now_s() - t0;
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  printf("pshared fork child exit: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  printf("pshared fork counter: %ld\n", shm->counter);
  printf("pshared parent waited for the last post: %s\n", took > 0.05 ? "yes" : "no");
  if (shm->counter != 1003000 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) failures++;
  printf("pshared values after: %d %d\n", value(&shm->to_child), value(&shm->to_parent));
  CHECK(sem_destroy(&shm->to_child) == 0);
  CHECK(sem_destroy(&shm->to_parent) == 0);
  CHECK(munmap(shm, sizeof *shm) == 0);
}

/* A process-shared semaphore is still a semaphore between the threads of one process. */
static sem_t ps_ping, ps_pong;
static long ps_ball;
static void *ps_ponger(void *arg) {
  (void)arg;
  for (int i = 0; i < 1000; i++) {
    CHECK(sem_wait(&ps_ping) == 0);
    ps_ball += 2;
    CHECK(sem_post(&ps_pong) == 0);
  }
  return NULL;
}
static void *ps_pinger(void *arg) {
  (void)arg;
  for (int i = 0; i < 1000; i++) {
    ps_ball += 1;
    if (i % 100 == 0) CHECK(usleep(1000) == 0); /* the other side is waiting meanwhile */
    CHECK(sem_post(&ps_ping) == 0);
    CHECK(sem_wait(&ps_pong) == 0);
  }
  return NULL;
}

static void pshared_threads(void) {
  CHECK(sem_init(&ps_ping, 1, 0) == 0);
  CHECK(sem_init(&ps_pong, 1, 0) == 0);
  pthread_t a, b;
  CHECK(pthread_create(&a, NULL, ps_ponger, NULL) == 0);
  CHECK(pthread_create(&b, NULL, ps_pinger, NULL) == 0);
  CHECK(pthread_join(a, NULL) == 0);
  CHECK(pthread_join(b, NULL) == 0);
  printf("pshared between threads: ball %ld, values %d %d\n", ps_ball, value(&ps_ping), value(&ps_pong));
  if (ps_ball != 3000) failures++;
  CHECK(sem_destroy(&ps_ping) == 0);
  CHECK(sem_destroy(&ps_pong) == 0);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);

  /* Ping-pong. */
  CHECK(sem_init(&ping, 0, 0) == 0);
  CHECK(sem_init(&pong, 0, 0) == 0);
  pthread_t a, b;
  double t0 = now_s();
  CHECK(pthread_create(&a, NULL, ponger, NULL) == 0);
  CHECK(pthread_create(&b, NULL, pinger, NULL) == 0);
  CHECK(pthread_join(a, NULL) == 0);
  CHECK(pthread_join(b, NULL) == 0);
  fprintf(stderr, "ping-pong: %d round trips in %.3f s\n", ROUNDS, now_s() - t0);
  printf("ping-pong %d rounds: ball %ld, values %d %d\n", ROUNDS, ball, value(&ping), value(&pong));

  /* Error cases. */
  sem_t s;
  CHECK(sem_init(&s, 0, 0) == 0);
  printf("initial value: %d\n", value(&s));
  expect("trywait on 0", sem_trywait(&s), EAGAIN);
  struct timespec ts = in_ms(100);
  t0 = now_s();
  expect("timedwait on 0", sem_timedwait(&s, &ts), ETIMEDOUT);
  double took = now_s() - t0;
  int ok = took >= 0.099 && took < 0.5;
  printf("timedwait waited ~100ms: %s\n", ok ? "yes" : "NO");
  if (!ok) failures++, fprintf(stderr, "timedwait took %.6f s\n", took);
  struct timespec cts;
  CHECK(clock_gettime(CLOCK_MONOTONIC, &cts) == 0);
  cts.tv_nsec += 100000000L;
  if (cts.tv_nsec >= 1000000000L) cts.tv_sec++, cts.tv_nsec -= 1000000000L;
  t0 = now_s();
  expect("clockwait monotonic on 0", sem_clockwait(&s, CLOCK_MONOTONIC, &cts), ETIMEDOUT);
  took = now_s() - t0;
  ok = took >= 0.099 && took < 0.5;
  printf("clockwait waited ~100ms: %s\n", ok ? "yes" : "NO");
  if (!ok) failures++, fprintf(stderr, "clockwait took %.6f s\n", took);
  ts = in_ms(-1000);
  expect("timedwait in the past on 0", sem_timedwait(&s, &ts), ETIMEDOUT);
  struct timespec bad = {0, 2000000000L};
  expect("timedwait bad nsec on 0", sem_timedwait(&s, &bad), EINVAL);
  struct timespec badneg = {0, -1};
  expect("timedwait negative nsec on 0", sem_timedwait(&s, &badneg), EINVAL);
  expect("post", sem_post(&s), 0);
  expect("timedwait bad nsec on 1", sem_timedwait(&s, &bad), EINVAL);
  printf("value after refused timedwait: %d\n", value(&s));
  ts = in_ms(-1000);
  expect("timedwait in the past on 1", sem_timedwait(&s, &ts), 0);
  expect("post", sem_post(&s), 0);
  expect("trywait on 1", sem_trywait(&s), 0);
  printf("value: %d\n", value(&s));
  for (int i = 0; i < 1000; i++) CHECK(sem_post(&s) == 0);
  printf("value after 1000 posts: %d\n", value(&s));
  for (int i = 0; i < 400; i++) CHECK(sem_wait(&s) == 0);
  printf("value after 400 waits: %d\n", value(&s));
  int tries = 0;
  while (tries < 10000 && sem_trywait(&s) == 0) tries++;
  printf("trywait succeeded %d times, then: %s\n", tries, en(errno));
  expect("destroy", sem_destroy(&s), 0);

  expect("init SEM_VALUE_MAX", sem_init(&s, 0, SEM_VALUE_MAX), 0);
  printf("value: %s\n", value(&s) == SEM_VALUE_MAX ? "SEM_VALUE_MAX" : "other");
  expect("post at SEM_VALUE_MAX", sem_post(&s), EOVERFLOW);
  expect("trywait at SEM_VALUE_MAX", sem_trywait(&s), 0);
  expect("post after", sem_post(&s), 0);
  expect("destroy", sem_destroy(&s), 0);
  expect("init above SEM_VALUE_MAX", sem_init(&s, 0, (unsigned)SEM_VALUE_MAX + 1u), EINVAL);

  /* Four waiters share 1000 posts. */
  CHECK(sem_init(&many, 0, 0) == 0);
  pthread_t w[4];
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&w[i], NULL, many_waiter, NULL) == 0);
  for (int i = 0; i < 1000; i++) {
    CHECK(sem_post(&many) == 0);
    if (i % 100 == 0) CHECK(usleep(1000) == 0);
  }
  for (int i = 0; i < 4; i++) CHECK(pthread_join(w[i], NULL) == 0);
  printf("four waiters got %d, value left %d\n", atomic_load(&got_many), value(&many));
  CHECK(sem_destroy(&many) == 0);

  /* A timed waiter woken by a post long before its deadline. */
  CHECK(sem_init(&late, 0, 0) == 0);
  pthread_t lw;
  CHECK(pthread_create(&lw, NULL, late_waiter, NULL) == 0);
  CHECK(usleep(100000) == 0);
  CHECK(sem_post(&late) == 0);
  CHECK(pthread_join(lw, NULL) == 0);
  errno = late_errno;
  expect("timedwait woken by post", late_r, 0);
  printf("woken in time: %s\n", late_took > 0.05 && late_took < 2.0 ? "yes" : "NO");
  CHECK(sem_destroy(&late) == 0);

  pshared_fork();
  pshared_threads();
  printf("failures: %d\n", failures);
  return failures ? 1 : 0;
}
