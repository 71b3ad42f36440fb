/* proof_threads_10k — 10 000 pthreads that each sleep(1) and are joined. stdout: the result (same
 * natively and preloaded); stderr: "wall=SECONDS max_threads=N", which check_threads_10k.sh reads. */
#include <pthread.h>
#include <unistd.h>

#include "progs.h"

enum { N = 10000 };
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long woke;

static void *body(void *arg) {
  CHECK(sleep(1) == 0);
  pthread_mutex_lock(&mu);
  woke++;
  pthread_mutex_unlock(&mu);
  return arg;
}

int main(void) {
  static pthread_t t[N];
  double t0 = now_s();
  int most = 0;
  for (long i = 0; i < N; i++) {
    int r = pthread_create(&t[i], NULL, body, (void *)i);
    if (r) {
      fprintf(stderr, "pthread_create %ld: %s\n", i, strerror(r));
      return 1;
    }
    if (i % 1000 == 999) {
      int n = os_threads();
      if (n > most) most = n;
    }
  }
  long sum = 0;
  for (int i = 0; i < N; i++) {
    void *v;
    CHECK(pthread_join(t[i], &v) == 0);
    sum += (long)v;
  }
  fprintf(stderr, "wall=%.3f max_threads=%d\n", now_s() - t0, most);
  printf("%d threads slept and were joined, %ld woke, sum %ld\n", N, woke, sum);
  return woke == N && sum == (long)N * (N - 1) / 2 ? 0 : 1;
}
