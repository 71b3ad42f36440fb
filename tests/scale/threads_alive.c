/* threads_alive [N] — N pthreads (default 100 000) alive at the same time: each announces itself,
 * waits at a gate (a condition variable) until all N are there, then sleeps 100 ms, checks and
 * changes its __thread data, and returns its index; main joins them all and checks the sum.
 *
 * What this proves, preloaded: that many coroutine-threads can exist at once (stacks past
 * vm.max_map_count's budget of guard pages, parked waiters on one condvar, N sleepers in the timer
 * structures), not only one after another (threads_1m keeps 1000 alive at a time). Natively N kernel
 * threads exceed vm.max_map_count long before 100 000: run preloaded only, by check_threads_alive.sh.
 *
 * stdout: the result. stderr: "alive=N wall=S create=S max_threads=T rss_mb=M", which the check
 * script reads. Exit status 0 only if every thread was alive at once, saw fresh TLS and was joined. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int open_gate;
static _Atomic long alive, stale;
static __thread long tval = 7;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *body(void *arg) {
  if (tval != 7) stale++;
  tval = (long)(intptr_t)arg;
  alive++;
  pthread_mutex_lock(&mu);
  while (!open_gate) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  struct timespec ts = {0, 100 * 1000000L};
  nanosleep(&ts, NULL);
  if (tval != (long)(intptr_t)arg) stale++;
  return arg;
}

static long status_field(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  size_t n = strlen(field);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, field, n) == 0 && line[n] == ':') {
      v = atol(line + n + 1);
      break;
    }
  if (f) fclose(f);
  return v;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000;
  pthread_t *t = calloc((size_t)n, sizeof *t);
  if (!t) return 1;
  double t0 = now_s();
  long most = 0;
  for (long i = 0; i < n; i++) {
    int r = pthread_create(&t[i], NULL, body, (void *)(intptr_t)i);
    if (r) {
      fprintf(stderr, "pthread_create %ld: %s\n", i, strerror(r));
      return 1;
    }
    if (i % 10000 == 9999) {
      long th = status_field("Threads");
      if (th > most) most = th;
    }
  }
  double created = now_s() - t0;
  /* All of them at the gate at once (60 s at most). */
  for (int k = 0; k < 60000 && alive < n; k++) {
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
  }
  long at_gate = alive, rss_mb = status_field("VmRSS") / 1024;
  pthread_mutex_lock(&mu);
  open_gate = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  long double sum = 0;
  for (long i = 0; i < n; i++) {
    void *v;
    if (pthread_join(t[i], &v) != 0) return 1;
    sum += (long)(intptr_t)v;
  }
  double wall = now_s() - t0;
  fprintf(stderr, "alive=%ld wall=%.3f create=%.3f max_threads=%ld rss_mb=%ld stale=%ld\n", at_gate, wall,
          created, most, rss_mb, (long)stale);
  int ok = at_gate == n && stale == 0 && sum == (long double)n * (n - 1) / 2;
  printf("%ld threads alive at once, joined: %s\n", n, ok ? "ok" : "FAILED");
  free(t);
  return ok ? 0 : 1;
}
