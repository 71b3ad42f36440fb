/* threads_1m [N] — create and join N threads (default 1 000 000) in batches of 1000; each thread
 * mallocs and frees a little (several sizes: the per-thread malloc cache gets used), touches a
 * __thread array (initialised, checked, changed) and takes a strerror() text of an unknown number
 * (glibc allocates that buffer per thread and frees it at thread exit). Prints VmRSS after the first
 * 10 000 threads and at the end on stderr, the result on stdout; exits 0 if every thread saw fresh
 * TLS and the final RSS is within 10% + 2 MiB of the 10 000 mark (per-thread memory is not leaked).
 * The threads of the first batch all wait on a barrier, so that 1000 threads are alive at once before
 * the mark: a runtime's stack/TLS pool reaches its high-water mark there, not later (otherwise RSS
 * creeps up in steps as the pool grows to the batch size, without any leak).
 * Run preloaded by tests/check_threads_1m.sh: natively a million thread creations take minutes. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 1000
#define MARK 10000

static __thread unsigned char tbuf[512] = {1, 2, 3};
static __thread int tint = 42;
static _Atomic long stale, bad_err;
static pthread_barrier_t warm;

static void *body(void *arg) {
  long i = (long)(intptr_t)arg;
  if (tint != 42 || tbuf[0] != 1 || tbuf[2] != 3 || tbuf[511] != 0) atomic_fetch_add(&stale, 1);
  tint = (int)i;
  memset(tbuf, (int)(i & 0xff), sizeof tbuf);
  void *p[4];
  static const size_t sizes[4] = {24, 200, 1500, 40000};
  for (int k = 0; k < 4; k++) {
    p[k] = malloc(sizes[k] + (size_t)(i % 7));
    if (!p[k]) abort();
    memset(p[k], 0x5a, 16);
  }
  for (int k = 3; k >= 0; k--) free(p[(k + i) % 4]);
  char want[40];
  snprintf(want, sizeof want, "Unknown error %ld", 100000 + i % 1000);
  if (strcmp(strerror((int)(100000 + i % 1000)), want) != 0) atomic_fetch_add(&bad_err, 1);
  if (i < BATCH) pthread_barrier_wait(&warm);
  return NULL;
}

static long status_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  size_t n = strlen(field);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, field, n) == 0 && line[n] == ':') {
      kb = atol(line + n + 1);
      break;
    }
  if (f) fclose(f);
  return kb;
}

static long rss_kb(void) { return status_kb("VmRSS"); }

/* Lines of /proc/self/maps: for the diagnostics (a growing pool of stacks shows there). */
static long mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  long n = 0;
  int c;
  while (f && (c = getc(f)) != EOF) n += c == '\n';
  if (f) fclose(f);
  return n;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  if (n < MARK) n = MARK;
  n = (n + BATCH - 1) / BATCH * BATCH;
  static pthread_t t[BATCH];
  if (pthread_barrier_init(&warm, NULL, BATCH + 1)) abort();
  long mark = -1;
  double t0 = now_s();
  for (long done = 0; done < n; done += BATCH) {
    for (int k = 0; k < BATCH; k++) {
      int r = pthread_create(&t[k], NULL, body, (void *)(intptr_t)(done + k));
      if (r) {
        fprintf(stderr, "pthread_create #%ld: %s\n", done + k, strerror(r));
        return 2;
      }
    }
    if (done == 0) pthread_barrier_wait(&warm); /* all of the first batch alive at once */
    for (int k = 0; k < BATCH; k++)
      if (pthread_join(t[k], NULL)) abort();
    if (done + BATCH == MARK) {
      mark = rss_kb();
      fprintf(stderr, "after %d threads: VmRSS %ld kB, VmSize %ld kB, %ld mappings (%.1f s)\n", MARK, mark,
              status_kb("VmSize"), mappings(), now_s() - t0);
    }
  }
  long end = rss_kb();
  double limit = mark * 1.10 + 2048;
  int ok = atomic_load(&stale) == 0 && atomic_load(&bad_err) == 0 && end <= limit;
  fprintf(stderr, "after %ld threads: VmRSS %ld kB (limit %.0f kB), VmSize %ld kB, %ld mappings (%.1f s)\n", n, end,
          limit, status_kb("VmSize"), mappings(), now_s() - t0);
  printf("%ld threads: stale TLS %ld, wrong strerror text %ld, RSS %s\n", n, atomic_load(&stale),
         atomic_load(&bad_err), end <= limit ? "bounded" : "GREW");
  return ok ? 0 : 1;
}
