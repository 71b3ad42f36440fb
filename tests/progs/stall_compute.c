/* stall_compute — one thread computes for 2 s (pure CPU: besides computing it only reads the clock,
 * through the vDSO) while three heartbeat threads must tick every 50 ms.
 *
 * Natively the kernel time-slices the computing thread and the heartbeats, which wake on time. A
 * runtime that runs threads as coroutines on a few OS threads must not let the computation hold up
 * the heartbeats for its whole length. Three heartbeats, so that with two workers the computation
 * shares its worker with at least one.
 *
 * stdout: that the computation finished, and whether every heartbeat's largest gap between ticks
 * while the computation ran stayed under 1 s (a stalled one misses the whole 2 s; natively, with two
 * other programs spinning on both cores of the test machine, gaps of 470 ms were seen, so 500 ms
 * would be flaky). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "progs_util.h"

enum { HEARTBEATS = 3, TICK_MS = 50 };

static pthread_barrier_t start;
static _Atomic int computing = 1;
static _Atomic int beats[HEARTBEATS];

/* The work: an xorshift chain, so that no compiler can shorten it; no calls inside. */
static uint64_t crunch(uint64_t iters) {
  uint64_t x = 88172645463325252ull;
  for (uint64_t i = 0; i < iters; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

static uint64_t result;

static _Atomic double compute_t0, compute_t1; /* when the computation ran */

static void *compute(void *arg) {
  (void)arg;
  pthread_barrier_wait(&start);
  compute_t0 = now_s();
  /* 2 s of wall time, in slices of crunch(); reading the clock (vDSO, no system call) is all it does
   * besides computing, so there is nothing a runtime could take as a blocking call. */
  uint64_t x = 0;
  do x += crunch(1u << 16);
  while (now_s() - compute_t0 < 2.0);
  result = x | 1;
  compute_t1 = now_s();
  fprintf(stderr, "compute: %.3f s\n", compute_t1 - compute_t0);
  computing = 0;
  return NULL;
}

/* Each heartbeat's tick times; its largest gap is measured afterwards over the computation's span,
 * its start and end included, so a heartbeat that never got to tick has the whole span as its gap. */
enum { MAX_TICKS = 2000 };
static double tick_at[HEARTBEATS][MAX_TICKS];

static void *heartbeat(void *arg) {
  int id = (int)(long)arg;
  pthread_barrier_wait(&start);
  while (computing) {
    msleep(TICK_MS);
    if (beats[id] < MAX_TICKS) tick_at[id][beats[id]++] = now_s();
  }
  return NULL;
}

static double largest_gap(int id) {
  double last = compute_t0, gap = 0;
  for (int k = 0; k < beats[id] && tick_at[id][k] < compute_t1; k++) {
    if (tick_at[id][k] <= last) continue;
    if (tick_at[id][k] - last > gap) gap = tick_at[id][k] - last;
    last = tick_at[id][k];
  }
  return compute_t1 - last > gap ? compute_t1 - last : gap;
}

int main(void) {
  CHECK(pthread_barrier_init(&start, NULL, HEARTBEATS + 1) == 0);
  pthread_t c, h[HEARTBEATS];
  CHECK(pthread_create(&c, NULL, compute, NULL) == 0);
  for (long i = 0; i < HEARTBEATS; i++) CHECK(pthread_create(&h[i], NULL, heartbeat, (void *)i) == 0);
  CHECK(pthread_join(c, NULL) == 0);
  for (int i = 0; i < HEARTBEATS; i++) CHECK(pthread_join(h[i], NULL) == 0);
  CHECK(pthread_barrier_destroy(&start) == 0);

  printf("computation done: %s\n", result != 0 ? "yes" : "no"); 
  int all = 1;
  for (int i = 0; i < HEARTBEATS; i++) {
    double gap = largest_gap(i);
    fprintf(stderr, "heartbeat %d: %d beats, largest gap %.3f s\n", i, (int)beats[i], gap);
    all &= gap < 1.0;
  }
  printf("every heartbeat's largest gap under 1 s: %s\n", all ? "yes" : "no");
  return 0;
}
