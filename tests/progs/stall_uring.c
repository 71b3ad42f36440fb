/* stall_uring — threads waiting in io_uring_wait_cqe (liburing: io_uring_enter with GETEVENTS, a
 * system call no hook emulates) for a read on a pipe that another thread writes 100 ms later, after a
 * sleep. This is how MariaDB's InnoDB waits for its I/O completions.
 *
 * Natively the writer runs while the reader sleeps in the kernel. A runtime that runs threads as
 * coroutines on a few OS threads must not let the reader's io_uring_enter hold up the writer, or this
 * deadlocks. Two reader/writer pairs, so that with two workers a reader can sit on each.
 *
 * Each wait is bounded (8 s, far beyond the 100 ms it takes natively): a stalled run ends with
 * "timed out" lines rather than hanging until the harness's timeout.
 *
 * Where the kernel has no io_uring (io_uring_queue_init fails: too old, or disabled by
 * kernel.io_uring_disabled or a seccomp filter), the reader does a plain read() instead and prints
 * the same lines, natively and preloaded alike, and says so on stderr: the test then proves nothing
 * about io_uring, and the stderr line tells. */
#include <liburing.h>
#include <pthread.h>
#include <unistd.h>

#include "progs_util.h"

enum { PAIRS = 2, DELAY_MS = 100, WAIT_LIMIT_S = 8 };

struct pair {
  int id;
  int p[2];
  char got[32];
  int res;      /* the completion's res: bytes read, or -errno; -ETIME if the wait timed out */
  int uring;    /* 1 if io_uring was used, 0 for the plain-read fallback */
  pthread_t reader, writer;
};

static void *reader(void *arg) {
  struct pair *pr = arg;
  struct io_uring ring;
  int r = io_uring_queue_init(4, &ring, 0);
  if (r < 0) {
    fprintf(stderr, "pair %d: io_uring_queue_init: %s: io_uring is unavailable here; a plain read "
                    "instead (this run does not test io_uring)\n", pr->id, strerror(-r));
    ssize_t n = read(pr->p[0], pr->got, sizeof pr->got - 1);
    pr->res = n < 0 ? -errno : (int)n;
    return NULL;
  }
  pr->uring = 1;
  struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
  CHECK(sqe != NULL);
  io_uring_prep_read(sqe, pr->p[0], pr->got, sizeof pr->got - 1, 0);
  io_uring_sqe_set_data(sqe, pr);
  CHECK(io_uring_submit(&ring) == 1);
  struct io_uring_cqe *cqe;
  struct __kernel_timespec ts = {.tv_sec = WAIT_LIMIT_S};
  double t0 = now_s();
  do r = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
  while (r == -EINTR);
  fprintf(stderr, "pair %d: io_uring_wait_cqe_timeout %d after %.3f s\n", pr->id, r, now_s() - t0);
  if (r == 0) {
    CHECK(io_uring_cqe_get_data(cqe) == pr);
    pr->res = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
  } else {
    pr->res = r; /* -ETIME */
  }
  io_uring_queue_exit(&ring);
  return NULL;
}

static void *writer(void *arg) {
  struct pair *pr = arg;
  msleep(DELAY_MS);
  char msg[32];
  int n = snprintf(msg, sizeof msg, "hello from writer %d", pr->id);
  write_all(pr->p[1], msg, (size_t)n);
  return NULL;
}

int main(void) {
  static struct pair pairs[PAIRS];
  double t0 = now_s();
  for (int i = 0; i < PAIRS; i++) {
    pairs[i].id = i;
    CHECK(pipe(pairs[i].p) == 0);
    CHECK(pthread_create(&pairs[i].reader, NULL, reader, &pairs[i]) == 0);
  }
  for (int i = 0; i < PAIRS; i++) CHECK(pthread_create(&pairs[i].writer, NULL, writer, &pairs[i]) == 0);
  for (int i = 0; i < PAIRS; i++) {
    CHECK(pthread_join(pairs[i].reader, NULL) == 0);
    CHECK(pthread_join(pairs[i].writer, NULL) == 0);
  }
  for (int i = 0; i < PAIRS; i++) {
    struct pair *pr = &pairs[i];
    if (pr->res >= 0) printf("pair %d: read %d bytes: %s\n", i, pr->res, pr->got);
    else printf("pair %d: %s\n", i, pr->res == -ETIME ? "timed out" : strerror(-pr->res));
  }
  double took = now_s() - t0;
  fprintf(stderr, "took %.3f s (io_uring used: %s)\n", took, pairs[0].uring ? "yes" : "no");
  printf("done in under 4 s: %s\n", took < 4 ? "yes" : "no");
  return 0;
}
