/*
 * crawler.c — the C version of the classic "crawl a list of pages" example, written the plain old way.
 *
 * usage: crawler MODE N HOST PORT PATH
 *   MODE  sequential  fetch the N pages one after another
 *         threaded    start one pthread per page, then join them all
 *   N     number of pages to fetch (1..100000)
 *   HOST  server address (IPv4 literal or name), PORT its TCP port
 *   PATH  request target; every "{i}" in it is replaced by the page number 0..N-1,
 *         e.g. "/sleep?ms=100" or "/page{i}.html"
 *
 * Every fetch is a plain blocking HTTP/1.0 exchange: socket(), connect(), write() the request with
 * "Connection: close", read() the response until EOF. A page counts as fetched if the status is 200.
 * Prints the mode, N, total bytes received, failures, wall time and pages per second; the exit status
 * is 0 when nothing failed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_S 30 /* a page whose server stays silent this long fails */

static struct sockaddr_in server_addr;
static const char *host_name;
static const char *path_template;
static int verbose;

struct page {
  int index;
  pthread_t tid;
  long long bytes; /* everything received, headers included */
  int status;      /* HTTP status, or 0 */
  int failed;
  char error[128];
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

/* The request target for page i: the template with every "{i}" replaced. */
static void make_target(char *out, size_t size, int index) {
  size_t o = 0;
  for (const char *p = path_template; *p && o + 1 < size;) {
    if (strncmp(p, "{i}", 3) == 0) {
      int n = snprintf(out + o, size - o, "%d", index);
      if (n < 0 || (size_t)n >= size - o)
        break;
      o += (size_t)n;
      p += 3;
    } else {
      out[o++] = *p++;
    }
  }
  out[o] = '\0';
}

static void fail(struct page *pg, const char *what) {
  pg->failed = 1;
  snprintf(pg->error, sizeof pg->error, "%s: %s", what, strerror(errno));
}

/* Fetch one page with blocking calls. */
static void fetch(struct page *pg) {
  char target[1024], req[1400];
  make_target(target, sizeof target, pg->index);
  int len = snprintf(req, sizeof req,
                     "GET %s HTTP/1.0\r\nHost: %s:%u\r\nUser-Agent: crawler\r\nConnection: close\r\n\r\n",
                     target, host_name, (unsigned)ntohs(server_addr.sin_port));
  if (len < 0 || (size_t)len >= sizeof req) {
    pg->failed = 1;
    snprintf(pg->error, sizeof pg->error, "request too long");
    return;
  }

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    fail(pg, "socket");
    return;
  }
  struct timeval tv = {IO_TIMEOUT_S, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  int rc;
  do
    rc = connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    fail(pg, "connect");
    close(fd);
    return;
  }
  if (write_all(fd, req, (size_t)len) < 0) {
    fail(pg, "write");
    close(fd);
    return;
  }

  char buf[16384], first[32];
  size_t first_len = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      fail(pg, errno == EAGAIN || errno == EWOULDBLOCK ? "read (timeout)" : "read");
      close(fd);
      return;
    }
    if (n == 0)
      break;
    if (first_len < sizeof first - 1) {
      size_t take = (size_t)n < sizeof first - 1 - first_len ? (size_t)n : sizeof first - 1 - first_len;
      memcpy(first + first_len, buf, take);
      first_len += take;
    }
    pg->bytes += n;
  }
  close(fd);

  first[first_len] = '\0';
  int minor;
  if (sscanf(first, "HTTP/1.%d %d", &minor, &pg->status) != 2) {
    pg->failed = 1;
    snprintf(pg->error, sizeof pg->error, "no HTTP status line in response");
  } else if (pg->status != 200) {
    pg->failed = 1;
    snprintf(pg->error, sizeof pg->error, "HTTP status %d", pg->status);
  }
}

static void *fetch_thread(void *arg) {
  fetch(arg);
  return NULL;
}

static void usage(const char *prog) {
  fprintf(stderr,
          "usage: %s [-v] MODE N HOST PORT PATH\n"
          "  MODE  sequential | threaded (one pthread per page, all joined)\n"
          "  N     number of pages to fetch (1..100000)\n"
          "  HOST  server address, PORT its TCP port\n"
          "  PATH  request target; \"{i}\" is replaced by the page number 0..N-1\n"
          "  -v    print one line per page\n"
          "example: %s threaded 50 127.0.0.1 8080 '/sleep?ms=100'\n",
          prog, prog);
}

int main(int argc, char **argv) {
  int a = 1;
  if (a < argc && strcmp(argv[a], "-v") == 0) {
    verbose = 1;
    a++;
  }
  if (argc - a != 5) {
    usage(argv[0]);
    return 2;
  }
  const char *mode = argv[a];
  int threaded;
  if (strcmp(mode, "sequential") == 0)
    threaded = 0;
  else if (strcmp(mode, "threaded") == 0)
    threaded = 1;
  else {
    usage(argv[0]);
    return 2;
  }
  char *end;
  long n = strtol(argv[a + 1], &end, 10);
  if (*end != '\0' || n < 1 || n > 100000) {
    fprintf(stderr, "crawler: bad N '%s'\n", argv[a + 1]);
    return 2;
  }
  long port = strtol(argv[a + 3], &end, 10);
  if (*end != '\0' || port < 1 || port > 65535) {
    fprintf(stderr, "crawler: bad port '%s'\n", argv[a + 3]);
    return 2;
  }
  host_name = argv[a + 2];
  path_template = argv[a + 4];
  if (path_template[0] != '/') {
    fprintf(stderr, "crawler: PATH must start with '/'\n");
    return 2;
  }

  memset(&server_addr, 0, sizeof server_addr);
  server_addr.sin_family = AF_INET;
  server_addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host_name, &server_addr.sin_addr) != 1) {
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int err = getaddrinfo(host_name, NULL, &hints, &res);
    if (err != 0) {
      fprintf(stderr, "crawler: %s: %s\n", host_name, gai_strerror(err));
      return 2;
    }
    server_addr.sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
  }
  signal(SIGPIPE, SIG_IGN);

  struct page *pages = calloc((size_t)n, sizeof *pages);
  if (!pages) {
    perror("crawler: calloc");
    return 1;
  }
  for (long i = 0; i < n; i++)
    pages[i].index = (int)i;

  double t0 = now_s();
  if (!threaded) {
    for (long i = 0; i < n; i++)
      fetch(&pages[i]);
  } else {
    long started = 0;
    for (; started < n; started++) {
      int err = pthread_create(&pages[started].tid, NULL, fetch_thread, &pages[started]);
      if (err != 0) {
        fprintf(stderr, "crawler: pthread_create: %s (fetching the rest here)\n", strerror(err));
        break;
      }
    }
    for (long i = started; i < n; i++) /* could not start a thread: fetch in the main thread */
      fetch(&pages[i]);
    for (long i = 0; i < started; i++)
      pthread_join(pages[i].tid, NULL);
  }
  double secs = now_s() - t0;

  long long bytes = 0;
  long failures = 0;
  for (long i = 0; i < n; i++) {
    bytes += pages[i].bytes;
    if (pages[i].failed) {
      failures++;
      if (verbose || failures <= 5)
        fprintf(stderr, "crawler: page %ld failed: %s\n", i, pages[i].error);
    } else if (verbose) {
      char target[1024];
      make_target(target, sizeof target, (int)i);
      printf("page %ld %s: %d, %lld bytes\n", i, target, pages[i].status, pages[i].bytes);
    }
  }
  printf("mode=%s n=%ld bytes=%lld failures=%ld secs=%.3f rps=%.1f\n", mode, n, bytes, failures, secs,
         secs > 0 ? (double)n / secs : 0.0);
  free(pages);
  return failures == 0 ? 0 : 1;
}
