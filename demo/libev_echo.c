/*
 * libev_echo.c — the event-loop reference: a hand-written, single-threaded libev TCP echo server.
 *
 * usage: libev_echo PORT
 *
 * Binds 127.0.0.1:PORT. Non-blocking sockets, one ev_io per connection. This is the yardstick that
 * cohook's thread-per-connection programs are compared against, so it is written the way a careful
 * engineer would write it:
 *   - accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) in a loop until EAGAIN on every readiness;
 *   - reads go into one shared scratch buffer (the loop is single-threaded) and are written straight
 *     back; only if a write is partial is the unsent rest copied into the connection's own buffer,
 *     and the connection then waits for EV_WRITE *instead of* EV_READ (back-pressure: we never read
 *     more from a client that is not draining its echo);
 *   - a read that fills the scratch buffer is followed by another one before returning to the loop,
 *     a short read means the socket is drained, so no extra read just to see EAGAIN;
 *   - out of descriptors (EMFILE/ENFILE): accepting pauses for 100 ms rather than spinning.
 * Prints "listening on PORT" once ready; SIGINT/SIGTERM end it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef ev_io_modify /* libev < 4.25 */
#define ev_io_modify(ev, events_) ev_io_set((ev), (ev)->fd, (events_))
#endif

#define SCRATCH_SIZE 65536
#define READS_PER_WAKEUP 16 /* fairness: at most this many full-buffer reads per readiness */

struct conn {
  ev_io io;     /* first member: the watcher pointer is the connection pointer */
  char *pending; /* unsent rest of an echo, or NULL */
  size_t pending_len, pending_off;
};

static char scratch[SCRATCH_SIZE];
static ev_io accept_watcher;
static ev_timer accept_pause;
static unsigned long live_conns, total_conns;

static void conn_close(struct ev_loop *loop, struct conn *c) {
  ev_io_stop(loop, &c->io);
  close(c->io.fd);
  free(c->pending);
  free(c);
  live_conns--;
}

/* Switch the watcher between waiting to read and waiting to write. */
static void conn_wait_for(struct ev_loop *loop, struct conn *c, int events) {
  ev_io_stop(loop, &c->io);
  ev_io_modify(&c->io, events);
  ev_io_start(loop, &c->io);
}

/* Send buf; keep what the socket would not take. Returns 0 if all went, 1 if some is pending, -1 on
 * error. */
static int conn_send(struct conn *c, const char *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(c->io.fd, buf + off, len - off, MSG_NOSIGNAL);
    if (n >= 0) {
      off += (size_t)n;
      continue;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return -1;
    size_t rest = len - off;
    c->pending = malloc(rest);
    if (!c->pending)
      return -1;
    memcpy(c->pending, buf + off, rest);
    c->pending_len = rest;
    c->pending_off = 0;
    return 1;
  }
  return 0;
}

static void on_readable(struct ev_loop *loop, struct conn *c) {
  for (int i = 0; i < READS_PER_WAKEUP; i++) {
    ssize_t n = recv(c->io.fd, scratch, sizeof scratch, 0);
    if (n == 0) {
      conn_close(loop, c);
      return;
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      conn_close(loop, c);
      return;
    }
    int rc = conn_send(c, scratch, (size_t)n);
    if (rc < 0) {
      conn_close(loop, c);
      return;
    }
    if (rc > 0) {
      conn_wait_for(loop, c, EV_WRITE);
      return;
    }
    if ((size_t)n < sizeof scratch)
      return; /* short read: drained */
  }
}

static void on_writable(struct ev_loop *loop, struct conn *c) {
  while (c->pending_off < c->pending_len) {
    ssize_t n = send(c->io.fd, c->pending + c->pending_off, c->pending_len - c->pending_off, MSG_NOSIGNAL);
    if (n >= 0) {
      c->pending_off += (size_t)n;
      continue;
    }
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return; /* still full: wait for the next EV_WRITE */
    conn_close(loop, c);
    return;
  }
  free(c->pending);
  c->pending = NULL;
  c->pending_len = c->pending_off = 0;
  conn_wait_for(loop, c, EV_READ);
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents) {
  struct conn *c = (struct conn *)w;
  if (revents & EV_WRITE)
    on_writable(loop, c);
  else if (revents & EV_READ)
    on_readable(loop, c);
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)w;
  (void)revents;
  ev_io_start(loop, &accept_watcher);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  static const int one = 1;
  for (;;) {
    int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        perror("libev_echo: accept4 (pausing accepts for 100 ms)");
        ev_io_stop(loop, &accept_watcher);
        ev_timer_set(&accept_pause, 0.1, 0.);
        ev_timer_start(loop, &accept_pause);
        return;
      }
      perror("libev_echo: accept4");
      return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = malloc(sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->pending = NULL;
    c->pending_len = c->pending_off = 0;
    ev_io_init(&c->io, conn_cb, fd, EV_READ);
    ev_io_start(loop, &c->io);
    live_conns++;
    total_conns++;
  }
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)w;
  (void)revents;
  ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PORT\n  single-threaded libev TCP echo server on 127.0.0.1:PORT\n", argv[0]);
    return 2;
  }
  char *end;
  long port = strtol(argv[1], &end, 10);
  if (*argv[1] == '\0' || *end != '\0' || port < 1 || port > 65535) {
    fprintf(stderr, "libev_echo: bad port '%s'\n", argv[1]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd < 0) {
    perror("libev_echo: socket");
    return 1;
  }
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    perror("libev_echo: bind");
    return 1;
  }
  if (listen(lfd, 4096) < 0) {
    perror("libev_echo: listen");
    return 1;
  }

  struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
  if (!loop) {
    fprintf(stderr, "libev_echo: cannot initialise libev\n");
    return 1;
  }
  ev_io_init(&accept_watcher, accept_cb, lfd, EV_READ);
  ev_io_start(loop, &accept_watcher);
  ev_timer_init(&accept_pause, accept_resume_cb, 0.1, 0.);
  ev_signal sigint_watcher, sigterm_watcher;
  ev_signal_init(&sigint_watcher, stop_cb, SIGINT);
  ev_signal_start(loop, &sigint_watcher);
  ev_signal_init(&sigterm_watcher, stop_cb, SIGTERM);
  ev_signal_start(loop, &sigterm_watcher);

  printf("listening on %ld\n", port);
  fflush(stdout);
  ev_run(loop, 0);

  fprintf(stderr, "libev_echo: stopping after %lu connections (%lu open)\n", total_conns, live_conns);
  close(lfd);
  return 0;
}
