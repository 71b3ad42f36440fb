/* connect_errors — blocking connect(): refused, no such AF_UNIX path, bad fd, not a socket, already
 * connected, a successful connect, a connect with SO_SNDTIMEO that succeeds, AF_UNIX connect while
 * the listener's backlog is full (waits until an accept makes room), and the socket's flags after. */
#include <fcntl.h>
#include <signal.h>

#include "progs_util.h"

static void flags(const char *what, int fd) {
  int fl = fcntl(fd, F_GETFL);
  printf("%s: O_NONBLOCK %s\n", what, fl >= 0 && (fl & O_NONBLOCK) ? "yes" : "no");
}

struct acceptor {
  int l, delay_ms, n;
  pthread_t th;
};
static void *accept_fn(void *p) {
  struct acceptor *a = p;
  msleep(a->delay_ms);
  for (int i = 0; i < a->n; i++) {
    int s = accept(a->l, NULL, NULL);
    CHECK(s >= 0);
    CHECK(close(s) == 0);
  }
  return NULL;
}

static void on_alarm(int sig) { (void)sig; }

int main(void) {
  double t0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm; /* no SA_RESTART */
  CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
  /* a closed port: take one from the kernel, then close the listener */
  int port, l = tcp_listener(&port);
  CHECK(close(l) == 0);
  struct sockaddr_in a = loopback(port);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(s >= 0);
  t0 = now_s();
  printf("connect to closed port: %s\n", RES(connect(s, (struct sockaddr *)&a, sizeof a)));
  CHECK(now_s() - t0 < 1.0);
  flags("after refused connect", s);
  int err = -1;
  socklen_t el = sizeof err;
  CHECK(getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el) == 0);
  printf("SO_ERROR after refused connect: %d\n", err);
  /* the socket may try again (Linux allows a new connect after a failed one) */
  printf("connect to closed port again: %s\n", RES(connect(s, (struct sockaddr *)&a, sizeof a)));
  CHECK(close(s) == 0);

  /* AF_UNIX: no such path, a path that is not a socket */
  struct sockaddr_un u;
  socklen_t ul = unix_addr(&u, "nonexistent");
  unlink(u.sun_path);
  s = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(s >= 0);
  printf("connect to missing unix path: %s\n", RES(connect(s, (struct sockaddr *)&u, ul)));
  struct sockaddr_un tmp = {.sun_family = AF_UNIX};
  strcpy(tmp.sun_path, "/tmp");
  printf("connect to a directory: %s\n", RES(connect(s, (struct sockaddr *)&tmp, sizeof tmp)));
  CHECK(close(s) == 0);

  /* bad fds */
  printf("connect on fd -1: %s\n", RES(connect(-1, (struct sockaddr *)&a, sizeof a)));
  int p[2];
  CHECK(pipe(p) == 0);
  CHECK(close(p[0]) == 0);
  printf("connect on a closed fd: %s\n", RES(connect(p[0], (struct sockaddr *)&a, sizeof a)));
  printf("connect on a pipe: %s\n", RES(connect(p[1], (struct sockaddr *)&a, sizeof a)));
  CHECK(close(p[1]) == 0);
  s = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(s >= 0);
  printf("connect with short address: %s\n", RES(connect(s, (struct sockaddr *)&a, 4)));
  CHECK(close(s) == 0);

  /* success, then EISCONN */
  l = tcp_listener(&port);
  a = loopback(port);
  s = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(s >= 0);
  printf("connect to listener: %s\n", RES(connect(s, (struct sockaddr *)&a, sizeof a)));
  flags("after connect", s);
  printf("connect again: %s\n", RES(connect(s, (struct sockaddr *)&a, sizeof a)));
  printf("and again: %s\n", RES(connect(s, (struct sockaddr *)&a, sizeof a)));
  int c = accept(l, NULL, NULL);
  CHECK(c >= 0);
  CHECK(write(s, "hi", 2) == 2);
  char buf[8];
  printf("data over it: %s\n", RES(read(c, buf, sizeof buf)));
  CHECK(close(c) == 0 && close(s) == 0);

  /* SO_SNDTIMEO 100 ms on a connect that succeeds */
  s = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(s >= 0);
  struct timeval tv = {0, 100000};
  CHECK(setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0);
  t0 = now_s();
  printf("connect with SO_SNDTIMEO: %s\n", RES(connect(s, (struct sockaddr *)&a, sizeof a)));
  CHECK(now_s() - t0 < 1.0);
  flags("after connect with SO_SNDTIMEO", s);
  c = accept(l, NULL, NULL);
  CHECK(c >= 0);
  CHECK(close(c) == 0 && close(s) == 0);
  flags("listener", l);
  CHECK(close(l) == 0);

  /* connect to the wrong family / an unsupported address */
  s = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(s >= 0);
  printf("AF_INET socket to AF_UNIX address: %s\n", RES(connect(s, (struct sockaddr *)&u, ul)));
  CHECK(close(s) == 0);

  /* UDP connect: no handshake, always at once; a send then gets ECONNREFUSED via ICMP */
  s = socket(AF_INET, SOCK_DGRAM, 0);
  CHECK(s >= 0);
  l = tcp_listener(&port); /* a port number that has no UDP socket (most likely) */
  CHECK(close(l) == 0);
  a = loopback(port);
  printf("udp connect: %s\n", RES(connect(s, (struct sockaddr *)&a, sizeof a)));
  printf("udp send: %s\n", RES(send(s, "x", 1, 0)));
  msleep(20);
  printf("udp recv after ICMP: %s\n", RES(recv(s, buf, sizeof buf, 0)));
  /* the error queue never blocks: empty, it is -1 EAGAIN at once (a SIGALRM in 2 s ends a wait
   * that should not be) */
  int one = 1;
  CHECK(setsockopt(s, IPPROTO_IP, IP_RECVERR, &one, sizeof one) == 0);
  char cbuf[512];
  struct iovec iv = {buf, sizeof buf};
  struct msghdr mh = {.msg_iov = &iv, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  alarm(2);
  t0 = now_s();
  printf("recvmsg MSG_ERRQUEUE, queue empty: %s", RES(recvmsg(s, &mh, MSG_ERRQUEUE)));
  printf("%s\n", now_s() - t0 < 1 ? "" : " after waiting");
  alarm(0);
  printf("udp send: %s\n", RES(send(s, "x", 1, 0)));
  msleep(20);
  mh.msg_controllen = sizeof cbuf;
  alarm(2);
  printf("recvmsg MSG_ERRQUEUE after ICMP: %s\n", RES(recvmsg(s, &mh, MSG_ERRQUEUE)));
  mh.msg_controllen = sizeof cbuf;
  alarm(2);
  t0 = now_s();
  printf("recvmsg MSG_ERRQUEUE, empty again: %s", RES(recvmsg(s, &mh, MSG_ERRQUEUE)));
  printf("%s\n", now_s() - t0 < 1 ? "" : " after waiting");
  alarm(2);
  printf("recv MSG_ERRQUEUE, empty: %s\n", RES(recv(s, buf, sizeof buf, MSG_ERRQUEUE)));
  alarm(0);
  CHECK(close(s) == 0);

  /* AF_UNIX: a listener with backlog 1 that nobody accepts from for 200 ms; blocking connects wait
   * for room (Linux) and all succeed once a thread accepts */
  ul = unix_addr(&u, "backlog");
  unlink(u.sun_path);
  l = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(l >= 0);
  CHECK(bind(l, (struct sockaddr *)&u, ul) == 0);
  CHECK(listen(l, 1) == 0);
  struct acceptor acc = {.l = l, .delay_ms = 200, .n = 4};
  t0 = now_s();
  CHECK(pthread_create(&acc.th, NULL, accept_fn, &acc) == 0);
  int cs[4];
  for (int i = 0; i < 4; i++) {
    cs[i] = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(cs[i] >= 0);
    printf("unix connect %d with full backlog: %s\n", i, RES(connect(cs[i], (struct sockaddr *)&u, ul)));
  }
  double took = now_s() - t0;
  printf("the blocked connects waited for the accepts: %s\n", took >= 0.19 && took < 1.5 ? "yes" : "NO");
  fprintf(stderr, "4 unix connects took %.3f s\n", took);
  CHECK(pthread_join(acc.th, NULL) == 0);
  for (int i = 0; i < 4; i++) CHECK(close(cs[i]) == 0);
  /* same, with SO_SNDTIMEO 100 ms and nobody accepting: EAGAIN after the timeout */
  int f1 = socket(AF_UNIX, SOCK_STREAM, 0), f2 = socket(AF_UNIX, SOCK_STREAM, 0),
      f3 = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(f1 >= 0 && f2 >= 0 && f3 >= 0);
  CHECK(connect(f1, (struct sockaddr *)&u, ul) == 0);
  CHECK(connect(f2, (struct sockaddr *)&u, ul) == 0); /* backlog 1 admits two on Linux */
  CHECK(setsockopt(f3, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0);
  t0 = now_s();
  printf("unix connect, full backlog, SO_SNDTIMEO: %s\n", RES(connect(f3, (struct sockaddr *)&u, ul)));
  in_range("unix connect timed out", now_s() - t0, 0.1, 150);
  CHECK(close(f1) == 0 && close(f2) == 0 && close(f3) == 0 && close(l) == 0);
  CHECK(unlink(u.sun_path) == 0);
  return 0;
}
