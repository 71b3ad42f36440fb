/*
 * bench_switch.c — what a coroutine switch costs. Prints figures; checks nothing (not a test).
 *
 *   switch  the raw ch_ctx_jump ping-pong between two contexts, each jump counted as one switch
 *   switch  the same ping-pong with boost.context's jump_fcontext (built with -DHAVE_BOOST_CONTEXT),
 *           measured in the same run and interleaved with ours so that both see the same machine state
 *   yield   one cohook_yield between two coroutines of the public API (run queue, errno, poll budget)
 *   spawn   cohook_spawn of a coroutine that returns at once, plus the cohook_join that reaps it
 *
 * Every figure is the median of RUNS timed runs after one untimed warm-up run. For stable numbers run
 * it pinned to one CPU of an idle machine (scripts/bench.sh does taskset -c 0).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "cohook.h"
#include "internal.h" /* ch_ctx_jump / ch_ctx_make: hidden, reachable through the static cohook_rt */

#define RUNS 7
#define SWITCHES 2000000 /* per run of a raw ping-pong */
#define YIELDS 1000000   /* per run of the yield benchmark, both coroutines together */
#define SPAWNS 100000    /* per run of the spawn+join benchmark */
#define STACK_SIZE (256 * 1024)

/* ---- timing --------------------------------------------------------------------------------------- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void *stack_top(void) {
  char *p = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(1);
  }
  return p + STACK_SIZE;
}

/* ---- raw ch_ctx_jump ------------------------------------------------------------------------------ */

static void *raw_main_sp, *raw_co_sp;

/* The partner: bounces every jump straight back, forever. */
static void raw_partner(void *arg) {
  (void)arg;
  for (;;) ch_ctx_jump(&raw_co_sp, raw_main_sp, NULL);
}

/* ns per switch over n switches; each loop iteration is two of them (there and back). */
static double raw_run(long n) {
  uint64_t t0 = now_ns();
  for (long i = 0; i < n / 2; i++) ch_ctx_jump(&raw_main_sp, raw_co_sp, NULL);
  return (double)(now_ns() - t0) / (double)n;
}

static void raw_setup(void) { raw_co_sp = ch_ctx_make(stack_top(), raw_partner); }

/* ---- boost.context -------------------------------------------------------------------------------- */

#ifdef HAVE_BOOST_CONTEXT
/* The C-linkage entry points of libboost_context (boost/context/detail/fcontext.hpp), declared here so
 * that no C++ header is needed. make_fcontext takes the top of the stack, like ch_ctx_make. */
typedef struct {
  void *fctx;
  void *data;
} transfer_t;
transfer_t jump_fcontext(void *to, void *vp);
void *make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));

static void *boost_co;

/* jump_fcontext hands each side the context it came from, so the partner needs no saved state. */
static void boost_partner(transfer_t t) {
  for (;;) t = jump_fcontext(t.fctx, NULL);
}

static double boost_run(long n) {
  uint64_t t0 = now_ns();
  for (long i = 0; i < n / 2; i++) boost_co = jump_fcontext(boost_co, NULL).fctx;
  return (double)(now_ns() - t0) / (double)n;
}

static void boost_setup(void) { boost_co = make_fcontext(stack_top(), STACK_SIZE, boost_partner); }
#endif

/* ---- public API: yield and spawn+join ------------------------------------------------------------- */

static void *yielder(void *arg) {
  long n = (long)(intptr_t)arg;
  for (long i = 0; i < n; i++) cohook_yield();
  return NULL;
}

/* ns per cohook_yield: the main coroutine and one spawned coroutine yield to each other n/2 times
 * each, so every yield is a hand-off to the other one. */
static double yield_run(long n) {
  cohook_coro_t *co;
  if (cohook_spawn(&co, yielder, (void *)(intptr_t)(n / 2)) != 0) {
    fprintf(stderr, "bench_switch: cohook_spawn failed\n");
    exit(1);
  }
  uint64_t t0 = now_ns();
  for (long i = 0; i < n / 2; i++) cohook_yield();
  uint64_t t1 = now_ns();
  cohook_join(co, NULL); /* outside the timing: it finishes in its next turn */
  return (double)(t1 - t0) / (double)n;
}

static void *noop(void *arg) { return arg; }

/* ns per spawn+join of a coroutine that returns at once: includes the switch into it, its exit, and
 * the switch back to the joiner, with the stack coming from the runtime's cache after the warm-up. */
static double spawn_run(long n) {
  uint64_t t0 = now_ns();
  for (long i = 0; i < n; i++) {
    cohook_coro_t *co;
    if (cohook_spawn(&co, noop, NULL) != 0 || cohook_join(co, NULL) != 0) {
      fprintf(stderr, "bench_switch: spawn/join failed\n");
      exit(1);
    }
  }
  return (double)(now_ns() - t0) / (double)n;
}

/* ---- driver --------------------------------------------------------------------------------------- */

static double bench(double (*run)(long), long n) {
  double v[RUNS];
  run(n); /* warm-up: page in the stacks, fill caches and branch predictors */
  for (int i = 0; i < RUNS; i++) v[i] = run(n);
  return median(v, RUNS);
}

static void print_figure(const char *kind, const char *what, double ns, const char *unit, long n) {
  printf("%-7s %-20s %8.1f ns/%-10s (median of %d runs of %ld)\n", kind, what, ns, unit, RUNS, n);
}

int main(void) {
  raw_setup();
  double ours[RUNS];
#ifdef HAVE_BOOST_CONTEXT
  boost_setup();
  double theirs[RUNS];
  raw_run(SWITCHES);
  boost_run(SWITCHES);
  /* Interleaved, so that frequency scaling or a noisy neighbour hits both about equally. */
  for (int i = 0; i < RUNS; i++) {
    ours[i] = raw_run(SWITCHES);
    theirs[i] = boost_run(SWITCHES);
  }
  double ours_ns = median(ours, RUNS), boost_ns = median(theirs, RUNS);
#else
  raw_run(SWITCHES);
  for (int i = 0; i < RUNS; i++) ours[i] = raw_run(SWITCHES);
  double ours_ns = median(ours, RUNS);
#endif
  print_figure("switch", "ch_ctx_jump", ours_ns, "switch", SWITCHES);
#ifdef HAVE_BOOST_CONTEXT
  print_figure("switch", "boost jump_fcontext", boost_ns, "switch", SWITCHES);
#else
  printf("%-7s %-20s not built (libboost_context not found)\n", "switch", "boost jump_fcontext");
#endif
  fflush(stdout);

  print_figure("yield", "cohook_yield", bench(yield_run, YIELDS), "yield", YIELDS);
  fflush(stdout);
  print_figure("spawn", "spawn+join", bench(spawn_run, SPAWNS), "coroutine", SPAWNS);

#ifdef HAVE_BOOST_CONTEXT
  printf("%-7s %-20s %8.2f (ch_ctx_jump / jump_fcontext; below 1 means we are faster)\n", "ratio",
         "ours/boost", ours_ns / boost_ns);
#else
  printf("%-7s %-20s %8s (no boost.context to compare with)\n", "ratio", "ours/boost", "n/a");
#endif
  return 0;
}
