/*
 * echo_server.c — a thread-per-connection TCP echo server, written the plain old way.
 *
 * usage: echo_server PORT
 *
 * Binds 127.0.0.1:PORT, accepts in main() and hands every client to its own detached pthread, which
 * does blocking read()/write() until the client closes. Knows nothing of cohook: run it as is, or
 * under LD_PRELOAD=libhook.so. Prints "listening on PORT" once ready; SIGINT/SIGTERM end it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE 16384

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

/* Write all of buf, retrying short writes and EINTR. Returns 0, or -1 with errno set. */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

static void *client_thread(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[BUF_SIZE];

  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0)
      break; /* client closed */
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno != ECONNRESET)
        perror("echo_server: read");
      break;
    }
    if (write_all(fd, buf, (size_t)n) < 0) {
      if (errno != EPIPE && errno != ECONNRESET)
        perror("echo_server: write");
      break;
    }
  }
  close(fd);
  return NULL;
}

static int parse_port(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < 1 || v > 65535)
    return -1;
  return (int)v;
}

static void pause_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PORT\n  thread-per-connection TCP echo server on 127.0.0.1:PORT\n", argv[0]);
    return 2;
  }
  int port = parse_port(argv[1]);
  if (port < 0) {
    fprintf(stderr, "echo_server: bad port '%s'\n", argv[1]);
    return 2;
  }

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: accept() must come back with EINTR */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0) {
    perror("echo_server: socket");
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
    perror("echo_server: bind");
    return 1;
  }
  if (listen(lfd, 4096) < 0) {
    perror("echo_server: listen");
    return 1;
  }

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);

  /* Connection threads inherit the signal mask at creation: block the stop signals while creating
   * them so that SIGINT/SIGTERM always reach main() and interrupt accept(). */
  sigset_t stop_set, old_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGINT);
  sigaddset(&stop_set, SIGTERM);

  printf("listening on %d\n", port);
  fflush(stdout);

  unsigned long accepted = 0, spawn_failures = 0;
  while (!stop_requested) {
    int cfd = accept(lfd, NULL, NULL);
    if (cfd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        perror("echo_server: accept");
        pause_ms(10); /* out of descriptors: let some clients finish */
        continue;
      }
      perror("echo_server: accept");
      break;
    }
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    pthread_t tid;
    pthread_sigmask(SIG_BLOCK, &stop_set, &old_set);
    int err = pthread_create(&tid, &attr, client_thread, (void *)(intptr_t)cfd);
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    if (err != 0) {
      if (spawn_failures++ < 10)
        fprintf(stderr, "echo_server: pthread_create: %s (connection dropped)\n", strerror(err));
      close(cfd);
      continue;
    }
    accepted++;
  }

  fprintf(stderr, "echo_server: stopping after %lu connections (%lu thread failures)\n", accepted,
          spawn_failures);
  close(lfd);
  return 0;
}
