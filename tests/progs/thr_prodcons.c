/* thr_prodcons — a bounded ring (256 slots) under one mutex and two condition variables (not-empty,
 * not-full): 4 producers and 4 consumers move 1 000 000 items. Every item is accounted for: counts,
 * sums and per-producer order as each consumer saw it. Run twice: waking with pthread_cond_signal,
 * then with pthread_cond_broadcast. Prints the totals. */
#include <pthread.h>
#include <stdint.h>

#include "progs.h"

#define NPROD 4
#define NCONS 4
#define RING 256
#define TOTAL 1000000L
#define PER_PROD (TOTAL / NPROD)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static uint64_t ring[RING];
static unsigned head, tail, count;
static long taken; /* items removed so far, under mu */
static int use_broadcast;
static long waits_full, waits_empty; /* diagnostics only (stderr) */

struct cons_result {
  long n;
  uint64_t sum;
  uint64_t sumsq;
  long per_prod[NPROD];
  long order_errors;
};

/* An item carries its producer and its sequence number within that producer. */
static uint64_t item(int prod, long seq) { return ((uint64_t)prod << 32) | (uint64_t)seq; }

static void wake(pthread_cond_t *c) {
  int r = use_broadcast ? pthread_cond_broadcast(c) : pthread_cond_signal(c);
  CHECK(r == 0);
}

static void *producer(void *arg) {
  int id = (int)(intptr_t)arg;
  for (long i = 0; i < PER_PROD; i++) {
    CHECK(pthread_mutex_lock(&mu) == 0);
    while (count == RING) {
      waits_full++;
      CHECK(pthread_cond_wait(&not_full, &mu) == 0);
    }
    ring[tail] = item(id, i);
    tail = (tail + 1) % RING;
    count++;
    wake(&not_empty);
    CHECK(pthread_mutex_unlock(&mu) == 0);
  }
  return NULL;
}

static void *consumer(void *arg) {
  struct cons_result *res = arg;
  long last[NPROD];
  for (int p = 0; p < NPROD; p++) last[p] = -1;
  for (;;) {
    CHECK(pthread_mutex_lock(&mu) == 0);
    while (count == 0 && taken < TOTAL) {
      waits_empty++;
      CHECK(pthread_cond_wait(&not_empty, &mu) == 0);
    }
    if (count == 0) { /* everything has been taken */
      CHECK(pthread_mutex_unlock(&mu) == 0);
      break;
    }
    uint64_t v = ring[head];
    head = (head + 1) % RING;
    count--;
    taken++;
    if (taken == TOTAL) CHECK(pthread_cond_broadcast(&not_empty) == 0); /* let the others finish */
    wake(&not_full);
    CHECK(pthread_mutex_unlock(&mu) == 0);

    int p = (int)(v >> 32);
    long seq = (long)(v & 0xffffffffu);
    CHECK(p >= 0 && p < NPROD && seq < PER_PROD);
    if (seq <= last[p]) res->order_errors++;
    last[p] = seq;
    res->n++;
    res->per_prod[p]++;
    res->sum += v;
    res->sumsq += (uint64_t)seq * (uint64_t)seq;
  }
  return NULL;
}

static int run(int broadcast) {
  use_broadcast = broadcast;
  head = tail = count = 0;
  taken = 0;
  waits_full = waits_empty = 0;
  pthread_t pt[NPROD], ct[NCONS];
  struct cons_result res[NCONS];
  memset(res, 0, sizeof res);
  double t0 = now_s();
  for (int i = 0; i < NCONS; i++) CHECK(pthread_create(&ct[i], NULL, consumer, &res[i]) == 0);
  for (int i = 0; i < NPROD; i++) CHECK(pthread_create(&pt[i], NULL, producer, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < NPROD; i++) CHECK(pthread_join(pt[i], NULL) == 0);
  for (int i = 0; i < NCONS; i++) CHECK(pthread_join(ct[i], NULL) == 0);
  double took = now_s() - t0;

  long n = 0, order_errors = 0, per_prod[NPROD] = {0};
  uint64_t sum = 0, sumsq = 0;
  for (int i = 0; i < NCONS; i++) {
    n += res[i].n;
    sum += res[i].sum;
    sumsq += res[i].sumsq;
    order_errors += res[i].order_errors;
    for (int p = 0; p < NPROD; p++) per_prod[p] += res[i].per_prod[p];
    fprintf(stderr, "  consumer %d took %ld items\n", i, res[i].n);
  }
  /* Expected: each producer p sends seq 0..PER_PROD-1 tagged with p<<32. */
  uint64_t want_sum = 0, want_sumsq = 0;
  for (int p = 0; p < NPROD; p++)
    for (long s = 0; s < PER_PROD; s++) {
      want_sum += item(p, s);
      want_sumsq += (uint64_t)s * (uint64_t)s;
    }
  const char *how = broadcast ? "broadcast" : "signal";
  printf("%s: items %ld sum %llu sumsq %llu\n", how, n, (unsigned long long)sum, (unsigned long long)sumsq);
  printf("%s: per producer %ld %ld %ld %ld\n", how, per_prod[0], per_prod[1], per_prod[2], per_prod[3]);
  printf("%s: order errors %ld, left in ring %u\n", how, order_errors, count);
  fprintf(stderr, "%s: %.3f s, waits: full %ld empty %ld\n", how, took, waits_full, waits_empty);
  int ok = n == TOTAL && sum == want_sum && sumsq == want_sumsq && order_errors == 0 && count == 0;
  for (int p = 0; p < NPROD; p++) ok = ok && per_prod[p] == PER_PROD;
  printf("%s: %s\n", how, ok ? "ok" : "WRONG");
  return ok;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int ok = run(0);
  ok = run(1) && ok;
  return ok ? 0 : 1;
}
