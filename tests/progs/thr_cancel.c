/* thr_cancel — deferred cancellation and pthread_exit unwinding, as glibc does them (issue 11):
 * threads blocked in read, pthread_cond_wait, sleep, sem_wait and pthread_join are cancelled and
 * their pthread_cleanup_push handlers run (the condvar waiter's with its mutex held again); a
 * pthread_testcancel loop; a request made while cancellation is disabled acts once enabled;
 * pthread_exit from nested calls runs every handler, innermost first; join sees PTHREAD_CANCELED. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CHECK(c)                                                                 \
  do {                                                                           \
    if (!(c)) {                                                                  \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);      \
      _exit(2);                                                                  \
    }                                                                            \
  } while (0)

static _Atomic int started;
static void say(void *what) { printf("cleanup: %s\n", (const char *)what); }
static void wait_started(int n) {
  while (atomic_load(&started) < n) usleep(1000);
  usleep(20000); /* and blocked */
}
static const char *joined(pthread_t t) {
  void *r = NULL;
  CHECK(pthread_join(t, &r) == 0);
  return r == PTHREAD_CANCELED ? "PTHREAD_CANCELED" : "a value";
}

static int pipefd[2];
static void *in_read(void *a) {
  (void)a;
  char c;
  pthread_cleanup_push(say, "reader");
  atomic_fetch_add(&started, 1);
  (void)!read(pipefd[0], &c, 1);
  printf("reader: read returned (wrong)\n");
  pthread_cleanup_pop(0);
  return NULL;
}

static pthread_mutex_t m;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static void unlock_if_mine(void *a) {
  (void)a;
  /* An error-checking mutex: unlocking answers 0 only for its owner. */
  printf("cleanup: condvar waiter, mutex held again: %s\n", pthread_mutex_unlock(&m) == 0 ? "yes" : "no");
}
static void *in_cond(void *a) {
  (void)a;
  CHECK(pthread_mutex_lock(&m) == 0);
  pthread_cleanup_push(unlock_if_mine, NULL);
  atomic_fetch_add(&started, 1);
  for (;;) pthread_cond_wait(&cv, &m);
  pthread_cleanup_pop(0);
  return NULL;
}

static void *in_sleep(void *a) {
  (void)a;
  pthread_cleanup_push(say, "sleeper");
  atomic_fetch_add(&started, 1);
  sleep(100);
  printf("sleeper: woke up (wrong)\n");
  pthread_cleanup_pop(0);
  return NULL;
}

static sem_t sem;
static void *in_sem(void *a) {
  (void)a;
  pthread_cleanup_push(say, "semaphore waiter");
  atomic_fetch_add(&started, 1);
  sem_wait(&sem);
  pthread_cleanup_pop(0);
  return NULL;
}

static void *forever(void *a) {
  (void)a;
  for (;;) sleep(100);
  return NULL;
}
static pthread_t never_ends;
static void *in_join(void *a) {
  (void)a;
  pthread_cleanup_push(say, "joiner");
  atomic_fetch_add(&started, 1);
  pthread_join(never_ends, NULL);
  pthread_cleanup_pop(0);
  return NULL;
}

static _Atomic long spins;
static void *testcancel_loop(void *a) {
  (void)a;
  pthread_cleanup_push(say, "testcancel loop");
  atomic_fetch_add(&started, 1);
  for (;;) {
    atomic_fetch_add(&spins, 1);
    pthread_testcancel();
    if (atomic_load(&spins) % 1000 == 0) sched_yield();
  }
  pthread_cleanup_pop(0);
  return NULL;
}

static _Atomic int may_enable;
static void *disabled_first(void *a) {
  (void)a;
  int old = -1;
  CHECK(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old) == 0);
  printf("disabled: old state was %s\n", old == PTHREAD_CANCEL_ENABLE ? "ENABLE" : "DISABLE");
  pthread_cleanup_push(say, "disabled then enabled");
  atomic_fetch_add(&started, 1);
  while (!atomic_load(&may_enable)) usleep(1000); /* usleep: a cancellation point, disabled */
  printf("disabled: still running after the request\n");
  CHECK(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old) == 0);
  printf("disabled: old state was %s\n", old == PTHREAD_CANCEL_ENABLE ? "ENABLE" : "DISABLE");
  usleep(1000); /* acts here */
  printf("disabled: survived (wrong)\n");
  pthread_cleanup_pop(0);
  return NULL;
}

static void level3(void) {
  pthread_cleanup_push(say, "level 3");
  pthread_exit((void *)42);
  pthread_cleanup_pop(0);
}
static void level2(void) {
  pthread_cleanup_push(say, "level 2");
  level3();
  pthread_cleanup_pop(0);
}
static void *exits_nested(void *a) {
  (void)a;
  pthread_cleanup_push(say, "level 1");
  level2();
  pthread_cleanup_pop(0);
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  CHECK(pipe(pipefd) == 0);
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
  CHECK(pthread_mutex_init(&m, &ma) == 0);
  CHECK(sem_init(&sem, 0, 0) == 0);
  pthread_t t;

  void *(*fns[])(void *) = {in_read, in_cond, in_sleep, in_sem};
  const char *names[] = {"read", "cond_wait", "sleep", "sem_wait"};
  for (int i = 0; i < 4; i++) {
    atomic_store(&started, 0);
    CHECK(pthread_create(&t, NULL, fns[i], NULL) == 0);
    wait_started(1);
    CHECK(pthread_cancel(t) == 0);
    printf("%s: join says %s\n", names[i], joined(t));
  }

  CHECK(pthread_create(&never_ends, NULL, forever, NULL) == 0);
  atomic_store(&started, 0);
  CHECK(pthread_create(&t, NULL, in_join, NULL) == 0);
  wait_started(1);
  CHECK(pthread_cancel(t) == 0);
  printf("join: join says %s\n", joined(t));

  atomic_store(&started, 0);
  CHECK(pthread_create(&t, NULL, testcancel_loop, NULL) == 0);
  wait_started(1);
  CHECK(pthread_cancel(t) == 0);
  printf("testcancel: join says %s, spun: %s\n", joined(t), atomic_load(&spins) > 0 ? "yes" : "no");

  atomic_store(&started, 0);
  CHECK(pthread_create(&t, NULL, disabled_first, NULL) == 0);
  wait_started(1);
  CHECK(pthread_cancel(t) == 0);
  usleep(20000);
  atomic_store(&may_enable, 1);
  printf("disabled: join says %s\n", joined(t));

  void *r = NULL;
  CHECK(pthread_create(&t, NULL, exits_nested, NULL) == 0);
  CHECK(pthread_join(t, &r) == 0);
  printf("pthread_exit: join says %ld\n", (long)r);

  /* A cancelled thread that already ended: the request is accepted, join sees its value. */
  CHECK(pthread_create(&t, NULL, exits_nested, NULL) == 0);
  usleep(20000);
  printf("cancel an ended thread: %s\n", pthread_cancel(t) == 0 ? "0" : "error");
  CHECK(pthread_join(t, &r) == 0);
  printf("ended thread: join says %ld\n", (long)r);
  return 0;
}
