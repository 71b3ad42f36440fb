/* echo_tcp — a blocking echo server thread over loopback TCP, and clients that use it:
 * one write() of 8 MiB while another thread reads the echo back (the write must complete fully
 * though the wire takes it in pieces), small request/response round trips, writev/readv, send/recv. */
#include <sys/uio.h>

#include "progs_util.h"

#define BIG (8u << 20)

/* Echo server: accepts `nconn` connections one after another and echoes each until EOF. */
struct server {
  int lfd;
  int nconn;
  pthread_t th;
  size_t echoed;
};

static void *server_fn(void *p) {
  struct server *s = p;
  static char buf[65536];
  for (int i = 0; i < s->nconn; i++) {
    int c = accept(s->lfd, NULL, NULL);
    CHECK(c >= 0);
    for (;;) {
      ssize_t r = read(c, buf, sizeof buf);
      CHECK(r >= 0);
      if (r == 0) break;
      ssize_t w = write(c, buf, (size_t)r);
      CHECK(w == r); /* a blocking write returns only when all of it is written */
      s->echoed += (size_t)r;
    }
    CHECK(close(c) == 0);
  }
  return NULL;
}

struct reader {
  int fd;
  unsigned char *buf;
  size_t got;
  pthread_t th;
};

static void *reader_fn(void *p) {
  struct reader *r = p;
  r->got = read_full(r->fd, r->buf, BIG);
  return NULL;
}

static void big_echo(int port) {
  int c = tcp_connect(port);
  unsigned char *out = malloc(BIG), *in = malloc(BIG);
  CHECK(out && in);
  for (size_t i = 0; i < BIG; i++) out[i] = pattern(i);
  memset(in, 0, BIG);
  struct reader rd = {.fd = c, .buf = in};
  double t0 = now_s();
  CHECK(pthread_create(&rd.th, NULL, reader_fn, &rd) == 0);
  ssize_t w = write(c, out, BIG);
  printf("one write of %u bytes returned %s\n", BIG, RES(w));
  CHECK(shutdown(c, SHUT_WR) == 0);
  CHECK(pthread_join(rd.th, NULL) == 0);
  fprintf(stderr, "8 MiB echo took %.3f s\n", now_s() - t0);
  size_t bad = 0;
  for (size_t i = 0; i < BIG; i++) bad += in[i] != pattern(i);
  printf("tcp echo %zu bytes %s\n", rd.got, bad ? "CORRUPT" : "ok");
  char x;
  printf("read after echo EOF: %s\n", RES(read(c, &x, 1)));
  CHECK(close(c) == 0);
  free(out);
  free(in);
}

static void round_trips(int port) {
  int c = tcp_connect(port);
  int one = 1;
  CHECK(setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
  int ok = 1;
  for (int i = 0; i < 200; i++) {
    char req[64], resp[64];
    int n = snprintf(req, sizeof req, "request %d", i);
    CHECK(write(c, req, (size_t)n) == n);
    CHECK(read_full(c, resp, (size_t)n) == (size_t)n);
    ok &= memcmp(req, resp, (size_t)n) == 0;
  }
  printf("200 round trips %s\n", ok ? "ok" : "MISMATCH");
  CHECK(close(c) == 0);
}

struct vreader {
  int fd;
  size_t total, got;
  unsigned char *buf;
  pthread_t th;
};

/* readv into differently cut pieces than the writev used */
static void *vreader_fn(void *p) {
  struct vreader *v = p;
  while (v->got < v->total) {
    size_t left = v->total - v->got;
    size_t p1 = left < 1000 ? left : 1000, p2 = left - p1 < 50000 ? left - p1 : 50000;
    struct iovec rv[2] = {{v->buf + v->got, p1}, {v->buf + v->got + p1, p2}};
    ssize_t r = readv(v->fd, rv, p2 ? 2 : 1);
    CHECK(r > 0);
    v->got += (size_t)r;
  }
  return NULL;
}

static void vector_io(int port) {
  int c = tcp_connect(port);
  /* writev: 3 pieces, one of them large */
  static unsigned char a[100], b[300000], d[7];
  for (size_t i = 0; i < sizeof a; i++) a[i] = pattern(i);
  for (size_t i = 0; i < sizeof b; i++) b[i] = pattern(sizeof a + i);
  for (size_t i = 0; i < sizeof d; i++) d[i] = pattern(sizeof a + sizeof b + i);
  struct iovec wv[3] = {{a, sizeof a}, {b, sizeof b}, {d, sizeof d}};
  size_t total = sizeof a + sizeof b + sizeof d;

  struct vreader vr = {.fd = c, .total = total, .buf = malloc(total)};
  CHECK(vr.buf);
  CHECK(pthread_create(&vr.th, NULL, vreader_fn, &vr) == 0); /* reads the echo while writev runs */
  ssize_t w = writev(c, wv, 3);
  printf("writev %zu bytes returned %s\n", total, RES(w));
  CHECK(pthread_join(vr.th, NULL) == 0);
  size_t bad = 0;
  for (size_t i = 0; i < total; i++) bad += vr.buf[i] != pattern(i);
  printf("writev/readv echo %zu bytes %s\n", vr.got, bad ? "CORRUPT" : "ok");
  free(vr.buf);

  /* send/recv */
  const char msg[] = "send and recv";
  printf("send: %s\n", RES(send(c, msg, sizeof msg, 0)));
  char buf[64];
  size_t n = 0;
  while (n < sizeof msg) {
    ssize_t r = recv(c, buf + n, sizeof msg - n, 0);
    CHECK(r > 0);
    n += (size_t)r;
  }
  printf("recv: %zu %s\n", n, memcmp(buf, msg, sizeof msg) == 0 ? "same" : "DIFFERENT");

  /* sendmsg/recvmsg with two iovecs each */
  struct iovec sv[2] = {{"sendmsg-", 8}, {"recvmsg", 7}};
  struct msghdr m = {.msg_iov = sv, .msg_iovlen = 2};
  printf("sendmsg: %s\n", RES(sendmsg(c, &m, 0)));
  char r1[5], r2[10];
  struct iovec rv[2] = {{r1, sizeof r1}, {r2, sizeof r2}};
  struct msghdr rm = {.msg_iov = rv, .msg_iovlen = 2};
  ssize_t r = recvmsg(c, &rm, MSG_WAITALL);
  printf("recvmsg MSG_WAITALL: %s %.5s%.10s\n", RES(r), r1, r2);

  /* sendto/recvfrom with NULL addresses on a connected stream socket */
  printf("sendto: %s\n", RES(sendto(c, "abcdef", 6, 0, NULL, 0)));
  struct sockaddr_in from;
  socklen_t fl = sizeof from;
  memset(buf, 0, sizeof buf);
  r = recvfrom(c, buf, 6, MSG_WAITALL, (struct sockaddr *)&from, &fl);
  printf("recvfrom MSG_WAITALL: %s %.6s\n", RES(r), buf);
  CHECK(close(c) == 0);
}

int main(void) {
  struct server s = {.nconn = 3};
  int port;
  s.lfd = tcp_listener(&port);
  CHECK(pthread_create(&s.th, NULL, server_fn, &s) == 0);
  big_echo(port);
  round_trips(port);
  vector_io(port);
  CHECK(pthread_join(s.th, NULL) == 0);
  printf("server echoed %zu bytes\n", s.echoed);
  CHECK(close(s.lfd) == 0);
  return 0;
}
