/* thr_spin — pthread spinlocks: 4 threads count to 400 000 under one; trylock is EBUSY while held
 * (from another thread) and succeeds when free; and a spinlock held across a short sleep (legal, if
 * unwise) still works while others spin for it. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "progs.h"

#define NTHREADS 4
#define ITERS 100000

static pthread_spinlock_t spin;
static long counter;

static void *counting(void *arg) {
  (void)arg;
  for (int i = 0; i < ITERS; i++) {
    CHECK(pthread_spin_lock(&spin) == 0);
    counter++;
    CHECK(pthread_spin_unlock(&spin) == 0);
  }
  return NULL;
}

static void *sleeping_holder(void *arg) {
  (void)arg;
  for (int i = 0; i < 20; i++) {
    CHECK(pthread_spin_lock(&spin) == 0);
    long v = counter;
    CHECK(usleep(300) == 0);
    counter = v + 1;
    CHECK(pthread_spin_unlock(&spin) == 0);
  }
  return NULL;
}

static _Atomic int held, release_it;
static void *holder(void *arg) {
  (void)arg;
  CHECK(pthread_spin_lock(&spin) == 0);
  atomic_store(&held, 1);
  for (int i = 0; i < 10000 && !atomic_load(&release_it); i++) CHECK(usleep(1000) == 0);
  CHECK(pthread_spin_unlock(&spin) == 0);
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  CHECK(pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE) == 0);
  pthread_t t[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) CHECK(pthread_create(&t[i], NULL, counting, NULL) == 0);
  for (int i = 0; i < NTHREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  printf("spin counter: %ld\n", counter);
  int ok = counter == (long)NTHREADS * ITERS;

  printf("trylock free: %s\n", pthread_spin_trylock(&spin) == 0 ? "OK" : "other");
  CHECK(pthread_spin_unlock(&spin) == 0);
  pthread_t h;
  CHECK(pthread_create(&h, NULL, holder, NULL) == 0);
  for (int i = 0; i < 10000 && !atomic_load(&held); i++) CHECK(usleep(1000) == 0);
  CHECK(atomic_load(&held));
  int r = pthread_spin_trylock(&spin);
  printf("trylock while another thread holds: %s\n", r == EBUSY ? "EBUSY" : r == 0 ? "OK" : "other");
  ok = ok && r == EBUSY;
  if (r == 0) CHECK(pthread_spin_unlock(&spin) == 0);
  atomic_store(&release_it, 1);
  CHECK(pthread_join(h, NULL) == 0);

  counter = 0;
  for (int i = 0; i < NTHREADS; i++) CHECK(pthread_create(&t[i], NULL, sleeping_holder, NULL) == 0);
  for (int i = 0; i < NTHREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  printf("spin held across sleeps, counter: %ld\n", counter);
  ok = ok && counter == NTHREADS * 20;
  CHECK(pthread_spin_destroy(&spin) == 0);
  printf("%s\n", ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
