/* echo_unix — the echo over AF_UNIX SOCK_STREAM (a listening socket in /tmp and a socketpair), and a
 * SOCK_DGRAM socketpair: datagram boundaries, truncation of a datagram read into a smaller buffer,
 * MSG_TRUNC, MSG_WAITALL (ignored for datagrams), and a blocking recv satisfied by a thread. */
#include <sys/uio.h>

#include "progs_util.h"

#define BIG (8u << 20)

static void *echo_fn(void *p) {
  int c = (int)(intptr_t)p;
  static char buf[32768];
  for (;;) {
    ssize_t r = read(c, buf, sizeof buf);
    CHECK(r >= 0);
    if (r == 0) break;
    CHECK(write(c, buf, (size_t)r) == r);
  }
  CHECK(close(c) == 0);
  return NULL;
}

struct reader {
  int fd;
  unsigned char *buf;
  size_t want, got;
  pthread_t th;
};

static void *reader_fn(void *p) {
  struct reader *r = p;
  r->got = read_full(r->fd, r->buf, r->want);
  return NULL;
}

/* For fd_passing: the first byte with recvmsg (and the fd with it), then the rest with read(). */
static struct msghdr *rd_msg;
static void *fdpass_reader(void *p) {
  struct reader *r = p;
  msleep(50);
  ssize_t n = recvmsg(r->fd, rd_msg, 0);
  CHECK(n == 1);
  r->got = 1 + read_full(r->fd, r->buf + 1, r->want - 1);
  return NULL;
}

/* One write of 8 MiB on c while a thread reads the echo; then small round trips. */
static void echo_client(const char *what, int c) {
  unsigned char *out = malloc(BIG), *in = malloc(BIG);
  CHECK(out && in);
  for (size_t i = 0; i < BIG; i++) out[i] = pattern(i);
  struct reader rd = {.fd = c, .buf = in, .want = BIG};
  CHECK(pthread_create(&rd.th, NULL, reader_fn, &rd) == 0);
  ssize_t w = write(c, out, BIG);
  printf("%s: one write of %u bytes returned %s\n", what, BIG, RES(w));
  CHECK(pthread_join(rd.th, NULL) == 0);
  size_t bad = 0;
  for (size_t i = 0; i < BIG; i++) bad += in[i] != pattern(i);
  printf("%s: echo %zu bytes %s\n", what, rd.got, bad ? "CORRUPT" : "ok");
  free(out);
  free(in);

  int ok = 1;
  for (int i = 0; i < 100; i++) {
    char req[32], resp[32];
    int n = snprintf(req, sizeof req, "ping %d", i);
    CHECK(send(c, req, (size_t)n, 0) == n);
    CHECK(read_full(c, resp, (size_t)n) == (size_t)n);
    ok &= memcmp(req, resp, (size_t)n) == 0;
  }
  printf("%s: 100 round trips %s\n", what, ok ? "ok" : "MISMATCH");

  struct iovec v[2] = {{"hello ", 6}, {"vector", 6}};
  printf("%s: writev %s\n", what, RES(writev(c, v, 2)));
  char a[3], b[9];
  size_t got = 0;
  while (got < 12) { /* the echo may come back in pieces: read into the right place */
    struct iovec part[2];
    int cnt = 0;
    if (got < 3) part[cnt++] = (struct iovec){a + got, 3 - got};
    size_t off = got > 3 ? got - 3 : 0;
    part[cnt++] = (struct iovec){b + off, 9 - off};
    ssize_t r = readv(c, part, cnt);
    CHECK(r > 0);
    got += (size_t)r;
  }
  printf("%s: readv %zu '%.3s' '%.9s'\n", what, got, a, b);

  CHECK(shutdown(c, SHUT_WR) == 0);
  char x;
  printf("%s: read at EOF %s\n", what, RES(read(c, &x, 1)));
  CHECK(close(c) == 0);
}

static void stream_listener(void) {
  struct sockaddr_un a;
  socklen_t al = unix_addr(&a, "echo");
  unlink(a.sun_path);
  int l = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(l >= 0);
  CHECK(bind(l, (struct sockaddr *)&a, al) == 0);
  CHECK(listen(l, 8) == 0);
  int c = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(c >= 0);
  CHECK(connect(c, (struct sockaddr *)&a, al) == 0);
  int s = accept(l, NULL, NULL);
  CHECK(s >= 0);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, echo_fn, (void *)(intptr_t)s) == 0);
  echo_client("unix stream", c);
  CHECK(pthread_join(th, NULL) == 0);
  CHECK(close(l) == 0);
  CHECK(unlink(a.sun_path) == 0);
}

static void stream_pair(void) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, echo_fn, (void *)(intptr_t)sv[1]) == 0);
  echo_client("socketpair", sv[0]);
  CHECK(pthread_join(th, NULL) == 0);
}

static void dgram_pair(void) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
  /* boundaries: three datagrams come back as three */
  const char *msgs[] = {"one", "datagram two", "3"};
  for (int i = 0; i < 3; i++) printf("dgram send %d: %s\n", i, RES(send(sv[0], msgs[i], strlen(msgs[i]), 0)));
  char buf[64];
  for (int i = 0; i < 3; i++) {
    ssize_t r = recv(sv[1], buf, sizeof buf, 0);
    printf("dgram recv %d: %s '%.*s'\n", i, RES(r), r > 0 ? (int)r : 0, buf);
  }
  /* a smaller buffer truncates, the rest of that datagram is gone */
  CHECK(write(sv[0], "0123456789", 10) == 10);
  CHECK(write(sv[0], "next", 4) == 4);
  ssize_t r = read(sv[1], buf, 4);
  printf("dgram read 4 of 10: %s '%.4s'\n", RES(r), buf);
  r = read(sv[1], buf, sizeof buf);
  printf("dgram read next: %s '%.*s'\n", RES(r), r > 0 ? (int)r : 0, buf);
  /* MSG_TRUNC reports the real length */
  CHECK(write(sv[0], "0123456789", 10) == 10);
  r = recv(sv[1], buf, 3, MSG_TRUNC);
  printf("dgram recv MSG_TRUNC 3 of 10: %s\n", RES(r));
  /* recvmsg sets MSG_TRUNC in msg_flags */
  CHECK(write(sv[0], "abcdefgh", 8) == 8);
  struct iovec v = {buf, 5};
  struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
  r = recvmsg(sv[1], &m, 0);
  printf("dgram recvmsg 5 of 8: %s truncflag %d\n", RES(r), (m.msg_flags & MSG_TRUNC) != 0);
  /* MSG_WAITALL means nothing for datagrams: one datagram, even if shorter than the buffer. A receive
   * timeout bounds the wait should a second datagram be waited for. */
  struct timeval tv = {2, 0};
  CHECK(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
  CHECK(write(sv[0], "hello", 5) == 5);
  CHECK(write(sv[0], "world!", 6) == 6);
  memset(buf, 0, sizeof buf);
  r = recv(sv[1], buf, sizeof buf, MSG_WAITALL);
  printf("dgram recv MSG_WAITALL 64: %s '%s'\n", RES(r), buf);
  memset(buf, 0, sizeof buf);
  r = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
  printf("dgram next: %s '%s'\n", RES(r), buf);
  tv.tv_sec = 0;
  CHECK(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
  /* a blocking recv on an empty queue, satisfied by a thread after 100 ms */
  struct delayed_write d;
  double t0 = now_s();
  delayed_write_start(&d, sv[0], 100, "late", 4);
  r = recv(sv[1], buf, sizeof buf, 0);
  double took = now_s() - t0;
  printf("dgram blocking recv: %s '%.*s'\n", RES(r), r > 0 ? (int)r : 0, buf);
  in_range("dgram blocking recv waited", took, 0.1, 150);
  delayed_write_join(&d);
  /* readv of a datagram spread over two buffers */
  CHECK(write(sv[0], "splitme", 7) == 7);
  char a[3], b[10];
  struct iovec rv[2] = {{a, 3}, {b, 10}};
  r = readv(sv[1], rv, 2);
  printf("dgram readv: %s '%.3s' '%.4s'\n", RES(r), a, b);
  /* an empty datagram is a datagram */
  CHECK(write(sv[0], "", 0) == 0);
  r = read(sv[1], buf, sizeof buf);
  printf("dgram empty: %s\n", RES(r));
  CHECK(close(sv[0]) == 0);
  CHECK(close(sv[1]) == 0);
}

/* sendmsg with SCM_RIGHTS and a 1 MiB payload on a stream socketpair: a blocking sendmsg sends all
 * of it (the reader thread drains); the fd arrives with the first byte. */
static void fd_passing(void) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  int p[2];
  CHECK(pipe(p) == 0);
  size_t n = 1u << 20;
  unsigned char *out = malloc(n), *in = malloc(n);
  CHECK(out && in);
  for (size_t i = 0; i < n; i++) out[i] = pattern(i);
  struct reader rd = {.fd = sv[1], .buf = in, .want = n};
  /* the reader takes the first byte with recvmsg (to get the fd), then the rest */
  union {
    struct cmsghdr h;
    char b[CMSG_SPACE(sizeof(int))];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec v = {out, n};
  struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &p[1], sizeof(int));
  union {
    struct cmsghdr h;
    char b[CMSG_SPACE(sizeof(int))];
  } rctl;
  struct iovec rv = {in, 1};
  struct msghdr rm = {.msg_iov = &rv, .msg_iovlen = 1, .msg_control = rctl.b, .msg_controllen = sizeof rctl.b};
  rd_msg = &rm;
  CHECK(pthread_create(&rd.th, NULL, fdpass_reader, &rd) == 0);
  ssize_t w = sendmsg(sv[0], &m, 0);
  printf("sendmsg 1 MiB with SCM_RIGHTS: %s\n", RES(w));
  CHECK(shutdown(sv[0], SHUT_WR) == 0);
  CHECK(pthread_join(rd.th, NULL) == 0);
  size_t bad = 0;
  for (size_t i = 0; i < rd.got; i++) bad += in[i] != pattern(i);
  printf("received %zu bytes %s\n", rd.got, bad ? "CORRUPT" : "ok");
  int passed = -1;
  struct cmsghdr *rc = CMSG_FIRSTHDR(&rm);
  if (rc && rc->cmsg_type == SCM_RIGHTS) memcpy(&passed, CMSG_DATA(rc), sizeof passed);
  printf("fd passed: %s\n", passed >= 0 ? "yes" : "no");
  if (passed >= 0) {
    /* write into the passed write end, read from our read end */
    CHECK(write(passed, "via passed fd", 13) == 13);
    char buf[32];
    ssize_t r = read(p[0], buf, sizeof buf);
    printf("read through it: %s '%.*s'\n", RES(r), r > 0 ? (int)r : 0, buf);
    CHECK(close(passed) == 0);
  }
  CHECK(close(p[0]) == 0 && close(p[1]) == 0 && close(sv[0]) == 0 && close(sv[1]) == 0);
  free(out);
  free(in);
}

int main(void) {
  fd_passing();
  stream_listener();
  stream_pair();
  dgram_pair();
  return 0;
}
