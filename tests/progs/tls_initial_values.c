/* tls_initial_values — every new thread starts with the initial values of __thread variables, however
 * the threads before it changed theirs. Six waves of 100 threads, one after the other: each thread
 * checks that its __thread int is 42, its initialised __thread array holds its initialiser, its
 * zero-initialised __thread buffer is all zeros and its __thread pointer points at a static object;
 * then it changes all of them to values of its own, blocks (usleep), checks they are still its own,
 * and exits. Wave 3 uses detached threads; wave 5 runs its threads on 64 KiB stacks (attribute). A
 * runtime that reused one thread's TLS for the next without resetting it (or shared it) shows stale
 * values in the later waves. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "progs_util.h"

#define WAVES 6
#define N 100

static const int anchor = 1;
static __thread int x = 42;
static __thread long arr[6] = {1, 1, 2, 3, 5, 8};
static __thread char zeros[1024];
static __thread const int *ptr = &anchor;

static _Atomic int initial_ok[WAVES], intact[WAVES], finished;

static int is_initial(void) {
  static const long want[6] = {1, 1, 2, 3, 5, 8};
  if (x != 42 || ptr != &anchor) return 0;
  for (int i = 0; i < 6; i++)
    if (arr[i] != want[i]) return 0;
  for (size_t i = 0; i < sizeof zeros; i++)
    if (zeros[i]) return 0;
  return 1;
}

static int v_of(int wave, int i) { return 1000 * (wave + 1) + i; }

static void *body(void *arg) {
  int wave = (int)((intptr_t)arg / N), i = (int)((intptr_t)arg % N);
  if (is_initial()) atomic_fetch_add(&initial_ok[wave], 1);
  else fprintf(stderr, "wave %d thread %d: x %d arr[0] %ld zeros[0] %d ptr %s\n", wave, i, x, arr[0], zeros[0],
               ptr == &anchor ? "initial" : "changed");
  int v = v_of(wave, i);
  x = v;
  for (int k = 0; k < 6; k++) arr[k] = v + k;
  memset(zeros, (char)(v | 1), sizeof zeros);
  ptr = &x;
  CHECK(usleep((useconds_t)(100 + (i * 37) % 700)) == 0);
  int ok = x == v && ptr == &x && arr[5] == v + 5 && zeros[0] == (char)(v | 1) && zeros[sizeof zeros - 1] == (char)(v | 1);
  if (ok) atomic_fetch_add(&intact[wave], 1);
  atomic_fetch_add(&finished, 1);
  return NULL;
}

int main(void) {
  x = 7; /* the main thread's own copy: never seen by the others */
  for (int w = 0; w < WAVES; w++) {
    pthread_t t[N];
    pthread_attr_t a;
    CHECK(pthread_attr_init(&a) == 0);
    if (w == 3) CHECK(pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED) == 0);
    if (w == 5) CHECK(pthread_attr_setstacksize(&a, 64 * 1024) == 0);
    atomic_store(&finished, 0);
    for (int i = 0; i < N; i++) CHECK(pthread_create(&t[i], &a, body, (void *)(intptr_t)(w * N + i)) == 0);
    CHECK(pthread_attr_destroy(&a) == 0);
    if (w == 3) {
      for (int k = 0; k < 10000 && atomic_load(&finished) < N; k++) msleep(1);
      CHECK(atomic_load(&finished) == N);
      msleep(20); /* let the detached threads finish exiting */
    } else {
      for (int i = 0; i < N; i++) CHECK(pthread_join(t[i], NULL) == 0);
    }
    printf("wave %d%s: initial values %d/%d, own values intact %d/%d\n", w,
           w == 3 ? " (detached)" : w == 5 ? " (64 KiB stacks)" : "", atomic_load(&initial_ok[w]), N,
           atomic_load(&intact[w]), N);
  }
  printf("main thread's copy %s\n", x == 7 ? "kept" : "CHANGED");
  int ok = x == 7;
  for (int w = 0; w < WAVES; w++) ok = ok && atomic_load(&initial_ok[w]) == N && atomic_load(&intact[w]) == N;
  return ok ? 0 : 1;
}
