/* progs_util.h — helpers shared by the plain test programs (sockets, full reads/writes, timing).
 * Like progs.h, nothing here knows about cohook. */
#ifndef PROGS_UTIL_H
#define PROGS_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "progs.h"

/* stdout line-buffered, so that a run killed by the harness's timeout still shows how far it got. */
__attribute__((constructor)) static void progs_line_buffered(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

static inline void msleep(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* errno as its symbolic name, for the deterministic lines on stdout. */
/* A signal kick, for the signal(7) cases: a SIGUSR1 handler that counts, and a thread that sends
 * SIGUSR1 to `who` after 60 ms (while it blocks). */
static _Atomic int usr1_handled __attribute__((unused));
static inline void usr1_count(int sig) {
  (void)sig;
  usr1_handled++;
}
struct kick {
  pthread_t who;
};
static inline void *kick_after_60ms(void *p) {
  msleep(60);
  pthread_kill(((struct kick *)p)->who, SIGUSR1);
  return NULL;
}

static inline const char *errname(int e) {
  switch (e) {
#define E(x) case x: return #x;
    E(EAGAIN) E(EINTR) E(EBADF) E(EINVAL) E(EPIPE) E(ECONNRESET) E(ECONNREFUSED) E(ENOENT) E(EISCONN)
    E(EINPROGRESS) E(EALREADY) E(ENOTCONN) E(ENOTSOCK) E(EFAULT) E(EMSGSIZE) E(ETIMEDOUT) E(ENOTTY)
    E(ESPIPE) E(EOPNOTSUPP) E(EADDRINUSE) E(EDESTADDRREQ) E(ECHILD) E(EEXIST) E(EPERM)
    E(EAFNOSUPPORT) E(ECONNABORTED) E(ENOTDIR) E(EACCES) E(ENOMEM) E(EMFILE) E(ENFILE) E(EIO) E(ENXIO)
#undef E
    case 0: return "0";
    default: return "E?";
  }
}

/* "-1 EAGAIN" or the value itself: the deterministic form of a call's result. */
static inline const char *res(long r, int e) {
  static __thread char bufs[8][64]; /* several in one printf are fine */
  static __thread unsigned k;
  char *buf = bufs[k++ % 8];
  if (r < 0) snprintf(buf, 64, "%ld %s", r, errname(e));
  else snprintf(buf, 64, "%ld", r);
  return buf;
}

/* RES(call): the call's result in that form, errno read after the call (a plain res(call, errno)
 * would leave the order of evaluation to the compiler). */
#define RES(expr)                                                                                    \
  ({                                                                                                 \
    long r_ = (long)(expr);                                                                          \
    int e_ = errno;                                                                                  \
    res(r_, e_);                                                                                     \
  })

/* Not early; at most late_ms (plus 250 ms of slack for a loaded machine: these lines catch missing
 * or invented waits, sleep_accuracy checks precision) late. Prints "<what> ok" or
 * "<what> OUT OF RANGE" on stdout. */
static inline int in_range(const char *what, double took, double want, double late_ms) {
  late_ms += 250;
  int ok = took >= want - 0.0005 && took < want + late_ms / 1000.0;
  printf("%s %s\n", what, ok ? "ok" : "OUT OF RANGE");
  if (!ok) fprintf(stderr, "%s: wanted %.3f s (+%.0f ms), took %.6f s\n", what, want, late_ms, took);
  else fprintf(stderr, "%s: took %.6f s\n", what, took);
  return ok;
}

static inline double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static inline int tcp_listener(int *port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(s >= 0);
  int one = 1;
  CHECK(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
  CHECK(listen(s, 64) == 0);
  socklen_t l = sizeof a;
  CHECK(getsockname(s, (struct sockaddr *)&a, &l) == 0);
  *port = ntohs(a.sin_port);
  return s;
}

static inline struct sockaddr_in loopback(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static inline int tcp_connect(int port) {
  int c = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(c >= 0);
  struct sockaddr_in a = loopback(port);
  CHECK(connect(c, (struct sockaddr *)&a, sizeof a) == 0);
  return c;
}

/* A connected TCP pair over loopback: *a is the client end, *b the accepted end. */
static inline void tcp_pair(int *a, int *b) {
  int port, l = tcp_listener(&port);
  *a = tcp_connect(port);
  *b = accept(l, NULL, NULL);
  CHECK(*b >= 0);
  CHECK(close(l) == 0);
}

/* Fill a sockaddr_un with a unique path in /tmp. */
static inline socklen_t unix_addr(struct sockaddr_un *a, const char *tag) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  snprintf(a->sun_path, sizeof a->sun_path, "/tmp/progs-%s-%d.sock", tag, (int)getpid());
  return (socklen_t)sizeof *a;
}

/* Write all of it, tolerating short writes (a plain blocking write may legally be short). */
static inline void write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    CHECK(w > 0);
    p += w;
    n -= (size_t)w;
  }
}

/* The threads of a test each announce themselves (count++) and then block reading their own pipe:
 * wait until all n have announced (10 s at most), give them time to get into read(), then release them
 * in reverse order by writing byte i into pipes[i]. */
static inline void release_blocked_readers(_Atomic int *count, int (*pipes)[2], int n) {
  for (int k = 0; k < 10000 && *count < n; k++) msleep(1);
  CHECK(*count == n);
  msleep(50);
  for (int i = n - 1; i >= 0; i--) {
    char c = (char)i;
    write_all(pipes[i][1], &c, 1);
  }
}

/* Read exactly n bytes unless EOF comes first; returns the count. */
static inline size_t read_full(int fd, void *buf, size_t n) {
  char *p = buf;
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    CHECK(r >= 0);
    if (r == 0) break;
    got += (size_t)r;
  }
  return got;
}

/* A thread that sleeps delay_ms, then writes len bytes of buf to fd (and closes it if asked). */
struct delayed_write {
  int fd;
  int delay_ms;
  const void *buf;
  size_t len;
  int close_after;
  pthread_t th;
};

static inline void *delayed_write_fn(void *p) {
  struct delayed_write *d = p;
  msleep(d->delay_ms);
  if (d->len) write_all(d->fd, d->buf, d->len);
  if (d->close_after) CHECK(close(d->fd) == 0);
  return NULL;
}

static inline void delayed_write_start(struct delayed_write *d, int fd, int delay_ms, const void *buf,
                                       size_t len) {
  d->fd = fd;
  d->delay_ms = delay_ms;
  d->buf = buf;
  d->len = len;
  d->close_after = 0;
  CHECK(pthread_create(&d->th, NULL, delayed_write_fn, d) == 0);
}

static inline void delayed_write_join(struct delayed_write *d) { CHECK(pthread_join(d->th, NULL) == 0); }

struct drain {
  int fd;
  long n;
  pthread_t th;
};

/* A thread body (poll_cases, select_pipe): after 100 ms, read dr->n bytes from dr->fd, making
 * room in a full pipe. */
static inline void *drain_fn(void *arg) {
  struct drain *dr = arg;
  msleep(100);
  static char buf[65536];
  long got = 0;
  while (got < dr->n) {
    ssize_t r = read(dr->fd, buf, sizeof buf);
    CHECK(r > 0);
    got += r;
  }
  return NULL;
}

#endif
