/*
 * loadgen.c — closed-loop TCP echo load generator (single-threaded, epoll, non-blocking).
 *
 * usage: loadgen -p PORT [-c CONNECTIONS] [-s MSGSIZE] [-d SECONDS] [-w WARMUP_SECONDS]
 *                [-h HOST] [-t TIMEOUT_SECONDS] [-b CONNECT_BATCH]
 *
 * Opens CONNECTIONS connections to HOST:PORT (non-blocking connects, at most CONNECT_BATCH in flight),
 * then every connection runs request/response in a closed loop: send a MSGSIZE-byte message, wait
 * for the whole echo, check every byte, record the latency, send the next one. The first
 * WARMUP_SECONDS are not recorded; then SECONDS are measured, and the run stops.
 *
 * Message i of connection c is a pattern derived from (c, i): bytes 0-3 are c and bytes 4-11 are i
 * (little-endian, as far as the message reaches), the rest come from a hash of (c, i, offset), so an
 * echo carrying another connection's or another request's bytes, or shifted bytes, is caught.
 *
 * Latency percentiles come from a log-linear histogram (64 sub-buckets per power of two: < 1.6 %
 * error), not from stored samples.
 *
 * errors = failed connects + unexpected closes/resets + timeouts (no reply progress for
 * TIMEOUT_SECONDS, default 5; a timed-out connection is closed and not used again).
 * mismatches = echoed messages with at least one wrong byte.
 * stalled = connections still open at the end that never got one echo back (e.g. still waiting in
 * the server's accept queue); reported, not counted as errors unless they time out.
 * Prints a human summary and a "RESULT key=value ..." line; exit status 0 iff errors == 0 and
 * mismatches == 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NSEC 1000000000LL
#define MAX_EVENTS 1024
#define IO_CHUNK (256 * 1024)   /* largest single send/recv */
#define MAX_MSG (16 * 1024 * 1024)
#define MAX_CONNS 1000000
#define CONNECT_PHASE_MAX_S 60  /* the whole connect phase is bounded too */
#define SCAN_INTERVAL (100 * 1000000LL)

/* ---- options ------------------------------------------------------------------------------------ */

static struct {
  const char *host;
  int port;
  long conns;
  long msg;
  double secs, warmup, timeout;
  long batch;
} opt = {"127.0.0.1", 0, 100, 64, 10.0, 1.0, 5.0, 512};

/* ---- time --------------------------------------------------------------------------------------- */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

/* ---- message pattern ---------------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Bytes [off, off + len) of message `seq` of connection `id`. */
static void pattern(uint32_t id, uint64_t seq, size_t off, size_t len, uint8_t *out) {
  uint64_t seed = mix64(((uint64_t)id << 40) ^ seq ^ ((uint64_t)id >> 24));
  size_t i = off, end = off + len;
  uint8_t *o = out;
  while (i < end) {
    uint64_t w = mix64(seed + (i >> 3));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if ((i & 7) == 0 && end - i >= 8) { /* whole word: same bytes as the loop below */
      memcpy(o, &w, 8);
      o += 8;
      i += 8;
      continue;
    }
#endif
    size_t stop = (i | 7) + 1;
    if (stop > end)
      stop = end;
    for (; i < stop; i++)
      *o++ = (uint8_t)(w >> ((i & 7) * 8));
  }
  /* header: connection id, then sequence number */
  for (i = off; i < end && i < 12; i++)
    out[i - off] = i < 4 ? (uint8_t)(id >> (8 * i)) : (uint8_t)(seq >> (8 * (i - 4)));
}

/* ---- latency histogram -------------------------------------------------------------------------- */

#define SUB_BITS 6
#define SUB (1 << SUB_BITS)      /* 64 sub-buckets per octave */
#define LINEAR (2 * SUB)          /* values below 128 ns get a bucket each */
#define NBUCKETS (LINEAR + (64 - SUB_BITS - 1) * SUB)

static uint64_t hist[NBUCKETS];
static uint64_t hist_count, hist_max;
static double hist_sum;

static inline unsigned hist_index(uint64_t v) {
  if (v < LINEAR)
    return (unsigned)v;
  unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= SUB_BITS + 1 */
  unsigned m = (unsigned)(v >> (e - SUB_BITS));     /* in [SUB, 2 SUB) */
  return LINEAR + (e - SUB_BITS - 1) * SUB + (m - SUB);
}

/* A value representative of bucket idx (its midpoint). */
static uint64_t hist_value(unsigned idx) {
  if (idx < LINEAR)
    return idx;
  unsigned k = idx - LINEAR, e = k / SUB + SUB_BITS + 1;
  uint64_t m = k % SUB + SUB;
  uint64_t lo = m << (e - SUB_BITS), width = 1ULL << (e - SUB_BITS);
  return lo + width / 2;
}

static void hist_record(uint64_t ns) {
  hist[hist_index(ns)]++;
  hist_count++;
  hist_sum += (double)ns;
  if (ns > hist_max)
    hist_max = ns;
}

static double hist_percentile_us(double p) {
  if (hist_count == 0)
    return 0;
  double exact = p * (double)hist_count;
  uint64_t target = (uint64_t)exact;
  if ((double)target < exact)
    target++; /* ceil */
  if (target < 1)
    target = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < NBUCKETS; i++) {
    seen += hist[i];
    if (seen >= target) {
      uint64_t v = hist_value(i);
      return (double)(v < hist_max ? v : hist_max) / 1000.0;
    }
  }
  return (double)hist_max / 1000.0;
}

/* ---- connections -------------------------------------------------------------------------------- */

enum { C_UNUSED, C_CONNECTING, C_READY, C_DEAD };

struct conn {
  int fd;
  uint8_t state;
  uint8_t want_out;   /* EPOLLOUT registered */
  uint8_t bad;        /* current echo has a wrong byte */
  uint8_t in_request; /* a message is outstanding */
  uint32_t sent, rcvd;
  uint64_t seq;
  int64_t t_send, t_progress;
};

static struct conn *conns;
static int epfd;
static uint8_t *sendbuf, *recvbuf, *expbuf;
static struct sockaddr_in server;

static struct {
  long connected, connect_failures, closed, timeouts;
  uint64_t requests_total, requests_measured, mismatches, mismatch_bytes;
  int first_connect_errno, first_close_errno;
  int64_t connect_ns;
} st;

static int64_t t_measure, t_end;

static void conn_kill(struct conn *c) {
  if (c->fd >= 0)
    close(c->fd); /* also removes it from the epoll set */
  c->fd = -1;
  c->state = C_DEAD;
}

static void set_events(struct conn *c, uint32_t idx, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.u32 = idx};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
    perror("loadgen: epoll_ctl");
    exit(1);
  }
}

static void conn_error(struct conn *c, int err) {
  st.closed++;
  if (!st.first_close_errno)
    st.first_close_errno = err ? err : -1;
  conn_kill(c);
}

/* Push the rest of the current message. Returns 0, or -1 if the connection died. */
static int conn_send(struct conn *c, uint32_t idx) {
  while (c->sent < (uint32_t)opt.msg) {
    size_t len = (size_t)opt.msg - c->sent;
    if (len > IO_CHUNK)
      len = IO_CHUNK;
    pattern(idx, c->seq, c->sent, len, sendbuf);
    ssize_t n = send(c->fd, sendbuf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!c->want_out) {
          c->want_out = 1;
          set_events(c, idx, EPOLLIN | EPOLLOUT);
        }
        return 0;
      }
      conn_error(c, errno);
      return -1;
    }
    c->sent += (uint32_t)n;
  }
  if (c->want_out) {
    c->want_out = 0;
    set_events(c, idx, EPOLLIN);
  }
  return 0;
}

static int conn_start_request(struct conn *c, uint32_t idx, int64_t now) {
  c->sent = c->rcvd = 0;
  c->bad = 0;
  c->in_request = 1;
  c->t_send = c->t_progress = now;
  return conn_send(c, idx);
}

static void conn_readable(struct conn *c, uint32_t idx) {
  for (;;) {
    size_t want = (size_t)opt.msg - c->rcvd;
    if (!c->in_request || want == 0)
      want = 1; /* bytes nobody asked for: read them so they are counted as wrong */
    if (want > IO_CHUNK)
      want = IO_CHUNK;
    ssize_t n = recv(c->fd, recvbuf, want, MSG_DONTWAIT);
    if (n == 0) {
      conn_error(c, 0);
      return;
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      conn_error(c, errno);
      return;
    }
    int64_t now = now_ns();
    if (!c->in_request) {
      st.mismatches++;
      st.mismatch_bytes += (uint64_t)n;
      return;
    }
    c->t_progress = now;
    pattern(idx, c->seq, c->rcvd, (size_t)n, expbuf);
    if (memcmp(expbuf, recvbuf, (size_t)n) != 0) {
      for (ssize_t i = 0; i < n; i++)
        st.mismatch_bytes += expbuf[i] != recvbuf[i];
      c->bad = 1;
    }
    c->rcvd += (uint32_t)n;
    if (c->rcvd < (uint32_t)opt.msg) {
      if ((size_t)n < want)
        return; /* short read: drained for now */
      continue;
    }
    /* whole echo received */
    c->in_request = 0;
    st.requests_total++;
    if (c->bad)
      st.mismatches++;
    if (now >= t_measure && now < t_end) {
      st.requests_measured++;
      hist_record((uint64_t)(now - c->t_send));
    }
    c->seq++;
    if (now < t_end && c->sent == (uint32_t)opt.msg)
      conn_start_request(c, idx, now);
    return;
  }
}

/* ---- connect phase ------------------------------------------------------------------------------ */

static void connect_failed(struct conn *c, int err) {
  st.connect_failures++;
  if (!st.first_connect_errno)
    st.first_connect_errno = err;
  conn_kill(c);
}

static void connect_start(struct conn *c, uint32_t idx, int64_t now) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    connect_failed(c, errno);
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->t_progress = now;
  int rc;
  do
    rc = connect(c->fd, (struct sockaddr *)&server, sizeof server);
  while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno != EINPROGRESS) {
    connect_failed(c, errno);
    return;
  }
  struct epoll_event ev = {.events = rc == 0 ? EPOLLIN : EPOLLOUT, .data.u32 = idx};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
    connect_failed(c, errno);
    return;
  }
  if (rc == 0) {
    c->state = C_READY;
    st.connected++;
  } else {
    c->state = C_CONNECTING;
  }
}

static void connect_phase(void) {
  struct epoll_event events[MAX_EVENTS];
  int64_t t0 = now_ns(), timeout = (int64_t)(opt.timeout * NSEC);
  int64_t deadline = t0 + (int64_t)CONNECT_PHASE_MAX_S * NSEC, next_scan = t0 + SCAN_INTERVAL;
  long next = 0, inflight = 0;

  while (next < opt.conns || inflight > 0) {
    int64_t now = now_ns();
    if (now >= deadline)
      break;
    while (inflight < opt.batch && next < opt.conns) {
      struct conn *c = &conns[next];
      connect_start(c, (uint32_t)next, now);
      next++;
      if (c->state == C_CONNECTING)
        inflight++;
    }
    int n = epoll_wait(epfd, events, MAX_EVENTS, 20);
    if (n < 0 && errno != EINTR) {
      perror("loadgen: epoll_wait");
      exit(1);
    }
    for (int i = 0; i < n; i++) {
      uint32_t idx = events[i].data.u32;
      struct conn *c = &conns[idx];
      if (c->state != C_CONNECTING)
        continue; /* a ready connection with early data: nothing is expected yet, looked at later */
      inflight--;
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
      if (err) {
        connect_failed(c, err);
        continue;
      }
      c->state = C_READY;
      st.connected++;
      set_events(c, idx, EPOLLIN);
    }
    now = now_ns();
    if (now >= next_scan) {
      next_scan = now + SCAN_INTERVAL;
      for (long i = 0; i < next; i++)
        if (conns[i].state == C_CONNECTING && now - conns[i].t_progress > timeout) {
          connect_failed(&conns[i], ETIMEDOUT);
          inflight--;
        }
    }
  }
  /* whatever the bounded phase did not finish counts as failed */
  for (long i = 0; i < opt.conns; i++)
    if (conns[i].state == C_CONNECTING || conns[i].state == C_UNUSED)
      connect_failed(&conns[i], ETIMEDOUT);
  st.connect_ns = now_ns() - t0;
}

/* ---- run phase ---------------------------------------------------------------------------------- */

static void run_phase(void) {
  struct epoll_event events[MAX_EVENTS];
  int64_t t0 = now_ns(), timeout = (int64_t)(opt.timeout * NSEC);
  t_measure = t0 + (int64_t)(opt.warmup * NSEC);
  t_end = t_measure + (int64_t)(opt.secs * NSEC);
  int64_t next_scan = t0 + SCAN_INTERVAL;

  for (long i = 0; i < opt.conns; i++)
    if (conns[i].state == C_READY)
      conn_start_request(&conns[i], (uint32_t)i, now_ns());

  for (;;) {
    int64_t now = now_ns();
    if (now >= t_end)
      break;
    int64_t wait_ms = (t_end - now + 999999) / 1000000;
    if (wait_ms > 100)
      wait_ms = 100;
    int n = epoll_wait(epfd, events, MAX_EVENTS, (int)wait_ms);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      perror("loadgen: epoll_wait");
      exit(1);
    }
    for (int i = 0; i < n; i++) {
      uint32_t idx = events[i].data.u32;
      struct conn *c = &conns[idx];
      if (c->state != C_READY)
        continue;
      uint32_t ev = events[i].events;
      if (ev & EPOLLOUT) {
        if (conn_send(c, idx) < 0)
          continue;
      }
      if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_readable(c, idx);
    }
    now = now_ns();
    if (now >= next_scan) {
      next_scan = now + SCAN_INTERVAL;
      long live = 0;
      for (long i = 0; i < opt.conns; i++) {
        struct conn *c = &conns[i];
        if (c->state != C_READY)
          continue;
        if (c->in_request && now - c->t_progress > timeout) {
          st.timeouts++;
          conn_kill(c);
          continue;
        }
        live++;
      }
      if (live == 0)
        break; /* every connection is gone: nothing left to measure */
    }
  }
}

/* ---- main --------------------------------------------------------------------------------------- */

static void usage(const char *prog) {
  fprintf(stderr,
          "usage: %s -p PORT [-c CONNECTIONS] [-s MSGSIZE] [-d SECONDS] [-w WARMUP_SECONDS]\n"
          "          [-h HOST] [-t TIMEOUT_SECONDS] [-b CONNECT_BATCH]\n"
          "  closed-loop echo load: every connection sends MSGSIZE bytes, waits for the whole echo,\n"
          "  checks it and sends the next message\n"
          "  -p PORT     server port (required)\n"
          "  -c N        connections (default 100)\n"
          "  -s BYTES    message size, 1..%d (default 64)\n"
          "  -d SECONDS  measured duration (default 10)\n"
          "  -w SECONDS  warm-up before measuring, not recorded (default 1)\n"
          "  -h HOST     server address (default 127.0.0.1)\n"
          "  -t SECONDS  a connect or a reply silent this long is an error (default 5)\n"
          "  -b N        connects in flight at once (default 512)\n"
          "output: a summary and 'RESULT conns= msg= secs= requests= rps= p50_us= p99_us= p999_us=\n"
          "        errors= mismatches= connected= ...'; exit 0 iff errors=0 and mismatches=0\n",
          prog, MAX_MSG);
}

static int parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || errno || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static int parse_secs(const char *s, double lo, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (*s == '\0' || *end != '\0' || !(v >= lo) || v > 86400)
    return -1;
  *out = v;
  return 0;
}

static const char *errname(int err) {
  return err == -1 ? "closed by peer" : strerror(err);
}

int main(int argc, char **argv) {
  int ch;
  long port = 0;
  while ((ch = getopt(argc, argv, "p:c:s:d:w:h:t:b:")) != -1) {
    int bad = 0;
    switch (ch) {
    case 'p': bad = parse_long(optarg, 1, 65535, &port); break;
    case 'c': bad = parse_long(optarg, 1, MAX_CONNS, &opt.conns); break;
    case 's': bad = parse_long(optarg, 1, MAX_MSG, &opt.msg); break;
    case 'd': bad = parse_secs(optarg, 0.001, &opt.secs); break;
    case 'w': bad = parse_secs(optarg, 0, &opt.warmup); break;
    case 'h': opt.host = optarg; break;
    case 't': bad = parse_secs(optarg, 0.001, &opt.timeout); break;
    case 'b': bad = parse_long(optarg, 1, MAX_CONNS, &opt.batch); break;
    default: usage(argv[0]); return 2;
    }
    if (bad) {
      fprintf(stderr, "loadgen: bad value for -%c: '%s'\n", ch, optarg);
      return 2;
    }
  }
  if (optind != argc || port == 0) {
    usage(argv[0]);
    return 2;
  }
  opt.port = (int)port;

  memset(&server, 0, sizeof server);
  server.sin_family = AF_INET;
  server.sin_port = htons((uint16_t)opt.port);
  if (inet_pton(AF_INET, opt.host, &server.sin_addr) != 1) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    int err = getaddrinfo(opt.host, NULL, &hints, &res);
    if (err) {
      fprintf(stderr, "loadgen: %s: %s\n", opt.host, gai_strerror(err));
      return 2;
    }
    server.sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
  }
  signal(SIGPIPE, SIG_IGN);

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
      perror("loadgen: setrlimit(RLIMIT_NOFILE)");
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      (rlim_t)opt.conns + 16 > rl.rlim_cur)
    fprintf(stderr, "loadgen: warning: %ld connections but only %llu descriptors allowed\n", opt.conns,
            (unsigned long long)rl.rlim_cur);

  conns = calloc((size_t)opt.conns, sizeof *conns);
  size_t chunk = (size_t)opt.msg < IO_CHUNK ? (size_t)opt.msg : IO_CHUNK;
  sendbuf = malloc(chunk);
  recvbuf = malloc(chunk);
  expbuf = malloc(chunk);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (!conns || !sendbuf || !recvbuf || !expbuf || epfd < 0) {
    perror("loadgen: setup");
    return 1;
  }
  for (long i = 0; i < opt.conns; i++)
    conns[i].fd = -1;

  connect_phase();
  if (st.connected > 0)
    run_phase();

  for (long i = 0; i < opt.conns; i++)
    if (conns[i].fd >= 0)
      close(conns[i].fd);

  long errors = st.connect_failures + st.closed + st.timeouts;
  long stalled = 0; /* connected, still open, yet not one echo completed: the server never served it */
  for (long i = 0; i < opt.conns; i++)
    stalled += conns[i].state == C_READY && conns[i].seq == 0;
  double rps = opt.secs > 0 ? (double)st.requests_measured / opt.secs : 0;
  double p50 = hist_percentile_us(0.50), p90 = hist_percentile_us(0.90), p99 = hist_percentile_us(0.99),
         p999 = hist_percentile_us(0.999);
  double mean = hist_count ? hist_sum / (double)hist_count / 1000.0 : 0, max = (double)hist_max / 1000.0;

  printf("loadgen: %s:%d, %ld/%ld connections up in %.2f s, %ld B messages, %.2f s measured "
         "(+%.2f s warm-up): %llu requests, %.1f req/s; latency us: p50 %.1f p90 %.1f p99 %.1f "
         "p99.9 %.1f mean %.1f max %.1f; errors %ld (connect %ld, closed %ld, timeouts %ld), "
         "mismatches %llu (%llu bytes), %ld connections never answered\n",
         opt.host, opt.port, st.connected, opt.conns, (double)st.connect_ns / NSEC, opt.msg, opt.secs,
         opt.warmup, (unsigned long long)st.requests_measured, rps, p50, p90, p99, p999, mean, max,
         errors, st.connect_failures, st.closed, st.timeouts, (unsigned long long)st.mismatches,
         (unsigned long long)st.mismatch_bytes, stalled);
  if (st.connect_failures)
    fprintf(stderr, "loadgen: first connect failure: %s\n", errname(st.first_connect_errno));
  if (st.closed)
    fprintf(stderr, "loadgen: first unexpected close: %s\n", errname(st.first_close_errno));
  printf("RESULT conns=%ld msg=%ld secs=%.2f requests=%llu rps=%.1f p50_us=%.1f p99_us=%.1f "
         "p999_us=%.1f errors=%ld mismatches=%llu connected=%ld p90_us=%.1f mean_us=%.1f max_us=%.1f "
         "connect_failures=%ld closed=%ld timeouts=%ld stalled=%ld connect_secs=%.2f\n",
         opt.conns, opt.msg, opt.secs, (unsigned long long)st.requests_measured, rps, p50, p99, p999,
         errors, (unsigned long long)st.mismatches, st.connected, p90, mean, max, st.connect_failures,
         st.closed, st.timeouts, stalled, (double)st.connect_ns / NSEC);
  fflush(stdout);
  return errors == 0 && st.mismatches == 0 ? 0 : 1;
}
