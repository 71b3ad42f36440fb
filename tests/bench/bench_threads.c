/* bench_threads — a plain pthread program (knows nothing of cohook): scripts/bench.sh runs it
 * natively and with LD_PRELOAD=libhook.so in the same run and prints the ratios.
 *
 *   create+join   batches of 1000 threads that return at once: created all, then joined all
 *   mutex         two threads contending one mutex (lock, increment, unlock)
 *   condvar       two threads ping-ponging a token through a mutex and two condvars
 *
 * Prints "RESULT name ns_per_op" lines: the median of 7 runs. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median7(double *v) {
  qsort(v, 7, sizeof *v, cmp);
  return v[3];
}

/* ---- create + join ---- */
static void *nothing(void *a) { return a; }

static double create_join(void) {
  enum { N = 1000 };
  static pthread_t t[N];
  double t0 = now_ns();
  for (int i = 0; i < N; i++)
    if (pthread_create(&t[i], NULL, nothing, NULL) != 0) { perror("pthread_create"); exit(1); }
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  return (now_ns() - t0) / N;
}

/* ---- mutex contention ---- */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long counter;
enum { MUTEX_ITERS = 200000 };

static void *locker(void *a) {
  for (int i = 0; i < MUTEX_ITERS; i++) {
    pthread_mutex_lock(&mu);
    counter++;
    pthread_mutex_unlock(&mu);
  }
  return a;
}

static double mutex_handoff(void) {
  pthread_t a, b;
  counter = 0;
  double t0 = now_ns();
  pthread_create(&a, NULL, locker, NULL);
  pthread_create(&b, NULL, locker, NULL);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  if (counter != 2L * MUTEX_ITERS) { fprintf(stderr, "mutex counter wrong\n"); exit(1); }
  return (now_ns() - t0) / (2.0 * MUTEX_ITERS);
}

/* ---- condvar ping-pong ---- */
static pthread_mutex_t pm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ping = PTHREAD_COND_INITIALIZER, pong = PTHREAD_COND_INITIALIZER;
static int turn;
enum { PING_ITERS = 50000 };

static void *pinger(void *a) {
  int me = (int)(long)a;
  for (int i = 0; i < PING_ITERS; i++) {
    pthread_mutex_lock(&pm);
    while (turn != me) pthread_cond_wait(me ? &pong : &ping, &pm);
    turn = !me;
    pthread_cond_signal(me ? &ping : &pong);
    pthread_mutex_unlock(&pm);
  }
  return NULL;
}

static double condvar_pingpong(void) {
  pthread_t a, b;
  turn = 0;
  double t0 = now_ns();
  pthread_create(&a, NULL, pinger, (void *)0L);
  pthread_create(&b, NULL, pinger, (void *)1L);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  return (now_ns() - t0) / PING_ITERS; /* per round trip */
}

int main(int argc, char **argv) {
  const char *only = argc > 1 ? argv[1] : NULL;
  struct { const char *name; double (*fn)(void); } cases[] = {
      {"create+join", create_join}, {"mutex", mutex_handoff}, {"condvar", condvar_pingpong}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    if (only && strcmp(only, cases[c].name) != 0) continue;
    double v[7];
    cases[c].fn(); /* warm-up: stacks, pools, workers */
    for (int i = 0; i < 7; i++) v[i] = cases[c].fn();
    printf("RESULT %s %.1f\n", cases[c].name, median7(v));
    fflush(stdout);
  }
  return 0;
}
