/* thr_cpuclock — CPU-time clocks are per thread: a thread that spins sees its clock
 * (CLOCK_THREAD_CPUTIME_ID) advance about as the process's does, one that sleeps meanwhile sees its
 * own stay near zero; pthread_getcpuclockid of another thread gives a clock that agrees with that
 * thread's own reading, also while it runs; getrusage(RUSAGE_THREAD) agrees with the clock; two
 * threads taking turns with sched_yield together use what the process used, not twice that; the main
 * thread's clock works both ways; the clock of a joined thread is gone (EINVAL); clock(), times() and
 * CLOCK_PROCESS_CPUTIME_ID stay process-wide.
 * Timing facts are printed as booleans (thresholds generous: the machine is shared); the figures go
 * to stderr. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/times.h>
#include <unistd.h>

#include "thr_util.h"

#define MS 1000000ull

static uint64_t clk_ns(clockid_t c) {
  struct timespec ts;
  CHECK(clock_gettime(c, &ts) == 0);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static uint64_t self_ns(void) { return clk_ns(CLOCK_THREAD_CPUTIME_ID); }
static uint64_t proc_ns(void) { return clk_ns(CLOCK_PROCESS_CPUTIME_ID); }

static uint64_t ru_thread_ns(void) {
  struct rusage ru;
  CHECK(getrusage(RUSAGE_THREAD, &ru) == 0);
  return ((uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
          (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

static uint64_t absdiff(uint64_t a, uint64_t b) { return a > b ? a - b : b - a; }

static volatile uint64_t sink;
static void spin_a_little(void) {
  for (int i = 0; i < 20000; i++) sink += (uint64_t)i * 2654435761u;
}

static pthread_barrier_t measured, released;

/* ---- a busy thread and a sleeping one, started together ------------------------------------------- */

struct busy {
  uint64_t start, end, proc_delta, mid_own, ru, own_id;
  _Atomic int mid;
};
static struct busy B;

static void *busy(void *unused) {
  (void)unused;
  B.start = self_ns();
  uint64_t p0 = proc_ns();
  double t0 = now_s();
  /* Until the process has used 300 ms of CPU (the kernel's count, not ours), at most 5 s. */
  for (;;) {
    spin_a_little();
    uint64_t p = proc_ns() - p0;
    if (p >= 150 * MS && !atomic_load(&B.mid)) {
      B.mid_own = self_ns();
      atomic_store(&B.mid, 1); /* main reads our clock from outside now */
    }
    if (p >= 300 * MS || now_s() - t0 > 5) break;
  }
  B.end = self_ns();
  B.proc_delta = proc_ns() - p0;
  B.ru = ru_thread_ns();
  clockid_t mine;
  CHECK(pthread_getcpuclockid(pthread_self(), &mine) == 0);
  B.own_id = clk_ns(mine);
  atomic_store(&B.mid, 1);
  pthread_barrier_wait(&measured);
  pthread_barrier_wait(&released);
  return NULL;
}

static uint64_t sleeper_start, sleeper_end, sleeper_ru;

static void *sleeper(void *unused) {
  (void)unused;
  sleeper_start = self_ns();
  for (int i = 0; i < 30; i++) usleep(10000);
  sleeper_end = self_ns();
  sleeper_ru = ru_thread_ns();
  pthread_barrier_wait(&measured);
  pthread_barrier_wait(&released);
  return NULL;
}

/* ---- two threads taking turns --------------------------------------------------------------------- */

static pthread_barrier_t go;
static uint64_t turns[2];

static void *yielder(void *p) {
  long i = (long)p;
  pthread_barrier_wait(&go);
  uint64_t s = self_ns(), p0 = proc_ns();
  double t0 = now_s();
  while (proc_ns() - p0 < 300 * MS && now_s() - t0 < 5) {
    spin_a_little();
    sched_yield();
  }
  turns[i] = self_ns() - s;
  return NULL;
}

int main(void) {
  /* The main thread's clock, directly and through its id. */
  uint64_t m0 = self_ns();
  clockid_t mc;
  expect("pthread_getcpuclockid(main)", pthread_getcpuclockid(pthread_self(), &mc), 0);
  uint64_t m1 = clk_ns(mc);
  printf("main clock through its id agrees: %d\n", m1 >= m0 && m1 - m0 < 50 * MS);

  CHECK(pthread_barrier_init(&measured, NULL, 3) == 0);
  CHECK(pthread_barrier_init(&released, NULL, 3) == 0);
  pthread_t tb, ts;
  CHECK(pthread_create(&tb, NULL, busy, NULL) == 0);
  CHECK(pthread_create(&ts, NULL, sleeper, NULL) == 0);
  clockid_t cb, cs;
  expect("pthread_getcpuclockid(busy)", pthread_getcpuclockid(tb, &cb), 0);
  expect("pthread_getcpuclockid(sleeper)", pthread_getcpuclockid(ts, &cs), 0);
  struct timespec res;
  CHECK(clock_getres(cb, &res) == 0);
  printf("resolution of a thread's clock: %ld.%09ld\n", (long)res.tv_sec, res.tv_nsec);
  CHECK(clock_getres(CLOCK_THREAD_CPUTIME_ID, &res) == 0);
  printf("resolution of CLOCK_THREAD_CPUTIME_ID: %ld.%09ld\n", (long)res.tv_sec, res.tv_nsec);

  /* While it spins: what we read from outside includes the slice it is in. */
  while (!atomic_load(&B.mid)) usleep(1000);
  uint64_t busy_mid = clk_ns(cb);
  pthread_barrier_wait(&measured);
  uint64_t busy_after = clk_ns(cb), sleeper_after = clk_ns(cs);
  pthread_barrier_wait(&released);

  uint64_t spun = B.end - B.start;
  fprintf(stderr, "busy: own %.1f ms, process %.1f ms, rusage %.1f ms, via id %.1f, from outside mid %.1f"
                  " (own then %.1f), after %.1f; sleeper: own %.1f ms, rusage %.1f, from outside %.1f\n",
          spun / 1e6, B.proc_delta / 1e6, B.ru / 1e6, B.own_id / 1e6, busy_mid / 1e6, B.mid_own / 1e6,
          busy_after / 1e6, (sleeper_end - sleeper_start) / 1e6, sleeper_ru / 1e6, sleeper_after / 1e6);
  printf("busy thread's clock advanced over 200 ms: %d\n", spun > 200 * MS);
  printf("busy thread's clock about the process's meanwhile: %d\n",
         spun * 10 >= B.proc_delta * 6 && spun <= B.proc_delta + 20 * MS);
  printf("sleeping thread's clock stayed under 50 ms: %d\n", sleeper_end - sleeper_start < 50 * MS);
  printf("RUSAGE_THREAD agrees with the clock (busy, sleeper): %d %d\n", absdiff(B.ru, B.end) < 30 * MS,
         sleeper_ru < 50 * MS);
  printf("own id agrees with CLOCK_THREAD_CPUTIME_ID: %d\n", B.own_id >= B.end && B.own_id - B.end < 30 * MS);
  printf("busy read from outside while it ran: %d\n", busy_mid >= B.mid_own);
  printf("busy read from outside afterwards agrees: %d\n", busy_after >= B.own_id && busy_after - B.own_id < 50 * MS);
  printf("sleeper read from outside stayed under 50 ms: %d\n", sleeper_after < 50 * MS);

  CHECK(pthread_join(tb, NULL) == 0);
  CHECK(pthread_join(ts, NULL) == 0);
  struct timespec gone;
  int r = clock_gettime(cb, &gone);
  printf("clock of a joined thread: %s\n", r == 0 ? "OK" : en(errno));

  /* Process-wide clocks include the busy thread's time. */
  uint64_t p = proc_ns();
  struct tms tm;
  CHECK(times(&tm) != (clock_t)-1);
  uint64_t t = (uint64_t)(tm.tms_utime + tm.tms_stime) * 1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK);
  uint64_t c = (uint64_t)clock() * (1000000000ull / CLOCKS_PER_SEC);
  fprintf(stderr, "process: clock_gettime %.1f ms, times %.1f ms, clock %.1f ms\n", p / 1e6, t / 1e6, c / 1e6);
  printf("process clocks include the busy thread: %d %d %d\n", p + 5 * MS >= spun, t * 10 >= spun * 8,
         c + 5 * MS >= spun);

  /* Two threads taking turns on the CPU: each is charged its own turns only. */
  CHECK(pthread_barrier_init(&go, NULL, 3) == 0);
  pthread_t ty[2];
  for (long i = 0; i < 2; i++) CHECK(pthread_create(&ty[i], NULL, yielder, (void *)i) == 0);
  pthread_barrier_wait(&go);
  uint64_t p0 = proc_ns();
  for (int i = 0; i < 2; i++) CHECK(pthread_join(ty[i], NULL) == 0);
  uint64_t pd = proc_ns() - p0;
  fprintf(stderr, "yielders: %.1f + %.1f ms, process %.1f ms\n", turns[0] / 1e6, turns[1] / 1e6, pd / 1e6);
  printf("yielding threads together used what the process did: %d\n",
         turns[0] + turns[1] <= pd + 20 * MS && (turns[0] + turns[1]) * 10 >= pd * 6);
  printf("each yielding thread got its own share: %d %d\n", turns[0] * 10 >= pd, turns[1] * 10 >= pd);
  return failures;
}
