/* thr_barrier — 16 threads meet at a pthread_barrier 1000 rounds over. Each round every thread
 * writes its slot, waits, checks every other slot holds this round's value, and waits again. Exactly
 * one waiter per barrier cycle gets PTHREAD_BARRIER_SERIAL_THREAD. Also: a count of 0 is refused, a
 * barrier of 1 never waits, and a barrier can be destroyed and initialised again. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "progs.h"

#define NTHREADS 16
#define ROUNDS 1000

static pthread_barrier_t bar;
static long slot[NTHREADS];
static _Atomic int serial[2 * ROUNDS];
static _Atomic long mismatches, bad_returns;
static int nthreads = NTHREADS; /* taking part in `bar` */

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  for (int r = 0; r < ROUNDS; r++) {
    slot[id] = (long)r * NTHREADS + id;
    if (r % 97 == id) CHECK(sched_yield() == 0);
    if (r % 331 == id) CHECK(usleep(200) == 0); /* a late arrival now and then */
    int w = pthread_barrier_wait(&bar);
    if (w == PTHREAD_BARRIER_SERIAL_THREAD) atomic_fetch_add(&serial[2 * r], 1);
    else if (w != 0) atomic_fetch_add(&bad_returns, 1);
    for (int j = 0; j < nthreads; j++)
      if (slot[j] != (long)r * NTHREADS + j) atomic_fetch_add(&mismatches, 1);
    w = pthread_barrier_wait(&bar); /* nobody writes the next round before everyone has checked */
    if (w == PTHREAD_BARRIER_SERIAL_THREAD) atomic_fetch_add(&serial[2 * r + 1], 1);
    else if (w != 0) atomic_fetch_add(&bad_returns, 1);
  }
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_barrier_t b;
  printf("init count 0: %s\n", pthread_barrier_init(&b, NULL, 0) == EINVAL ? "EINVAL" : "other");
  CHECK(pthread_barrier_init(&b, NULL, 1) == 0);
  int serials = 0;
  for (int i = 0; i < 5; i++) serials += pthread_barrier_wait(&b) == PTHREAD_BARRIER_SERIAL_THREAD;
  printf("barrier of 1: %d of 5 waits serial\n", serials);
  CHECK(pthread_barrier_destroy(&b) == 0);

  pthread_barrierattr_t a;
  CHECK(pthread_barrierattr_init(&a) == 0);
  CHECK(pthread_barrierattr_setpshared(&a, PTHREAD_PROCESS_PRIVATE) == 0);
  CHECK(pthread_barrier_init(&bar, &a, NTHREADS) == 0);
  CHECK(pthread_barrierattr_destroy(&a) == 0);
  pthread_t t[NTHREADS];
  double t0 = now_s();
  for (int i = 0; i < NTHREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < NTHREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  fprintf(stderr, "%d threads x %d rounds x 2 waits: %.3f s\n", NTHREADS, ROUNDS, now_s() - t0);
  int hist[4] = {0};
  for (int i = 0; i < 2 * ROUNDS; i++) hist[serial[i] < 3 ? serial[i] : 3]++;
  printf("barrier cycles with 0/1/2/more serial waiters: %d %d %d %d\n", hist[0], hist[1], hist[2], hist[3]);
  printf("slot mismatches %ld, bad returns %ld\n", atomic_load(&mismatches), atomic_load(&bad_returns));
  int ok = hist[1] == 2 * ROUNDS && atomic_load(&mismatches) == 0;
  CHECK(pthread_barrier_destroy(&bar) == 0);

  /* Reuse after destroy, with a different count, the main thread taking part as thread 2. */
  CHECK(pthread_barrier_init(&bar, NULL, 3) == 0);
  nthreads = 3;
  memset(slot, 0, sizeof slot);
  for (int i = 0; i < 2 * ROUNDS; i++) atomic_store(&serial[i], 0);
  atomic_store(&mismatches, 0);
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
  worker((void *)(intptr_t)2);
  for (int i = 0; i < 2; i++) CHECK(pthread_join(t[i], NULL) == 0);
  memset(hist, 0, sizeof hist);
  for (int i = 0; i < 2 * ROUNDS; i++) hist[serial[i] < 3 ? serial[i] : 3]++;
  printf("reused barrier of 3: cycles with 0/1/2/more serial waiters: %d %d %d %d\n", hist[0], hist[1], hist[2],
         hist[3]);
  printf("reused barrier of 3: slot mismatches %ld, bad returns %ld\n", atomic_load(&mismatches),
         atomic_load(&bad_returns));
  CHECK(pthread_barrier_destroy(&bar) == 0);

  ok = ok && hist[1] == 2 * ROUNDS && atomic_load(&mismatches) == 0 && atomic_load(&bad_returns) == 0 && serials == 5;
  /* A process-shared barrier is still a barrier between the threads of one process. */
  CHECK(pthread_barrierattr_init(&a) == 0);
  CHECK(pthread_barrierattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0);
  CHECK(pthread_barrier_init(&bar, &a, 4) == 0);
  CHECK(pthread_barrierattr_destroy(&a) == 0);
  nthreads = 4;
  memset(slot, 0, sizeof slot);
  for (int i = 0; i < 2 * ROUNDS; i++) atomic_store(&serial[i], 0);
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < 4; i++) CHECK(pthread_join(t[i], NULL) == 0);
  memset(hist, 0, sizeof hist);
  for (int i = 0; i < 2 * ROUNDS; i++) hist[serial[i] < 3 ? serial[i] : 3]++;
  printf("pshared barrier of 4: cycles with 0/1/2/more serial waiters: %d %d %d %d\n", hist[0], hist[1], hist[2],
         hist[3]);
  printf("pshared barrier of 4: slot mismatches %ld, bad returns %ld\n", atomic_load(&mismatches),
         atomic_load(&bad_returns));
  CHECK(pthread_barrier_destroy(&bar) == 0);
  ok = ok && hist[1] == 2 * ROUNDS && atomic_load(&mismatches) == 0 && atomic_load(&bad_returns) == 0;

  printf("%s\n", ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
