/* nonblock_loop — a program that makes its fds non-blocking itself (fcntl, ioctl FIONBIO,
 * SOCK_NONBLOCK, accept4, pipe2) gets EAGAIN at once and sees exactly the flags it set; it drives an
 * echo with its own poll() loop and its own epoll loop; clearing O_NONBLOCK makes reads block again.
 * O_NONBLOCK belongs to the open file description, so a dup() shares it. */
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>

#include "progs_util.h"

static void flags(const char *what, int fd) {
  int fl = fcntl(fd, F_GETFL);
  CHECK(fl >= 0);
  printf("%s: O_NONBLOCK %s\n", what, (fl & O_NONBLOCK) ? "yes" : "no");
}

static void eagain_now(const char *what, int fd) {
  char c;
  double t0 = now_s();
  ssize_t r = read(fd, &c, 1);
  double took = now_s() - t0;
  printf("%s read: %s%s\n", what, RES(r), took < 0.5 ? "" : " (SLOW)");
  if (took >= 0.5) fprintf(stderr, "%s read took %.3f s\n", what, took);
}

static void set_nb(int fd, int on) {
  int fl = fcntl(fd, F_GETFL);
  CHECK(fl >= 0);
  CHECK(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) == 0);
}

/* The echo server side: a thread echoing on a blocking socket. */
static void *echo_fn(void *p) {
  int c = (int)(intptr_t)p;
  char buf[4096];
  for (;;) {
    ssize_t r = read(c, buf, sizeof buf);
    CHECK(r >= 0);
    if (r == 0) break;
    CHECK(write(c, buf, (size_t)r) == r);
  }
  CHECK(close(c) == 0);
  return NULL;
}

struct connector {
  int port, delay_ms, fd;
  pthread_t th;
};
static void *connect_fn(void *p) {
  struct connector *c = p;
  msleep(c->delay_ms);
  c->fd = tcp_connect(c->port);
  return NULL;
}

#define NMSG 200
#define TOTAL (NMSG * 1000)

/* Send TOTAL bytes and read the echo, with a poll() loop on a non-blocking socket. */
static void poll_echo(int fd) {
  static unsigned char out[TOTAL], in[TOTAL];
  for (size_t i = 0; i < TOTAL; i++) out[i] = pattern(i);
  size_t sent = 0, got = 0;
  int loops = 0, eagains = 0;
  while (got < TOTAL && loops < 100000) {
    loops++;
    struct pollfd p = {.fd = fd, .events = POLLIN | (sent < TOTAL ? POLLOUT : 0)};
    int n = poll(&p, 1, 2000);
    CHECK(n == 1);
    if (p.revents & POLLOUT) {
      ssize_t w = write(fd, out + sent, TOTAL - sent);
      if (w < 0) {
        CHECK(errno == EAGAIN);
        eagains++;
      } else {
        sent += (size_t)w;
      }
    }
    if (p.revents & POLLIN) {
      ssize_t r = read(fd, in + got, TOTAL - got);
      if (r < 0) {
        CHECK(errno == EAGAIN);
        eagains++;
      } else {
        CHECK(r > 0);
        got += (size_t)r;
      }
    }
  }
  printf("poll loop echo %zu bytes %s\n", got, memcmp(in, out, TOTAL) ? "CORRUPT" : "ok");
  fprintf(stderr, "poll loop: %d loops, %d EAGAIN\n", loops, eagains);
}

/* The same with epoll, edge-triggered for reads (drain until EAGAIN). */
static void epoll_echo(int fd) {
  static unsigned char out[TOTAL], in[TOTAL];
  for (size_t i = 0; i < TOTAL; i++) out[i] = pattern(i + 7);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  CHECK(ep >= 0);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.fd = fd};
  CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
  size_t sent = 0, got = 0;
  int loops = 0;
  while (got < TOTAL && loops < 100000) {
    loops++;
    struct epoll_event evs[4];
    int n = epoll_wait(ep, evs, 4, loops % 2 ? -1 : 2000);
    CHECK(n == 1 && evs[0].data.fd == fd);
    if (evs[0].events & EPOLLOUT) {
      while (sent < TOTAL) {
        ssize_t w = write(fd, out + sent, TOTAL - sent);
        if (w < 0) {
          CHECK(errno == EAGAIN);
          break;
        }
        sent += (size_t)w;
      }
    }
    if (evs[0].events & EPOLLIN) {
      for (;;) {
        ssize_t r = read(fd, in + got, TOTAL - got);
        if (r < 0) {
          CHECK(errno == EAGAIN);
          break;
        }
        CHECK(r > 0);
        got += (size_t)r;
        if (got == TOTAL) break;
      }
    }
  }
  printf("epoll loop echo %zu bytes %s\n", got, memcmp(in, out, TOTAL) ? "CORRUPT" : "ok");
  fprintf(stderr, "epoll loop: %d loops\n", loops);
  /* nothing more to come: timeout 0 looks, timeout 100 waits 100 ms */
  struct epoll_event evs[4];
  ev.events = EPOLLIN;
  CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0);
  printf("epoll_wait timeout 0: %s\n", RES(epoll_wait(ep, evs, 4, 0)));
  double t0 = now_s();
  printf("epoll_wait timeout 100: %s\n", RES(epoll_wait(ep, evs, 4, 100)));
  in_range("epoll_wait timeout 100 waited", now_s() - t0, 0.1, 100);
  /* a thread sends 1 byte after 100 ms; epoll_wait(-1) wakes for it */
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
  ev.data.fd = sv[0];
  CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev) == 0);
  struct delayed_write d;
  t0 = now_s();
  delayed_write_start(&d, sv[1], 100, "x", 1);
  int n = epoll_wait(ep, evs, 4, -1);
  printf("epoll_wait -1: %s fd is %s\n", RES(n), n == 1 && evs[0].data.fd == sv[0] ? "the pair" : "OTHER");
  in_range("epoll_wait -1 woke after 100 ms", now_s() - t0, 0.1, 150);
  delayed_write_join(&d);
  n = epoll_wait(ep, evs, 4, 1000); /* still readable: level-triggered */
  printf("epoll_wait level-triggered again: %s\n", RES(n));
  printf("epoll_wait maxevents 0: %s\n", RES(epoll_wait(ep, evs, 0, 100)));
  printf("epoll_wait on a socket: %s\n", RES(epoll_wait(sv[0], evs, 4, 100)));
  CHECK(close(sv[0]) == 0 && close(sv[1]) == 0 && close(ep) == 0);
}

int main(void) {
  int p[2];
  char c;
  /* fcntl on a pipe */
  CHECK(pipe(p) == 0);
  flags("pipe", p[0]);
  set_nb(p[0], 1);
  flags("pipe after F_SETFL O_NONBLOCK", p[0]);
  flags("its write end", p[1]);
  eagain_now("pipe O_NONBLOCK", p[0]);
  /* cleared again: a read blocks until a thread writes after 100 ms */
  set_nb(p[0], 0);
  flags("pipe after clearing", p[0]);
  struct delayed_write d;
  double t0 = now_s();
  delayed_write_start(&d, p[1], 100, "z", 1);
  ssize_t r = read(p[0], &c, 1);
  printf("pipe read after clearing O_NONBLOCK: %s '%c'\n", RES(r), r == 1 ? c : '?');
  in_range("blocking read waited for the writer", now_s() - t0, 0.1, 150);
  delayed_write_join(&d);
  /* write end non-blocking: fill the pipe until EAGAIN */
  set_nb(p[1], 1);
  static char chunk[4096];
  long total = 0;
  int e = 0;
  for (int i = 0; i < 10000; i++) {
    ssize_t w = write(p[1], chunk, sizeof chunk);
    if (w < 0) {
      e = errno;
      break;
    }
    total += w;
  }
  printf("non-blocking pipe writes stop with %s after %ld bytes\n", errname(e), total);
  CHECK(close(p[0]) == 0 && close(p[1]) == 0);

  /* pipe2(O_NONBLOCK) */
  CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
  flags("pipe2 O_NONBLOCK", p[0]);
  eagain_now("pipe2 O_NONBLOCK", p[0]);
  printf("pipe2 FD_CLOEXEC: %d\n", (fcntl(p[0], F_GETFD) & FD_CLOEXEC) != 0);
  CHECK(close(p[0]) == 0 && close(p[1]) == 0);

  /* ioctl FIONBIO on a socketpair, on and off */
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  int on = 1;
  CHECK(ioctl(sv[0], FIONBIO, &on) == 0);
  flags("socketpair after FIONBIO 1", sv[0]);
  eagain_now("FIONBIO", sv[0]);
  printf("recv FIONBIO: %s\n", RES(recv(sv[0], &c, 1, 0)));
  on = 0;
  CHECK(ioctl(sv[0], FIONBIO, &on) == 0);
  flags("socketpair after FIONBIO 0", sv[0]);
  delayed_write_start(&d, sv[1], 100, "q", 1);
  r = read(sv[0], &c, 1);
  printf("read after FIONBIO 0: %s '%c'\n", RES(r), r == 1 ? c : '?');
  delayed_write_join(&d);
  /* MSG_DONTWAIT on a blocking socket: EAGAIN for that call only */
  printf("recv MSG_DONTWAIT: %s\n", RES(recv(sv[0], &c, 1, MSG_DONTWAIT)));
  flags("after MSG_DONTWAIT", sv[0]);
  CHECK(close(sv[0]) == 0 && close(sv[1]) == 0);

  /* O_NONBLOCK is the open file description's: a dup made before shares it */
  CHECK(pipe(p) == 0);
  int p0dup = dup(p[0]);
  CHECK(p0dup >= 0);
  set_nb(p[0], 1);
  flags("dup of pipe after F_SETFL on original", p0dup);
  delayed_write_start(&d, p[1], 1500, "late", 4); /* only a wrongly blocking read ever sees this */
  eagain_now("dup of non-blocking pipe", p0dup);
  delayed_write_join(&d);
  set_nb(p0dup, 0); /* cleared through the dup: the original blocks again */
  flags("original after clearing via dup", p[0]);
  char buf[16];
  r = read(p[0], buf, sizeof buf); /* "late" is there by now */
  printf("drain: %s\n", RES(r));
  t0 = now_s();
  delayed_write_start(&d, p[1], 100, "w", 1);
  r = read(p[0], &c, 1);
  printf("original read after clearing via dup: %s\n", RES(r));
  delayed_write_join(&d);
  CHECK(close(p0dup) == 0 && close(p[0]) == 0 && close(p[1]) == 0);

  /* a listener made non-blocking through a dup: accept() on the original gives EAGAIN at once,
   * and the flag stays set (a thread connects after 1.5 s should accept wrongly wait) */
  {
    int port2, l0 = tcp_listener(&port2);
    int l1 = dup(l0);
    CHECK(l1 >= 0);
    set_nb(l1, 1);
    struct connector cn = {.port = port2, .delay_ms = 1500};
    CHECK(pthread_create(&cn.th, NULL, connect_fn, &cn) == 0);
    t0 = now_s();
    int s0 = accept(l0, NULL, NULL);
    int e0 = errno;
    printf("accept on listener made non-blocking via a dup: %s%s\n", res(s0, e0),
           now_s() - t0 < 0.5 ? "" : " (SLOW)");
    flags("the dup afterwards", l1);
    flags("the original afterwards", l0);
    CHECK(pthread_join(cn.th, NULL) == 0);
    if (s0 >= 0) CHECK(close(s0) == 0);
    CHECK(close(cn.fd) == 0 && close(l1) == 0 && close(l0) == 0);
  }

  /* SOCK_NONBLOCK listener, non-blocking connect, accept4(SOCK_NONBLOCK) */
  int port, l = tcp_listener(&port);
  set_nb(l, 1);
  flags("listener after F_SETFL", l);
  printf("accept on empty non-blocking listener: %s\n", RES(accept(l, NULL, NULL)));
  int cl = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  CHECK(cl >= 0);
  flags("socket(SOCK_NONBLOCK)", cl);
  struct sockaddr_in a = loopback(port);
  int cr = connect(cl, (struct sockaddr *)&a, sizeof a);
  printf("non-blocking connect: %s\n", cr == 0 || errno == EINPROGRESS ? "0 or EINPROGRESS" : RES(cr));
  struct pollfd pf = {.fd = cl, .events = POLLOUT};
  printf("poll for connect: %s\n", RES(poll(&pf, 1, 2000)));
  int err = -1;
  socklen_t el = sizeof err;
  CHECK(getsockopt(cl, SOL_SOCKET, SO_ERROR, &err, &el) == 0);
  printf("SO_ERROR after connect: %d\n", err);
  pf = (struct pollfd){.fd = l, .events = POLLIN};
  printf("poll listener: %s\n", RES(poll(&pf, 1, 2000)));
  int s1 = accept4(l, NULL, NULL, SOCK_NONBLOCK);
  CHECK(s1 >= 0);
  flags("accept4(SOCK_NONBLOCK)", s1);
  eagain_now("accepted non-blocking", s1);
  set_nb(s1, 0);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, echo_fn, (void *)(intptr_t)s1) == 0);
  poll_echo(cl);
  epoll_echo(cl);
  CHECK(shutdown(cl, SHUT_WR) == 0);
  CHECK(pthread_join(th, NULL) == 0);
  CHECK(close(cl) == 0);

  /* plain accept on a non-blocking listener gives a blocking socket */
  cl = tcp_connect(port);
  pf = (struct pollfd){.fd = l, .events = POLLIN};
  CHECK(poll(&pf, 1, 2000) == 1);
  s1 = accept(l, NULL, NULL);
  CHECK(s1 >= 0);
  flags("accept() on non-blocking listener", s1);
  set_nb(l, 0);
  flags("listener cleared", l);
  CHECK(close(s1) == 0 && close(cl) == 0 && close(l) == 0);
  return 0;
}
