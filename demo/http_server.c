/*
 * http_server.c — a thread-per-connection HTTP/1.1 static-file server, written the plain old way.
 *
 * usage: http_server PORT DIR
 *
 * Binds 127.0.0.1:PORT and serves the files under DIR. One detached pthread per connection does
 * blocking read()/write(): it reads a request head up to the blank line, answers it, and loops while
 * the connection is kept alive (the default for HTTP/1.1, "Connection: keep-alive" for HTTP/1.0;
 * "Connection: close" is honoured). GET and HEAD; files are copied with read() + write().
 *
 * One special path stands for a slow legacy handler: GET /sleep?ms=N (N <= 60000) sleeps N ms in
 * the connection's thread with a blocking usleep() and then answers "ok\n".
 *
 * Knows nothing of cohook. Prints "listening on PORT" once ready; SIGINT/SIGTERM end it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 8192      /* longest request head accepted */
#define IO_BUF 65536       /* response buffer: headers + (first part of) the file */
#define IDLE_TIMEOUT_S 60  /* a kept-alive connection idle this long is closed */
#define SLEEP_MAX_MS 60000

static const char *doc_root;
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

struct conn {
  int fd;
  char in[HEAD_MAX];
  size_t in_len; /* bytes in `in`: the current request head, then possibly the start of the next */
};

struct request {
  char method[16];
  char target[2048];
  int minor_version; /* HTTP/1.x */
  int keep_alive;
  long long content_length;
};

/* ---- I/O helpers ------------------------------------------------------------------------------- */

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

/* Read into c->in until it holds a complete head ("\r\n\r\n"). Returns the head length (including
 * the blank line), 0 on a clean EOF before any byte, -1 on error/EOF mid-request, -2 if too long. */
static long read_head(struct conn *c) {
  size_t scanned = 0;
  for (;;) {
    if (c->in_len >= 4) {
      size_t from = scanned >= 3 ? scanned - 3 : 0;
      for (size_t i = from; i + 4 <= c->in_len; i++)
        if (c->in[i] == '\r' && c->in[i + 1] == '\n' && c->in[i + 2] == '\r' && c->in[i + 3] == '\n')
          return (long)(i + 4);
      scanned = c->in_len;
    }
    if (c->in_len == sizeof c->in)
      return -2;
    ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (n == 0)
      return c->in_len == 0 ? 0 : -1;
    c->in_len += (size_t)n;
  }
}

/* Drop `len` consumed bytes from the front of the input buffer. */
static void consume(struct conn *c, size_t len) {
  memmove(c->in, c->in + len, c->in_len - len);
  c->in_len -= len;
}

/* Read and discard a request body of `len` bytes (GET/HEAD bodies carry no meaning here). */
static int discard_body(struct conn *c, long long len) {
  size_t have = c->in_len < (unsigned long long)len ? c->in_len : (size_t)len;
  consume(c, have);
  len -= (long long)have;
  char junk[4096];
  while (len > 0) {
    ssize_t n = read(c->fd, junk, len < (long long)sizeof junk ? (size_t)len : sizeof junk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    len -= n;
  }
  return 0;
}

/* ---- parsing ------------------------------------------------------------------------------------ */

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  char *e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
    *--e = '\0';
  return s;
}

/* Does a comma-separated header value contain `token` (case-insensitively)? */
static int has_token(const char *value, const char *token) {
  size_t tl = strlen(token);
  const char *p = value;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    const char *start = p;
    while (*p && *p != ',')
      p++;
    const char *end = p;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
      end--;
    if ((size_t)(end - start) == tl && strncasecmp(start, token, tl) == 0)
      return 1;
  }
  return 0;
}

/* Parse the head in place (it is NUL-terminated by the caller). Returns 0 or -1 (bad request). */
static int parse_request(char *head, struct request *r) {
  memset(r, 0, sizeof *r);
  char *line_end = strstr(head, "\r\n");
  if (!line_end)
    return -1;
  *line_end = '\0';

  /* request line: METHOD SP TARGET SP HTTP/1.x */
  char *sp1 = strchr(head, ' ');
  if (!sp1)
    return -1;
  char *sp2 = strchr(sp1 + 1, ' ');
  if (!sp2 || strchr(sp2 + 1, ' '))
    return -1;
  size_t ml = (size_t)(sp1 - head), tl = (size_t)(sp2 - sp1 - 1);
  if (ml == 0 || ml >= sizeof r->method || tl == 0 || tl >= sizeof r->target)
    return -1;
  memcpy(r->method, head, ml);
  memcpy(r->target, sp1 + 1, tl);
  const char *ver = sp2 + 1;
  if (strncmp(ver, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)ver[7]) || ver[8] != '\0')
    return -1;
  r->minor_version = ver[7] - '0';
  r->keep_alive = r->minor_version >= 1;

  /* header fields */
  char *line = line_end + 2;
  while (*line) {
    char *end = strstr(line, "\r\n");
    if (!end)
      return -1;
    *end = '\0';
    if (*line == '\0')
      break; /* blank line */
    char *colon = strchr(line, ':');
    if (!colon || colon == line)
      return -1;
    *colon = '\0';
    char *name = line, *value = trim(colon + 1);
    if (strcasecmp(name, "Connection") == 0) {
      if (has_token(value, "close"))
        r->keep_alive = 0;
      else if (has_token(value, "keep-alive"))
        r->keep_alive = 1;
    } else if (strcasecmp(name, "Content-Length") == 0) {
      char *e;
      errno = 0;
      long long v = strtoll(value, &e, 10);
      if (*value == '\0' || *e != '\0' || v < 0 || errno)
        return -1;
      r->content_length = v;
    } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
      return -1; /* chunked request bodies are not supported */
    }
    line = end + 2;
  }
  return 0;
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  ch = tolower(ch);
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  return -1;
}

/* Percent-decode the path part of `target` (query cut off) into out. Returns 0 or -1. */
static int decode_path(const char *target, char *out, size_t out_size) {
  size_t o = 0;
  for (const char *p = target; *p && *p != '?' && *p != '#'; p++) {
    int ch = (unsigned char)*p;
    if (ch == '%') {
      int hi = hexval((unsigned char)p[1]), lo = hi < 0 ? -1 : hexval((unsigned char)p[2]);
      if (hi < 0 || lo < 0)
        return -1;
      ch = hi * 16 + lo;
      p += 2;
    }
    if (ch == '\0' || o + 1 >= out_size)
      return -1;
    out[o++] = (char)ch;
  }
  out[o] = '\0';
  return 0;
}

static const char *content_type(const char *path) {
  static const struct {
    const char *ext, *type;
  } types[] = {
      {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
      {"txt", "text/plain; charset=utf-8"}, {"css", "text/css"},
      {"js", "application/javascript"},     {"json", "application/json"},
      {"xml", "application/xml"},           {"png", "image/png"},
      {"jpg", "image/jpeg"},                {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},                 {"svg", "image/svg+xml"},
      {"ico", "image/x-icon"},              {"pdf", "application/pdf"},
  };
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(slash ? slash : path, '.');
  if (dot)
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
      if (strcasecmp(dot + 1, types[i].ext) == 0)
        return types[i].type;
  return "application/octet-stream";
}

/* ---- responses ---------------------------------------------------------------------------------- */

static int send_simple(int fd, int status, const char *reason, const char *body, int keep_alive,
                       int head_only, const char *extra_header) {
  char buf[1024];
  size_t body_len = strlen(body);
  int n = snprintf(buf, sizeof buf,
                   "HTTP/1.1 %d %s\r\nServer: http_server\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: %zu\r\nConnection: %s\r\n%s\r\n%s",
                   status, reason, body_len, keep_alive ? "keep-alive" : "close",
                   extra_header ? extra_header : "", head_only ? "" : body);
  if (n < 0 || (size_t)n >= sizeof buf)
    return -1;
  return write_all(fd, buf, (size_t)n);
}

/* GET /sleep?ms=N: a legacy handler that blocks its thread. */
static int serve_sleep(int fd, const char *target, int keep_alive, int head_only) {
  const char *q = strchr(target, '?');
  long ms = -1;
  if (q && strncmp(q + 1, "ms=", 3) == 0) {
    char *e;
    ms = strtol(q + 4, &e, 10);
    if (e == q + 4 || (*e != '\0' && *e != '&'))
      ms = -1;
  }
  if (ms < 0 || ms > SLEEP_MAX_MS)
    return send_simple(fd, 400, "Bad Request", "bad ms (0..60000)\n", keep_alive, head_only, NULL);
  /* usleep takes at most 1 s worth of microseconds portably: sleep whole seconds first */
  if (ms >= 1000)
    sleep((unsigned)(ms / 1000));
  usleep((useconds_t)(ms % 1000) * 1000);
  return send_simple(fd, 200, "OK", "ok\n", keep_alive, head_only, NULL);
}

/* Serve a file below doc_root. Returns 0 to keep going, -1 if the connection must be closed. */
static int serve_file(int fd, const char *target, int keep_alive, int head_only) {
  char path[PATH_MAX], rel[2048];
  if (target[0] != '/' || decode_path(target, rel, sizeof rel) < 0 || strstr(rel, ".."))
    return send_simple(fd, 400, "Bad Request", "bad path\n", keep_alive, head_only, NULL);

  int n = snprintf(path, sizeof path, "%s%s", doc_root, rel);
  if (n < 0 || (size_t)n >= sizeof path)
    return send_simple(fd, 404, "Not Found", "not found\n", keep_alive, head_only, NULL);

  /* stat first: only regular files are opened (opening a FIFO would block the thread) */
  struct stat st;
  int file = -1, err = ENOENT;
  if (stat(path, &st) != 0) {
    if (errno == EACCES)
      err = EACCES;
    st.st_mode = 0;
  } else if (S_ISDIR(st.st_mode)) {
    const char *sep = path[strlen(path) - 1] == '/' ? "" : "/";
    size_t room = sizeof path - (size_t)n;
    if ((size_t)snprintf(path + n, room, "%sindex.html", sep) >= room || stat(path, &st) != 0)
      st.st_mode = 0;
  }
  if (S_ISREG(st.st_mode)) {
    file = open(path, O_RDONLY | O_CLOEXEC);
    if (file < 0)
      err = errno;
    else if (fstat(file, &st) != 0) {
      close(file);
      file = -1;
    }
  }
  if (file < 0) {
    if (err == EACCES)
      return send_simple(fd, 403, "Forbidden", "forbidden\n", keep_alive, head_only, NULL);
    return send_simple(fd, 404, "Not Found", "not found\n", keep_alive, head_only, NULL);
  }

  char *buf = malloc(IO_BUF);
  if (!buf) {
    close(file);
    return -1;
  }
  int hl = snprintf(buf, IO_BUF,
                    "HTTP/1.1 200 OK\r\nServer: http_server\r\nContent-Type: %s\r\n"
                    "Content-Length: %lld\r\nConnection: %s\r\n\r\n",
                    content_type(path), (long long)st.st_size, keep_alive ? "keep-alive" : "close");
  size_t used = (size_t)hl;
  long long left = head_only ? 0 : (long long)st.st_size;
  int rc = 0;
  /* Fill the buffer behind the headers and write; small files go out in one write(). */
  for (;;) {
    while (left > 0 && used < IO_BUF) {
      ssize_t r = read(file, buf + used, IO_BUF - used);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0) {
        rc = -1; /* file shrank or failed under us: the Content-Length is now a lie, close */
        left = 0;
        break;
      }
      used += (size_t)r;
      left -= r;
    }
    if (used > 0 && write_all(fd, buf, used) < 0) {
      rc = -1;
      break;
    }
    used = 0;
    if (left <= 0)
      break;
  }
  free(buf);
  close(file);
  return rc;
}

/* ---- connection thread -------------------------------------------------------------------------- */

static void *connection_thread(void *arg) {
  struct conn *c = arg;
  struct timeval tv = {IDLE_TIMEOUT_S, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  for (;;) {
    long head_len = read_head(c);
    if (head_len == 0 || head_len == -1)
      break;
    if (head_len == -2) {
      send_simple(c->fd, 431, "Request Header Fields Too Large", "request head too large\n", 0, 0, NULL);
      break;
    }
    char head[HEAD_MAX + 1];
    memcpy(head, c->in, (size_t)head_len);
    head[head_len] = '\0';
    consume(c, (size_t)head_len);

    struct request req;
    if (parse_request(head, &req) < 0) {
      send_simple(c->fd, 400, "Bad Request", "bad request\n", 0, 0, NULL);
      break;
    }
    if (req.content_length > 0 && discard_body(c, req.content_length) < 0)
      break;

    int head_only = strcmp(req.method, "HEAD") == 0;
    int rc;
    if (!head_only && strcmp(req.method, "GET") != 0)
      rc = send_simple(c->fd, 405, "Method Not Allowed", "only GET and HEAD\n", req.keep_alive, 0,
                       "Allow: GET, HEAD\r\n");
    else if (strncmp(req.target, "/sleep", 6) == 0 && (req.target[6] == '?' || req.target[6] == '\0'))
      rc = serve_sleep(c->fd, req.target, req.keep_alive, head_only);
    else
      rc = serve_file(c->fd, req.target, req.keep_alive, head_only);
    if (rc < 0 || !req.keep_alive)
      break;
  }
  close(c->fd);
  free(c);
  return NULL;
}

/* ---- main --------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr,
            "usage: %s PORT DIR\n"
            "  thread-per-connection HTTP/1.1 server on 127.0.0.1:PORT serving the files in DIR\n"
            "  GET/HEAD, keep-alive; GET /sleep?ms=N blocks the handler N ms and answers \"ok\"\n",
            argv[0]);
    return 2;
  }
  char *end;
  long port = strtol(argv[1], &end, 10);
  if (*argv[1] == '\0' || *end != '\0' || port < 1 || port > 65535) {
    fprintf(stderr, "http_server: bad port '%s'\n", argv[1]);
    return 2;
  }
  static char root[PATH_MAX];
  if (!realpath(argv[2], root)) {
    fprintf(stderr, "http_server: %s: %s\n", argv[2], strerror(errno));
    return 2;
  }
  if (strcmp(root, "/") == 0)
    root[0] = '\0'; /* targets start with '/' */
  doc_root = root;

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: accept() returns EINTR */
  sigaction(SIGTERM, &sa, NULL);

  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0) {
    perror("http_server: socket");
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
    perror("http_server: bind");
    return 1;
  }
  if (listen(lfd, 4096) < 0) {
    perror("http_server: listen");
    return 1;
  }

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t stop_set, old_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGINT);
  sigaddset(&stop_set, SIGTERM);

  printf("listening on %ld\n", port);
  fflush(stdout);

  unsigned long spawn_failures = 0;
  while (!stop_requested) {
    int cfd = accept(lfd, NULL, NULL);
    if (cfd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      perror("http_server: accept");
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        continue;
      }
      break;
    }
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = malloc(sizeof *c);
    if (!c) {
      close(cfd);
      continue;
    }
    c->fd = cfd;
    c->in_len = 0;
    pthread_t tid;
    pthread_sigmask(SIG_BLOCK, &stop_set, &old_set);
    int err = pthread_create(&tid, &attr, connection_thread, c);
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    if (err != 0) {
      if (spawn_failures++ < 10)
        fprintf(stderr, "http_server: pthread_create: %s (connection dropped)\n", strerror(err));
      close(cfd);
      free(c);
    }
  }
  close(lfd);
  return 0;
}
