/* close_all — a program linked with libcohook.so (no interposition) that does what daemons do at
 * start: close every fd above 2, then open files that take the freed numbers. The runtime's own fds
 * (libev's epoll and eventfd, the timerfd) are among them; its event loop must notice and carry on:
 * sleeps, fd waits and cross-coroutine hand-offs keep working afterwards. Checks itself; exit 0 = ok. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cohook.h"

static int fails;
#define EXPECT(c)                                                                                    \
  do {                                                                                               \
    if (!(c)) { fprintf(stderr, "close_all: line %d: %s\n", __LINE__, #c); fails++; }                 \
  } while (0)

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int pipefd[2];

static void *reader(void *p) {
  (void)p;
  double t0 = now_ms();
  int r = cohook_wait_fd(pipefd[0], COHOOK_READABLE, 5000000000LL);
  char c = 0;
  if (r > 0 && read(pipefd[0], &c, 1) != 1) c = 0;
  return (void *)(long)(r > 0 && c == 'x' && now_ms() - t0 >= 15 ? 1 : 0);
}

static void *writer(void *p) {
  (void)p;
  cohook_sleep_ns(20000000); /* 20 ms: the reader must really wait */
  return (void *)(long)(write(pipefd[1], "x", 1) == 1);
}

static void *sleeper(void *p) {
  int *n = p;
  for (int i = 0; i < 10; i++) {
    cohook_sleep_ns(200000); /* short sleeps use the timerfd */
    ++*n;
  }
  return NULL;
}

int main(void) {
  /* Start the runtime: this thread's event loop exists from here on. */
  EXPECT(cohook_sleep_ns(1000000) == 0);
  long max = sysconf(_SC_OPEN_MAX);
  int closed = 0;
  for (long fd = 3; fd < max; fd++)
    if (close((int)fd) == 0) closed++;
  EXPECT(closed >= 2); /* at least libev's epoll fd and eventfd were ours to lose */
  /* Reuse the freed numbers for files: the loop's old numbers now name something else. */
  int junk[4];
  for (int i = 0; i < 4; i++) junk[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);

  for (int round = 0; round < 3; round++) {
    EXPECT(pipe(pipefd) == 0);
    cohook_coro_t *r, *w, *s;
    int slept = 0;
    EXPECT(cohook_spawn(&r, reader, NULL) == 0);
    EXPECT(cohook_spawn(&w, writer, NULL) == 0);
    EXPECT(cohook_spawn(&s, sleeper, &slept) == 0);
    void *rv = NULL, *wv = NULL;
    EXPECT(cohook_join(r, &rv) == 0 && rv == (void *)1);
    EXPECT(cohook_join(w, &wv) == 0 && wv == (void *)1);
    EXPECT(cohook_join(s, NULL) == 0 && slept == 10);
    close(pipefd[0]);
    close(pipefd[1]);
    /* And again: every round closes everything above the files we hold. */
    for (long fd = 7; fd < max; fd++) close((int)fd);
  }
  double t0 = now_ms();
  EXPECT(cohook_sleep_ns(30000000) == 0);
  EXPECT(now_ms() - t0 >= 29);
  for (int i = 0; i < 4; i++) close(junk[i]);
  if (fails) return 1;
  printf("close_all: ok (closed %d fds above 2, the event loop carried on)\n", closed);
  return 0;
}
