/* sleep_accuracy — nanosleep, usleep, clock_nanosleep (relative and absolute) and select-as-sleep
 * never return early and are not late by much. Prints one line per kind. */
#include <sys/select.h>
#include <unistd.h>

#include "progs.h"

static void report(const char *what, double want, double took) {
  /* Never early; at most 20 ms late (a loaded 2-core CI machine). */
  int ok = took >= want - 1e-4 && took < want + 0.02;
  printf("%-22s %s\n", what, ok ? "ok" : "OUT OF RANGE");
  if (!ok) fprintf(stderr, "%s: wanted %.6f s, took %.6f s\n", what, want, took);
}

int main(void) {
  double t0 = now_s();
  struct timespec ts = {0, 50 * 1000 * 1000};
  CHECK(nanosleep(&ts, NULL) == 0);
  report("nanosleep 50ms", 0.05, now_s() - t0);

  t0 = now_s();
  CHECK(usleep(20000) == 0);
  report("usleep 20ms", 0.02, now_s() - t0);

  t0 = now_s();
  CHECK(usleep(300) == 0);
  report("usleep 300us", 0.0003, now_s() - t0);

  t0 = now_s();
  CHECK(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) == 0);
  report("clock_nanosleep rel", 0.05, now_s() - t0);

  struct timespec abs;
  clock_gettime(CLOCK_MONOTONIC, &abs);
  abs.tv_nsec += 30 * 1000 * 1000;
  if (abs.tv_nsec >= 1000000000) abs.tv_sec++, abs.tv_nsec -= 1000000000;
  t0 = now_s();
  CHECK(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL) == 0);
  report("clock_nanosleep abs", 0.03, now_s() - t0);

  t0 = now_s();
  struct timeval tv = {0, 40000};
  CHECK(select(0, NULL, NULL, NULL, &tv) == 0);
  report("select as sleep", 0.04, now_s() - t0);
  printf("select left tv %ld.%06ld\n", (long)tv.tv_sec, (long)tv.tv_usec); /* Linux: time not slept */

  t0 = now_s();
  CHECK(sleep(1) == 0);
  report("sleep 1s", 1.0, now_s() - t0);

  struct timespec bad = {0, 1000000000};
  errno = 0;
  printf("nanosleep bad nsec: %d errno %s\n", nanosleep(&bad, NULL), strerror(errno));
  printf("clock_nanosleep bad: %d\n", clock_nanosleep(CLOCK_MONOTONIC, 0, &bad, NULL));
  return 0;
}
