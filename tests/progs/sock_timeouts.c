/* sock_timeouts — SO_RCVTIMEO / SO_SNDTIMEO: blocking read/recv/accept give up with -1 EAGAIN after
 * the timeout (not early, not much late), a write to a peer that never reads returns a partial count
 * or EAGAIN, getsockopt reads the values back, and no timeout is invented where none is set. The
 * options belong to the socket, not to the fd: a dup() sees them, and an accepted socket inherits the
 * listener's. */
#include "progs_util.h"

static const struct timeval t200 = {0, 200000};

/* Which waits (if any) a hooked call invents shows as a wrong result, not a hang: a thread writes to
 * `fd` after `ms` so that a call that should have timed out still returns. */
static struct delayed_write rescue;
static void rescue_start(int fd, int ms) { delayed_write_start(&rescue, fd, ms, "rescue", 6); }

/* A write stopped by SO_SNDTIMEO: how much got through depends on the kernel's buffer tuning. */
static const char *partial(ssize_t r, size_t want, int e) {
  return (r > 0 && (size_t)r < want) || (r < 0 && e == EAGAIN) ? "partial or EAGAIN" : res(r, e);
}

static void timed_s(const char *what, const char *result, double t0) {
  double took = now_s() - t0;
  printf("%s: %s\n", what, result);
  char label[128];
  snprintf(label, sizeof label, "%s after 200 ms", what);
  in_range(label, took, 0.2, 200);
}

static void timed(const char *what, ssize_t r, int e, double t0) { timed_s(what, res(r, e), t0); }

int main(void) {
  int a, b;
  char buf[64];
  ssize_t r;
  double t0;
  struct timeval tv;
  socklen_t tl;

  tcp_pair(&a, &b);
  CHECK(setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &t200, sizeof t200) == 0);
  tl = sizeof tv;
  CHECK(getsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl) == 0);
  printf("getsockopt SO_RCVTIMEO: %ld.%06ld len %u\n", (long)tv.tv_sec, (long)tv.tv_usec, tl);
  t0 = now_s();
  r = read(a, buf, sizeof buf);
  timed("read with SO_RCVTIMEO", r, errno, t0);
  t0 = now_s();
  r = recv(a, buf, sizeof buf, 0);
  timed("recv with SO_RCVTIMEO", r, errno, t0);
  t0 = now_s();
  struct iovec v = {buf, sizeof buf};
  r = readv(a, &v, 1);
  timed("readv with SO_RCVTIMEO", r, errno, t0);
  struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
  t0 = now_s();
  r = recvmsg(a, &m, 0);
  timed("recvmsg with SO_RCVTIMEO", r, errno, t0);

  /* MSG_WAITALL with part of the data there: the part, when the timeout ends the wait */
  CHECK(write(b, "part", 4) == 4);
  t0 = now_s();
  r = recv(a, buf, 10, MSG_WAITALL);
  timed("recv MSG_WAITALL 10 with 4 there", r, errno, t0);

  /* data arriving before the timeout is returned */
  struct delayed_write d;
  delayed_write_start(&d, b, 50, "quick", 5);
  r = read(a, buf, sizeof buf);
  printf("read with SO_RCVTIMEO, data after 50 ms: %s\n", RES(r));
  delayed_write_join(&d);

  /* a dup of the socket has the same timeout: it is the socket's */
  int a2 = dup(a);
  CHECK(a2 >= 0);
  rescue_start(b, 1500);
  t0 = now_s();
  r = read(a2, buf, sizeof buf);
  timed("read on dup() of the socket", r, errno, t0);
  delayed_write_join(&rescue);
  CHECK(close(a2) == 0);
  CHECK(close(a) == 0 && close(b) == 0);

  /* set through a dup made earlier, effective on the original too */
  tcp_pair(&a, &b);
  a2 = dup(a);
  CHECK(a2 >= 0);
  CHECK(setsockopt(a2, SOL_SOCKET, SO_RCVTIMEO, &t200, sizeof t200) == 0);
  rescue_start(b, 1500);
  t0 = now_s();
  r = read(a, buf, sizeof buf);
  timed("read, timeout set through a dup", r, errno, t0);
  delayed_write_join(&rescue);
  CHECK(close(a2) == 0);
  CHECK(close(a) == 0 && close(b) == 0);

  /* cleared again: no timeout, a read waits for data that comes after 300 ms */
  tcp_pair(&a, &b);
  CHECK(setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &t200, sizeof t200) == 0);
  struct timeval t0tv = {0, 0};
  CHECK(setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &t0tv, sizeof t0tv) == 0);
  tl = sizeof tv;
  CHECK(getsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl) == 0);
  printf("getsockopt SO_RCVTIMEO cleared: %ld.%06ld\n", (long)tv.tv_sec, (long)tv.tv_usec);
  t0 = now_s();
  delayed_write_start(&d, b, 300, "slow", 4);
  r = read(a, buf, sizeof buf);
  printf("read without timeout, data after 300 ms: %s\n", RES(r));
  in_range("read without timeout waited", now_s() - t0, 0.3, 200);
  delayed_write_join(&d);
  CHECK(close(a) == 0 && close(b) == 0);

  /* never set at all: same */
  tcp_pair(&a, &b);
  t0 = now_s();
  delayed_write_start(&d, b, 300, "slow", 4);
  r = read(a, buf, sizeof buf);
  printf("read on fresh socket, data after 300 ms: %s\n", RES(r));
  in_range("fresh socket read waited", now_s() - t0, 0.3, 200);
  delayed_write_join(&d);

  /* SO_SNDTIMEO: the peer never reads; a 16 MiB write stops after the timeout */
  CHECK(setsockopt(a, SOL_SOCKET, SO_SNDTIMEO, &t200, sizeof t200) == 0);
  tl = sizeof tv;
  CHECK(getsockopt(a, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl) == 0);
  printf("getsockopt SO_SNDTIMEO: %ld.%06ld\n", (long)tv.tv_sec, (long)tv.tv_usec);
  size_t big = 16u << 20;
  char *out = calloc(1, big);
  CHECK(out);
  t0 = now_s();
  r = write(a, out, big);
  double took = now_s() - t0;
  int e = errno;
  printf("write 16 MiB, peer not reading: %s\n", partial(r, big, e));
  fprintf(stderr, "write returned %s\n", res(r, e));
  in_range("write with SO_SNDTIMEO stopped", took, 0.2, 1000); /* the kernel counts only the waits */
  /* the buffer is full now: the next write gets nothing through */
  t0 = now_s();
  r = write(a, out, 1 << 20);
  timed_s("write into a full buffer", partial(r, 1 << 20, errno), t0);
  t0 = now_s();
  r = send(a, out, 1 << 20, 0);
  timed_s("send into a full buffer", partial(r, 1 << 20, errno), t0);
  free(out);
  CHECK(close(a) == 0 && close(b) == 0);

  /* accept with SO_RCVTIMEO on the listener */
  int port, l = tcp_listener(&port);
  CHECK(setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &t200, sizeof t200) == 0);
  t0 = now_s();
  r = accept(l, NULL, NULL);
  timed("accept with SO_RCVTIMEO", r, errno, t0);
  /* the accepted socket inherits the listener's timeouts */
  a = tcp_connect(port);
  b = accept(l, NULL, NULL);
  CHECK(b >= 0);
  tl = sizeof tv;
  CHECK(getsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl) == 0);
  printf("accepted socket SO_RCVTIMEO: %ld.%06ld\n", (long)tv.tv_sec, (long)tv.tv_usec);
  rescue_start(a, 1500);
  t0 = now_s();
  r = read(b, buf, sizeof buf);
  timed("read on accepted socket", r, errno, t0);
  delayed_write_join(&rescue);
  CHECK(close(a) == 0 && close(b) == 0 && close(l) == 0);

  /* SO_RCVTIMEO_NEW: the same option with 64-bit fields (what 32-bit programs built with 64-bit
   * time_t use; any program may ask for it by name) */
#ifdef SO_RCVTIMEO_NEW
  tcp_pair(&a, &b);
  struct {
    long long sec, usec;
  } nt = {0, 200000};
  CHECK(setsockopt(a, SOL_SOCKET, SO_RCVTIMEO_NEW, &nt, sizeof nt) == 0);
  tl = sizeof tv;
  CHECK(getsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl) == 0);
  printf("SO_RCVTIMEO after SO_RCVTIMEO_NEW: %ld.%06ld\n", (long)tv.tv_sec, (long)tv.tv_usec);
  rescue_start(b, 1500);
  t0 = now_s();
  r = read(a, buf, sizeof buf);
  timed("read with SO_RCVTIMEO_NEW", r, errno, t0);
  delayed_write_join(&rescue);
  CHECK(close(a) == 0 && close(b) == 0);
#endif

  /* AF_UNIX and UDP */
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  CHECK(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &t200, sizeof t200) == 0);
  t0 = now_s();
  r = read(sv[0], buf, sizeof buf);
  timed("unix read with SO_RCVTIMEO", r, errno, t0);
  CHECK(close(sv[0]) == 0 && close(sv[1]) == 0);
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  CHECK(u >= 0);
  struct sockaddr_in ua = loopback(0);
  CHECK(bind(u, (struct sockaddr *)&ua, sizeof ua) == 0);
  CHECK(setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &t200, sizeof t200) == 0);
  socklen_t fl = sizeof ua;
  t0 = now_s();
  r = recvfrom(u, buf, sizeof buf, 0, (struct sockaddr *)&ua, &fl);
  timed("udp recvfrom with SO_RCVTIMEO", r, errno, t0);
  CHECK(close(u) == 0);
  return 0;
}
