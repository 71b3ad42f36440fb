/*
 * bench_cpuclock.c — what the thread CPU clocks cost (runtime/cpuclock.c). A plain pthread program:
 * run it natively and preloaded (COHOOK_WORKERS=1). Prints figures; checks nothing (not a test).
 *
 *   bench_cpuclock clock        ns per clock_gettime of CLOCK_MONOTONIC and CLOCK_REALTIME (the
 *                               hook must not slow the vDSO clocks) and CLOCK_THREAD_CPUTIME_ID (a
 *                               system call natively), in a thread made with pthread_create
 *   bench_cpuclock yield [on]   ns per sched_yield in a ping-pong of two threads (one switch each
 *                               when preloaded on one worker); "on" first reads a thread CPU clock,
 *                               which turns the per-switch accounting on
 *
 * Every figure is the median of RUNS timed runs after one untimed warm-up run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUNS 9
#define CALLS 2000000
#define YIELDS 200000

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  return v[n / 2];
}

static double clock_run(clockid_t c) {
  struct timespec ts;
  uint64_t t0 = now_ns();
  for (int i = 0; i < CALLS; i++) clock_gettime(c, &ts);
  return (double)(now_ns() - t0) / CALLS;
}

static void *yielder(void *unused) {
  (void)unused;
  for (int i = 0; i < YIELDS; i++) sched_yield();
  return NULL;
}

static double yield_run(void) {
  pthread_t a, b;
  uint64_t t0 = now_ns();
  pthread_create(&a, NULL, yielder, NULL);
  pthread_create(&b, NULL, yielder, NULL);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  return (double)(now_ns() - t0) / (2.0 * YIELDS);
}

static void *turn_on(void *unused) {
  (void)unused;
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return NULL;
}

static void *clocks(void *unused) {
  (void)unused;
  double v[RUNS];
  const clockid_t ids[] = {CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_THREAD_CPUTIME_ID};
  const char *names[] = {"CLOCK_MONOTONIC", "CLOCK_REALTIME", "CLOCK_THREAD_CPUTIME_ID"};
  for (int c = 0; c < 3; c++) {
    clock_run(ids[c]);
    for (int r = 0; r < RUNS; r++) v[r] = clock_run(ids[c]);
    printf("clock_gettime(%s): %.2f ns/call (median of %d)\n", names[c], median(v, RUNS), RUNS);
  }
  return NULL;
}

int main(int argc, char **argv) {
  double v[RUNS];
  if (argc >= 2 && strcmp(argv[1], "clock") == 0) {
    pthread_t t;
    pthread_create(&t, NULL, clocks, NULL);
    pthread_join(t, NULL);
    return 0;
  }
  if (argc >= 2 && strcmp(argv[1], "yield") == 0) {
    if (argc >= 3 && strcmp(argv[2], "on") == 0) {
      pthread_t t;
      pthread_create(&t, NULL, turn_on, NULL);
      pthread_join(t, NULL);
    }
    yield_run();
    for (int r = 0; r < RUNS; r++) v[r] = yield_run();
    printf("sched_yield ping-pong%s: %.1f ns/yield (median of %d)\n", argc >= 3 ? " (thread CPU clocks on)" : "",
           median(v, RUNS), RUNS);
    return 0;
  }
  fprintf(stderr, "usage: %s clock | yield [on]\n", argv[0]);
  return 2;
}
