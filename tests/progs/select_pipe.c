/* select_pipe — select() and pselect() on pipes (and one TCP pair for out-of-band data): timeouts
 * clear the sets and leave 0 in *timeout, readiness made by a writer thread, write readiness, the
 * exception set, nfds 0 as a sleep, EBADF / EINVAL, EOF as readiness, and an fd just below
 * FD_SETSIZE. */
#include <signal.h>
#include <sys/select.h>

#include "progs_util.h"

/* After 100 ms, send one byte of out-of-band data. */
static void *oob_fn(void *arg) {
  int fd = *(int *)arg;
  msleep(100);
  CHECK(send(fd, "!", 1, MSG_OOB) == 1);
  return NULL;
}

static int pipe_or_die(int p[2]) {
  CHECK(pipe(p) == 0);
  return p[0];
}

int main(void) {
  int p[2];
  fd_set rd, wr, ex;
  struct timeval tv;
  double t0;
  int n;
  struct delayed_write d;

  /* timeout with nothing ready: 0, sets cleared, no time left */
  pipe_or_die(p);
  FD_ZERO(&rd);
  FD_SET(p[0], &rd);
  tv = (struct timeval){0, 200000};
  t0 = now_s();
  n = select(p[0] + 1, &rd, NULL, NULL, &tv);
  printf("select timeout: %s, fd still set %d, tv left %ld.%06ld\n", RES(n), FD_ISSET(p[0], &rd),
         (long)tv.tv_sec, (long)tv.tv_usec);
  in_range("select timeout 200 ms", now_s() - t0, 0.2, 100);

  /* a writer thread makes it readable after 100 ms: the rest of the timeout is left in tv */
  FD_ZERO(&rd);
  FD_SET(p[0], &rd);
  tv = (struct timeval){1, 0};
  t0 = now_s();
  delayed_write_start(&d, p[1], 100, "r", 1);
  n = select(p[0] + 1, &rd, NULL, NULL, &tv);
  double took = now_s() - t0;
  printf("select readable: %s, fd set %d\n", RES(n), FD_ISSET(p[0], &rd));
  in_range("select woke for the writer", took, 0.1, 150);
  double left = (double)tv.tv_sec + tv.tv_usec / 1e6;
  int ok = left > 0.5 && left <= 0.9 + 0.001;
  printf("select tv left after 100 ms of 1 s: %s\n", ok ? "in range" : "OUT OF RANGE");
  if (!ok) fprintf(stderr, "tv left %.6f\n", left);
  delayed_write_join(&d);

  /* no timeout at all: waits */
  char c;
  CHECK(read(p[0], &c, 1) == 1);
  FD_ZERO(&rd);
  FD_SET(p[0], &rd);
  t0 = now_s();
  delayed_write_start(&d, p[1], 100, "s", 1);
  n = select(p[0] + 1, &rd, NULL, NULL, NULL);
  printf("select without timeout: %s, fd set %d\n", RES(n), FD_ISSET(p[0], &rd));
  in_range("select without timeout woke", now_s() - t0, 0.1, 150);
  delayed_write_join(&d);

  /* read and write readiness together: the same count natively */
  FD_ZERO(&rd);
  FD_ZERO(&wr);
  FD_SET(p[0], &rd);
  FD_SET(p[1], &rd); /* the write end never reads: not set */
  FD_SET(p[1], &wr);
  FD_SET(p[0], &wr); /* the read end is never writable */
  tv = (struct timeval){1, 0};
  n = select(p[1] + 1, &rd, &wr, NULL, &tv);
  printf("select rd+wr: %s, rd %d%d wr %d%d\n", RES(n), FD_ISSET(p[0], &rd), FD_ISSET(p[1], &rd),
         FD_ISSET(p[0], &wr), FD_ISSET(p[1], &wr));
  CHECK(read(p[0], &c, 1) == 1);

  /* a full pipe is not writable; it becomes writable when a thread drains it */
  static char chunk[65536];
  {
    FD_ZERO(&wr);
    FD_SET(p[1], &wr);
    tv = (struct timeval){0, 0};
    long total = 0;
    while (select(p[1] + 1, NULL, &wr, NULL, &tv) == 1) { /* write while select says it fits */
      CHECK(write(p[1], chunk, 4096) == 4096);
      total += 4096;
      FD_SET(p[1], &wr);
      tv = (struct timeval){0, 0};
      if (total > (1 << 24)) break;
    }
    printf("pipe filled to %ld bytes\n", total);
    FD_SET(p[1], &wr);
    tv = (struct timeval){0, 150000};
    t0 = now_s();
    n = select(p[1] + 1, NULL, &wr, NULL, &tv);
    printf("select on full pipe: %s\n", RES(n));
    in_range("select on full pipe timed out", now_s() - t0, 0.15, 100);
    struct drain dr = {.fd = p[0], .n = total};
    t0 = now_s();
    CHECK(pthread_create(&dr.th, NULL, drain_fn, &dr) == 0);
    FD_SET(p[1], &wr);
    n = select(p[1] + 1, NULL, &wr, NULL, NULL);
    printf("select write-ready after drain: %s wr %d\n", RES(n), FD_ISSET(p[1], &wr));
    in_range("select woke for the drain", now_s() - t0, 0.1, 150);
    CHECK(pthread_join(dr.th, NULL) == 0);
  }

  /* exception set on a pipe: never set; the select times out even though the pipe is readable,
   * and waiting costs no CPU */
  CHECK(write(p[1], "e", 1) == 1);
  FD_ZERO(&ex);
  FD_SET(p[0], &ex);
  tv = (struct timeval){0, 300000};
  t0 = now_s();
  double c0 = cpu_s();
  n = select(p[0] + 1, NULL, NULL, &ex, &tv);
  double cpu = cpu_s() - c0;
  printf("select ex on readable pipe: %s ex %d\n", RES(n), FD_ISSET(p[0], &ex));
  in_range("select ex timed out", now_s() - t0, 0.3, 100);
  printf("select ex wait used little CPU: %s\n", cpu < 0.03 ? "yes" : "NO");
  fprintf(stderr, "cpu %.3f s\n", cpu);
  CHECK(read(p[0], &c, 1) == 1);

  /* out-of-band data on TCP sets the exception set */
  {
    int a, b;
    tcp_pair(&a, &b);
    pthread_t oth;
    CHECK(pthread_create(&oth, NULL, oob_fn, &b) == 0);
    FD_ZERO(&ex);
    FD_SET(a, &ex);
    tv = (struct timeval){2, 0};
    t0 = now_s();
    n = select(a + 1, NULL, NULL, &ex, &tv);
    printf("select ex with OOB data: %s ex %d\n", RES(n), FD_ISSET(a, &ex));
    in_range("select ex woke for OOB", now_s() - t0, 0.1, 150);
    CHECK(pthread_join(oth, NULL) == 0);
    CHECK(close(a) == 0 && close(b) == 0);
  }

  /* nfds 0 as a sleep, with select and pselect */
  tv = (struct timeval){0, 100000};
  t0 = now_s();
  printf("select nfds 0: %s tv %ld.%06ld\n", RES(select(0, NULL, NULL, NULL, &tv)), (long)tv.tv_sec,
         (long)tv.tv_usec);
  in_range("select nfds 0 slept", now_s() - t0, 0.1, 100);
  struct timespec ts = {0, 100000000};
  t0 = now_s();
  printf("pselect nfds 0: %s ts %ld.%09ld\n", RES(pselect(0, NULL, NULL, NULL, &ts, NULL)), (long)ts.tv_sec,
         ts.tv_nsec);
  in_range("pselect nfds 0 slept", now_s() - t0, 0.1, 100);

  /* pselect with and without a signal mask */
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGUSR1);
  FD_ZERO(&rd);
  FD_SET(p[0], &rd);
  ts = (struct timespec){0, 150000000};
  t0 = now_s();
  printf("pselect timeout with mask: %s\n", RES(pselect(p[0] + 1, &rd, NULL, NULL, &ts, &mask)));
  in_range("pselect with mask timed out", now_s() - t0, 0.15, 100);
  FD_SET(p[0], &rd);
  t0 = now_s();
  delayed_write_start(&d, p[1], 100, "m", 1);
  ts = (struct timespec){2, 0};
  n = pselect(p[0] + 1, &rd, NULL, NULL, &ts, &mask);
  printf("pselect readable with mask: %s rd %d\n", RES(n), FD_ISSET(p[0], &rd));
  in_range("pselect with mask woke", now_s() - t0, 0.1, 150);
  delayed_write_join(&d);
  CHECK(read(p[0], &c, 1) == 1);
  FD_SET(p[0], &rd);
  t0 = now_s();
  delayed_write_start(&d, p[1], 100, "n", 1);
  n = pselect(p[0] + 1, &rd, NULL, NULL, &ts, NULL);
  printf("pselect readable: %s rd %d\n", RES(n), FD_ISSET(p[0], &rd));
  in_range("pselect woke", now_s() - t0, 0.1, 150);
  delayed_write_join(&d);
  CHECK(read(p[0], &c, 1) == 1);
  FD_SET(p[0], &rd);
  ts = (struct timespec){0, 1000000000};
  printf("pselect bad nsec: %s\n", RES(pselect(p[0] + 1, &rd, NULL, NULL, &ts, NULL)));

  /* errors */
  int q[2];
  pipe_or_die(q);
  CHECK(close(q[0]) == 0 && close(q[1]) == 0);
  FD_ZERO(&rd);
  FD_SET(q[0], &rd);
  FD_SET(p[0], &rd);
  tv = (struct timeval){0, 100000};
  printf("select with a closed fd: %s\n", RES(select((q[0] > p[0] ? q[0] : p[0]) + 1, &rd, NULL, NULL, &tv)));
  tv = (struct timeval){0, 100000};
  printf("select nfds -1: %s\n", RES(select(-1, NULL, NULL, NULL, &tv)));
  tv = (struct timeval){0, -1};
  FD_ZERO(&rd);
  FD_SET(p[0], &rd);
  printf("select negative usec: %s\n", RES(select(p[0] + 1, &rd, NULL, NULL, &tv)));
  tv = (struct timeval){-1, 0};
  printf("select negative sec: %s\n", RES(select(p[0] + 1, &rd, NULL, NULL, &tv)));
  /* tv_usec of a whole second and more is accepted by Linux */
  FD_SET(p[0], &rd);
  tv = (struct timeval){0, 1100000};
  delayed_write_start(&d, p[1], 100, "u", 1);
  printf("select usec 1100000: %s\n", RES(select(p[0] + 1, &rd, NULL, NULL, &tv)));
  delayed_write_join(&d);
  CHECK(read(p[0], &c, 1) == 1);

  /* EOF is readiness */
  CHECK(close(p[1]) == 0);
  FD_ZERO(&rd);
  FD_SET(p[0], &rd);
  tv = (struct timeval){1, 0};
  t0 = now_s();
  n = select(p[0] + 1, &rd, NULL, NULL, &tv);
  printf("select on pipe with closed writer: %s rd %d, read %s\n", RES(n), FD_ISSET(p[0], &rd),
         RES(read(p[0], &c, 1)));
  CHECK(now_s() - t0 < 0.5);
  /* the writer closed while we wait */
  CHECK(close(p[0]) == 0);
  pipe_or_die(p);
  {
    struct delayed_write dc = {.fd = p[1], .delay_ms = 100, .close_after = 1};
    t0 = now_s();
    CHECK(pthread_create(&dc.th, NULL, delayed_write_fn, &dc) == 0);
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    n = select(p[0] + 1, &rd, NULL, NULL, NULL);
    printf("select woken by writer close: %s rd %d\n", RES(n), FD_ISSET(p[0], &rd));
    in_range("select woke for the close", now_s() - t0, 0.1, 150);
    CHECK(pthread_join(dc.th, NULL) == 0);
  }
  CHECK(close(p[0]) == 0);

  /* an fd just below FD_SETSIZE */
  pipe_or_die(p);
  int hi = FD_SETSIZE - 2, hw = FD_SETSIZE - 1;
  CHECK(dup2(p[0], hi) == hi && dup2(p[1], hw) == hw);
  CHECK(close(p[0]) == 0 && close(p[1]) == 0);
  FD_ZERO(&rd);
  FD_SET(hi, &rd);
  tv = (struct timeval){0, 100000};
  t0 = now_s();
  printf("select fd %d timeout: %s\n", hi, RES(select(hi + 1, &rd, NULL, NULL, &tv)));
  in_range("select high fd timed out", now_s() - t0, 0.1, 100);
  FD_SET(hi, &rd);
  t0 = now_s();
  delayed_write_start(&d, hw, 100, "h", 1);
  tv = (struct timeval){2, 0};
  n = select(FD_SETSIZE, &rd, NULL, NULL, &tv);
  printf("select fd %d readable: %s rd %d\n", hi, RES(n), FD_ISSET(hi, &rd));
  in_range("select high fd woke", now_s() - t0, 0.1, 150);
  delayed_write_join(&d);
  FD_ZERO(&wr);
  FD_SET(hw, &wr);
  tv = (struct timeval){1, 0};
  printf("select fd %d writable: %s\n", hw, RES(select(FD_SETSIZE, NULL, &wr, NULL, &tv)));
  CHECK(read(hi, &c, 1) == 1);
  CHECK(close(hi) == 0 && close(hw) == 0);
  return 0;
}

