/* parked100 — a plain pthread program (knows nothing of cohook) whose 100 threads all block, each in
 * a different kind of wait, for tests/gdb/check_gdb.sh to look at with gdb:
 *
 *   40 "reader-NN"   read() on a pipe nobody writes to
 *   30 "locker-NN"   pthread_mutex_lock() on a mutex the main thread holds
 *   20 "sleeper-NN"  nanosleep() for an hour
 *   10 "waiter-NN"   pthread_cond_wait() on a condition nobody signals
 *
 * Each thread names itself (pthread_setname_np), counts itself in `arrived` and blocks. The main
 * thread waits for all 100, gives the last ones a moment to get from the count into their wait, prints
 * "ready" and then pauses until a signal ends the program. If pause() ever returns (a debugger that
 * left the main thread's registers or interrupted system call changed), it says so and exits 3: the
 * test checks that the program is still silent and alive after gdb has detached. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { READERS = 40, LOCKERS = 30, SLEEPERS = 20, WAITERS = 10, ALL = READERS + LOCKERS + SLEEPERS + WAITERS };

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;     /* the main thread keeps it */
static pthread_mutex_t cond_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;      /* nobody signals it */
static int pipes[READERS][2];
static atomic_int arrived;

static void name_self(const char *kind, long i) {
  char name[16];
  snprintf(name, sizeof name, "%s-%02ld", kind, i);
  pthread_setname_np(pthread_self(), name);
}

static void *reader_main(void *arg) {
  long i = (long)arg;
  name_self("reader", i);
  char c;
  atomic_fetch_add(&arrived, 1);
  ssize_t n = read(pipes[i][0], &c, 1);
  fprintf(stderr, "parked100: reader %ld: read returned %zd\n", i, n);
  exit(2);
}

static void *locker_main(void *arg) {
  long i = (long)arg;
  name_self("locker", i);
  atomic_fetch_add(&arrived, 1);
  pthread_mutex_lock(&held);
  fprintf(stderr, "parked100: locker %ld got the mutex\n", i);
  exit(2);
}

static void *sleeper_main(void *arg) {
  long i = (long)arg;
  name_self("sleeper", i);
  atomic_fetch_add(&arrived, 1);
  struct timespec hour = {3600, 0};
  nanosleep(&hour, NULL);
  fprintf(stderr, "parked100: sleeper %ld woke up\n", i);
  exit(2);
}

static void *waiter_main(void *arg) {
  long i = (long)arg;
  name_self("waiter", i);
  pthread_mutex_lock(&cond_mutex);
  atomic_fetch_add(&arrived, 1);
  for (;;) pthread_cond_wait(&never, &cond_mutex); /* spurious wake-ups: wait again */
  return NULL;
}

int main(void) {
  pthread_mutex_lock(&held);
  for (int i = 0; i < READERS; i++)
    if (pipe(pipes[i]) != 0) { perror("pipe"); return 1; }
  struct { void *(*fn)(void *); int n; } kinds[] = {
      {reader_main, READERS}, {locker_main, LOCKERS}, {sleeper_main, SLEEPERS}, {waiter_main, WAITERS}};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
    for (long i = 0; i < kinds[k].n; i++) {
      pthread_t t;
      int rc = pthread_create(&t, NULL, kinds[k].fn, (void *)i);
      if (rc != 0) { fprintf(stderr, "pthread_create: %s\n", strerror(rc)); return 1; }
      pthread_detach(t);
    }
  while (atomic_load(&arrived) < ALL) usleep(1000);
  usleep(300 * 1000); /* from the count into the wait: a few instructions, given plenty of time */
  printf("ready\n");
  fflush(stdout);
  pause();
  printf("parked100: pause() returned\n");
  return 3;
}
