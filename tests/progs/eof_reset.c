/* eof_reset — how connections end, seen by blocking calls: EOF after shutdown(SHUT_WR), ECONNRESET
 * after an abortive close (SO_LINGER {1,0}) or a close with unread data, EPIPE on writes to a closed
 * peer (SIGPIPE ignored, or caught), MSG_PEEK, and MSG_WAITALL over data sent in pieces. */
#include <signal.h>

#include "progs_util.h"

/* Runs one action on the peer end after a delay. */
enum { ACT_SHUT_WR, ACT_CLOSE_LINGER0, ACT_CLOSE, ACT_PIECES, ACT_PIECES_EOF };
struct peer {
  int fd, act, delay_ms;
  pthread_t th;
};

static void *peer_fn(void *p) {
  struct peer *x = p;
  msleep(x->delay_ms);
  switch (x->act) {
    case ACT_SHUT_WR:
      CHECK(write(x->fd, "bye", 3) == 3);
      CHECK(shutdown(x->fd, SHUT_WR) == 0);
      break;
    case ACT_CLOSE_LINGER0: {
      struct linger lg = {1, 0};
      CHECK(setsockopt(x->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
      CHECK(close(x->fd) == 0);
      break;
    }
    case ACT_CLOSE:
      CHECK(close(x->fd) == 0);
      break;
    case ACT_PIECES:
    case ACT_PIECES_EOF: {
      const char *pieces[] = {"abc", "defg", "h", "ijklmnop"};
      for (int i = 0; i < 4; i++) {
        CHECK(write(x->fd, pieces[i], strlen(pieces[i])) == (ssize_t)strlen(pieces[i]));
        if (x->act == ACT_PIECES_EOF && i == 1) {
          CHECK(shutdown(x->fd, SHUT_WR) == 0);
          break;
        }
        msleep(40);
      }
      break;
    }
  }
  return NULL;
}

static void peer_start(struct peer *x, int fd, int act, int delay_ms) {
  x->fd = fd;
  x->act = act;
  x->delay_ms = delay_ms;
  CHECK(pthread_create(&x->th, NULL, peer_fn, x) == 0);
}

static void peer_join(struct peer *x) { CHECK(pthread_join(x->th, NULL) == 0); }

struct shutter {
  int fd, how;
  pthread_t th;
};
static void *shut_fn(void *p) {
  struct shutter *s = p;
  msleep(100);
  CHECK(shutdown(s->fd, s->how) == 0);
  return NULL;
}

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int sig) {
  (void)sig;
  sigpipes++;
}

int main(void) {
  int a, b;
  char buf[64];
  ssize_t r;
  struct peer p;

  /* EOF: data then shutdown(SHUT_WR) from the peer while we are blocked in read */
  tcp_pair(&a, &b);
  peer_start(&p, b, ACT_SHUT_WR, 100);
  r = read(a, buf, sizeof buf);
  printf("tcp read before shutdown: %s '%.*s'\n", RES(r), r > 0 ? (int)r : 0, buf);
  r = read(a, buf, sizeof buf);
  printf("tcp read after SHUT_WR: %s\n", RES(r));
  r = recv(a, buf, sizeof buf, 0);
  printf("tcp recv after SHUT_WR again: %s\n", RES(r));
  peer_join(&p);
  /* the other direction is still open */
  printf("tcp write after peer SHUT_WR: %s\n", RES(write(a, "still", 5)));
  r = read(b, buf, 5);
  printf("peer reads it: %s '%.*s'\n", RES(r), r > 0 ? (int)r : 0, buf);
  CHECK(close(a) == 0 && close(b) == 0);

  /* the same on a socketpair and a pipe */
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  peer_start(&p, sv[1], ACT_SHUT_WR, 100);
  r = read(sv[0], buf, sizeof buf);
  printf("unix read before shutdown: %s\n", RES(r));
  r = read(sv[0], buf, sizeof buf);
  printf("unix read after SHUT_WR: %s\n", RES(r));
  peer_join(&p);
  CHECK(close(sv[0]) == 0 && close(sv[1]) == 0);
  int pp[2];
  CHECK(pipe(pp) == 0);
  peer_start(&p, pp[1], ACT_CLOSE, 100);
  r = read(pp[0], buf, sizeof buf);
  printf("pipe read after writer close: %s\n", RES(r));
  peer_join(&p);
  CHECK(close(pp[0]) == 0);

  /* ECONNRESET: abortive close while we are blocked in read */
  tcp_pair(&a, &b);
  peer_start(&p, b, ACT_CLOSE_LINGER0, 100);
  r = read(a, buf, sizeof buf);
  printf("tcp read after linger-0 close: %s\n", RES(r));
  r = read(a, buf, sizeof buf);
  printf("tcp read after the reset: %s\n", RES(r));
  peer_join(&p);
  CHECK(close(a) == 0);

  /* ECONNRESET: the peer closes with data it never read */
  tcp_pair(&a, &b);
  CHECK(write(a, "unread", 6) == 6);
  msleep(20);
  peer_start(&p, b, ACT_CLOSE, 100);
  r = recv(a, buf, sizeof buf, 0);
  printf("tcp recv after close with unread data: %s\n", RES(r));
  peer_join(&p);
  CHECK(close(a) == 0);

  /* EPIPE, SIGPIPE ignored */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  CHECK(sigaction(SIGPIPE, &sa, NULL) == 0);
  tcp_pair(&a, &b);
  CHECK(close(b) == 0);
  msleep(20);
  r = write(a, "first", 5); /* the peer's socket is gone: it answers with a reset */
  fprintf(stderr, "first write to closed tcp peer: %s\n", RES(r));
  msleep(20);
  int e = 0;
  for (int i = 0; i < 10 && !e; i++)
    if (write(a, "again", 5) < 0) e = errno;
  printf("tcp write to closed peer: %s\n", errname(e));
  CHECK(close(a) == 0);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  CHECK(close(sv[1]) == 0);
  printf("unix write to closed peer: %s\n", RES(write(sv[0], "x", 1)));
  printf("unix send to closed peer: %s\n", RES(send(sv[0], "x", 1, 0)));
  CHECK(close(sv[0]) == 0);
  CHECK(pipe(pp) == 0);
  CHECK(close(pp[0]) == 0);
  printf("pipe write without reader: %s\n", RES(write(pp[1], "x", 1)));
  CHECK(close(pp[1]) == 0);

  /* EPIPE with SIGPIPE caught: the handler runs once per failing write */
  sa.sa_handler = on_sigpipe;
  CHECK(sigaction(SIGPIPE, &sa, NULL) == 0);
  CHECK(pipe(pp) == 0);
  CHECK(close(pp[0]) == 0);
  printf("pipe write without reader, caught: %s", RES(write(pp[1], "x", 1)));
  printf(" sigpipes %d\n", (int)sigpipes);
  CHECK(close(pp[1]) == 0);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  CHECK(close(sv[1]) == 0);
  printf("unix write to closed peer, caught: %s", RES(write(sv[0], "x", 1)));
  printf(" sigpipes %d\n", (int)sigpipes);
  printf("send MSG_NOSIGNAL: %s", RES(send(sv[0], "x", 1, MSG_NOSIGNAL)));
  printf(" sigpipes %d\n", (int)sigpipes);
  CHECK(close(sv[0]) == 0);

  /* MSG_PEEK: a blocking peek waits for data and leaves it there */
  tcp_pair(&a, &b);
  struct delayed_write d;
  delayed_write_start(&d, b, 100, "peekaboo", 8);
  r = recv(a, buf, 4, MSG_PEEK);
  printf("blocking peek: %s '%.*s'\n", RES(r), r > 0 ? (int)r : 0, buf);
  delayed_write_join(&d);
  r = recv(a, buf, 8, MSG_PEEK);
  printf("peek again: %s '%.*s'\n", RES(r), r > 0 ? (int)r : 0, buf);
  r = read_full(a, buf, 8);
  printf("then read: %s '%.*s'\n", RES(r), r > 0 ? (int)r : 0, buf);

  /* MSG_WAITALL: exactly N bytes although they come in four pieces 40 ms apart */
  peer_start(&p, b, ACT_PIECES, 20);
  memset(buf, 0, sizeof buf);
  double t0 = now_s();
  r = recv(a, buf, 16, MSG_WAITALL);
  printf("recv MSG_WAITALL 16: %s '%.16s'\n", RES(r), buf);
  in_range("MSG_WAITALL waited for all pieces", now_s() - t0, 0.14, 200);
  peer_join(&p);

  /* MSG_PEEK | MSG_WAITALL: waits for all of it, copies it in order, leaves it queued */
  peer_start(&p, b, ACT_PIECES, 20);
  memset(buf, 0, sizeof buf);
  r = recv(a, buf, 16, MSG_PEEK | MSG_WAITALL);
  printf("recv MSG_PEEK|MSG_WAITALL 16: %s '%.16s'\n", RES(r), buf);
  peer_join(&p);
  memset(buf, 0, sizeof buf);
  r = recv(a, buf, 16, MSG_WAITALL);
  printf("then recv MSG_WAITALL 16: %s '%.16s'\n", RES(r), buf);

  /* MSG_WAITALL cut short by EOF: what came */
  peer_start(&p, b, ACT_PIECES_EOF, 20);
  memset(buf, 0, sizeof buf);
  r = recv(a, buf, 16, MSG_WAITALL);
  printf("recv MSG_WAITALL until EOF: %s '%s'\n", RES(r), buf);
  peer_join(&p);
  CHECK(close(a) == 0 && close(b) == 0);

  /* shutdown(SHUT_RD) by another thread ends a blocked read with 0; shutdown of a listening socket
   * ends a blocked accept with EINVAL (the usual way to stop a server thread) */
  {
    tcp_pair(&a, &b);
    struct shutter sh = {.fd = a, .how = SHUT_RD};
    CHECK(pthread_create(&sh.th, NULL, shut_fn, &sh) == 0);
    double t1 = now_s();
    r = read(a, buf, sizeof buf);
    printf("blocked read, then shutdown(SHUT_RD) by a thread: %s\n", RES(r));
    in_range("read ended by shutdown", now_s() - t1, 0.1, 150);
    CHECK(pthread_join(sh.th, NULL) == 0);
    CHECK(close(a) == 0 && close(b) == 0);
    int port, l = tcp_listener(&port);
    sh = (struct shutter){.fd = l, .how = SHUT_RDWR};
    CHECK(pthread_create(&sh.th, NULL, shut_fn, &sh) == 0);
    t1 = now_s();
    printf("blocked accept, then shutdown(SHUT_RDWR) by a thread: %s\n", RES(accept(l, NULL, NULL)));
    in_range("accept ended by shutdown", now_s() - t1, 0.1, 150);
    CHECK(pthread_join(sh.th, NULL) == 0);
    CHECK(close(l) == 0);
  }

  /* MSG_WAITALL on a socketpair */
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  peer_start(&p, sv[1], ACT_PIECES, 20);
  memset(buf, 0, sizeof buf);
  r = recv(sv[0], buf, 16, MSG_WAITALL);
  printf("unix recv MSG_WAITALL 16: %s '%.16s'\n", RES(r), buf);
  peer_join(&p);
  CHECK(close(sv[0]) == 0 && close(sv[1]) == 0);
  return 0;
}
