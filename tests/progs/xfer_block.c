/* xfer_block — zero-copy and batched transfers that block, between threads of one program:
 *   - sendfile() of a 4 MiB file into a blocking socket (a socketpair, then TCP loopback) while
 *     another thread reads it slowly: a blocking sendfile to a socket returns when all of it is sent;
 *   - sendfile() into a pipe whose reader is slow (natively it returns what fit);
 *   - splice() from a pipe into a socket and from a socket into a pipe, a producer thread feeding the
 *     pipe in bursts;
 *   - recvmmsg() on a UDP loopback socket, started before anything is sent (it blocks), with and
 *     without MSG_WAITFORONE; sendmmsg() of 200 datagrams into an AF_UNIX datagram socket whose
 *     receiver drains it slowly (the sender blocks when the queue is full).
 * stdout: byte counts, checksums, datagram counts. */
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>

#include "progs_util.h"

enum { FILE_BYTES = 4 << 20 };

static uint64_t sum_pattern(uint64_t from, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; i++) s = s * 31 + pattern(from + i);
  return s;
}

static int make_file(void) {
  char path[] = "/tmp/progs-xfer-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  CHECK(unlink(path) == 0);
  static unsigned char buf[65536];
  for (uint64_t off = 0; off < FILE_BYTES; off += sizeof buf) {
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = pattern(off + i);
    write_all(fd, buf, sizeof buf);
  }
  return fd;
}

/* A slow reader: reads everything from fd in 16 KiB pieces with a 1 ms pause every 256 KiB. */
struct slow {
  int fd;
  size_t want;
  size_t got;
  uint64_t sum;
  pthread_t th;
};
static void *slow_reader(void *p) {
  struct slow *s = p;
  static __thread unsigned char buf[16384];
  size_t since = 0;
  while (s->got < s->want) {
    ssize_t r = read(s->fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    CHECK(r >= 0);
    if (r == 0) break;
    for (ssize_t i = 0; i < r; i++) s->sum = s->sum * 31 + buf[i];
    s->got += (size_t)r;
    since += (size_t)r;
    if (since >= 262144) {
      since = 0;
      msleep(1);
    }
  }
  return NULL;
}

static void sendfile_to_socket(const char *what, int file, int a, int b) {
  struct slow s = {.fd = b, .want = FILE_BYTES};
  CHECK(pthread_create(&s.th, NULL, slow_reader, &s) == 0);
  off_t off = 0;
  ssize_t r = sendfile(a, file, &off, FILE_BYTES);
  CHECK(pthread_join(s.th, NULL) == 0);
  printf("sendfile %s: returned %zd, offset %lld, reader got %zu, checksum %s\n", what, r, (long long)off,
         s.got, s.sum == sum_pattern(0, FILE_BYTES) ? "right" : "WRONG");
  /* without an offset: the file position moves */
  CHECK(lseek(file, FILE_BYTES - 100000, SEEK_SET) >= 0);
  s = (struct slow){.fd = b, .want = 100000};
  CHECK(pthread_create(&s.th, NULL, slow_reader, &s) == 0);
  r = sendfile(a, file, NULL, 1 << 20); /* more than is left: stops at the end of the file */
  CHECK(pthread_join(s.th, NULL) == 0);
  printf("sendfile %s, file position: returned %zd, position now %lld, checksum %s\n", what, r,
         (long long)lseek(file, 0, SEEK_CUR), s.sum == sum_pattern(FILE_BYTES - 100000, 100000) ? "right" : "WRONG");
}

/* sendfile into a pipe: natively returns what fit (the reader is slow to start). */
static void sendfile_to_pipe(int file) {
  int p[2];
  CHECK(pipe(p) == 0);
  struct slow s = {.fd = p[0], .want = 1 << 20};
  CHECK(pthread_create(&s.th, NULL, slow_reader, &s) == 0);
  off_t off = 0;
  size_t total = 0;
  int calls = 0;
  while (total < (1u << 20)) {
    ssize_t r = sendfile(p[1], file, &off, (1u << 20) - total);
    CHECK(r > 0);
    total += (size_t)r;
    calls++;
  }
  CHECK(pthread_join(s.th, NULL) == 0);
  printf("sendfile into a pipe: %zu bytes, offset %lld, checksum %s\n", total, (long long)off,
         s.sum == sum_pattern(0, 1 << 20) ? "right" : "WRONG");
  close(p[0]);
  close(p[1]);
}

/* ---- splice ---------------------------------------------------------------------------------------- */

struct producer {
  int fd;
  size_t n;
  pthread_t th;
};
/* Writes n pattern bytes into fd in 8 KiB bursts, pausing 2 ms every 64 KiB; then closes it. */
static void *producer_fn(void *p) {
  struct producer *pr = p;
  unsigned char buf[8192];
  for (size_t off = 0; off < pr->n; off += sizeof buf) {
    size_t k = pr->n - off < sizeof buf ? pr->n - off : sizeof buf;
    for (size_t i = 0; i < k; i++) buf[i] = pattern(off + i);
    write_all(pr->fd, buf, k);
    if ((off + k) % 65536 == 0) msleep(2);
  }
  CHECK(close(pr->fd) == 0);
  return NULL;
}

static void splice_cases(void) {
  enum { N = 1 << 20 };
  /* pipe -> socket: the splicing thread waits for the producer's data */
  int p[2], a, b;
  CHECK(pipe(p) == 0);
  tcp_pair(&a, &b);
  struct producer pr = {.fd = p[1], .n = N};
  struct slow s = {.fd = b, .want = N};
  CHECK(pthread_create(&pr.th, NULL, producer_fn, &pr) == 0);
  CHECK(pthread_create(&s.th, NULL, slow_reader, &s) == 0);
  size_t total = 0;
  for (;;) {
    ssize_t r = splice(p[0], NULL, a, NULL, 65536, 0);
    CHECK(r >= 0);
    if (r == 0) break;
    total += (size_t)r;
  }
  CHECK(pthread_join(pr.th, NULL) == 0);
  CHECK(shutdown(a, SHUT_WR) == 0);
  CHECK(pthread_join(s.th, NULL) == 0);
  printf("splice pipe->socket: %zu bytes moved, reader got %zu, checksum %s\n", total, s.got,
         s.sum == sum_pattern(0, N) ? "right" : "WRONG");
  close(p[0]);
  close(a);
  close(b);

  /* socket -> pipe: the splicing thread waits for the socket's data, and for room in the pipe */
  CHECK(pipe(p) == 0);
  tcp_pair(&a, &b);
  pr = (struct producer){.fd = a, .n = N};
  s = (struct slow){.fd = p[0], .want = N};
  CHECK(pthread_create(&pr.th, NULL, producer_fn, &pr) == 0);
  CHECK(pthread_create(&s.th, NULL, slow_reader, &s) == 0);
  total = 0;
  for (;;) {
    ssize_t r = splice(b, NULL, p[1], NULL, 65536, SPLICE_F_MOVE);
    CHECK(r >= 0);
    if (r == 0) break;
    total += (size_t)r;
  }
  CHECK(pthread_join(pr.th, NULL) == 0);
  CHECK(close(p[1]) == 0);
  CHECK(pthread_join(s.th, NULL) == 0);
  printf("splice socket->pipe: %zu bytes moved, reader got %zu, checksum %s\n", total, s.got,
         s.sum == sum_pattern(0, N) ? "right" : "WRONG");
  /* SPLICE_F_NONBLOCK on an empty pipe whose writer is gone: 0; on one with a writer: EAGAIN */
  int q[2];
  CHECK(pipe(q) == 0);
  printf("splice SPLICE_F_NONBLOCK from an empty pipe: %s\n",
         RES(splice(q[0], NULL, b, NULL, 100, SPLICE_F_NONBLOCK)));
  close(q[0]);
  close(q[1]);
  close(p[0]);
  close(b);
}

/* ---- recvmmsg / sendmmsg --------------------------------------------------------------------------- */

struct udp {
  int fd;
  struct sockaddr_in to;
  int batches, per_batch, pause_ms;
  pthread_t th;
};

static void *udp_sender(void *p) {
  struct udp *u = p;
  msleep(50); /* the receiver is blocked by now */
  for (int b = 0; b < u->batches; b++) {
    struct mmsghdr mm[8];
    struct iovec iov[8];
    char bufs[8][32];
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < u->per_batch; i++) {
      snprintf(bufs[i], sizeof bufs[i], "datagram %d", b * u->per_batch + i);
      iov[i] = (struct iovec){bufs[i], strlen(bufs[i])};
      mm[i].msg_hdr.msg_iov = &iov[i];
      mm[i].msg_hdr.msg_iovlen = 1;
      mm[i].msg_hdr.msg_name = &u->to;
      mm[i].msg_hdr.msg_namelen = sizeof u->to;
    }
    CHECK(sendmmsg(u->fd, mm, (unsigned)u->per_batch, 0) == u->per_batch);
    msleep(u->pause_ms);
  }
  return NULL;
}

static int udp_socket(struct sockaddr_in *a) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  CHECK(s >= 0);
  *a = loopback(0);
  CHECK(bind(s, (struct sockaddr *)a, sizeof *a) == 0);
  socklen_t l = sizeof *a;
  CHECK(getsockname(s, (struct sockaddr *)a, &l) == 0);
  return s;
}

static void recvmmsg_case(int flags, int batches, int per_batch, int vlen) {
  struct sockaddr_in ra, sa;
  int r = udp_socket(&ra), snd = udp_socket(&sa);
  struct udp u = {.fd = snd, .to = ra, .batches = batches, .per_batch = per_batch, .pause_ms = 30};
  CHECK(pthread_create(&u.th, NULL, udp_sender, &u) == 0);
  struct mmsghdr mm[8];
  struct iovec iov[8];
  char bufs[8][64];
  memset(mm, 0, sizeof mm);
  for (int i = 0; i < vlen; i++) {
    iov[i] = (struct iovec){bufs[i], sizeof bufs[i] - 1};
    mm[i].msg_hdr.msg_iov = &iov[i];
    mm[i].msg_hdr.msg_iovlen = 1;
  }
  int n = recvmmsg(r, mm, (unsigned)vlen, flags, NULL);
  printf("recvmmsg%s vlen %d, sent in %d batches of %d: ", flags ? " MSG_WAITFORONE" : "", vlen, batches,
         per_batch);
  /* MSG_WAITFORONE: whatever of the first batch had arrived when it woke */
  if (flags) printf("1 to %d datagrams: %s:", per_batch, n >= 1 && n <= per_batch ? "yes" : "no");
  else printf("%d datagrams:", n);
  if (flags && n > 1) n = 1;
  for (int i = 0; i < n; i++) {
    bufs[i][mm[i].msg_len] = 0;
    printf(" [%s]", bufs[i]);
  }
  printf("\n");
  CHECK(pthread_join(u.th, NULL) == 0);
  close(r);
  close(snd);
}

struct dgram_drain {
  int fd, want, got, in_order;
  pthread_t th;
};
static void *dgram_drainer(void *p) {
  struct dgram_drain *d = p;
  msleep(50); /* the sender fills the queue and blocks */
  d->in_order = 1;
  while (d->got < d->want) {
    struct mmsghdr mm[4];
    struct iovec iov[4];
    int bufs[4];
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 4; i++) {
      iov[i] = (struct iovec){&bufs[i], sizeof bufs[i]};
      mm[i].msg_hdr.msg_iov = &iov[i];
      mm[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(d->fd, mm, 4, MSG_WAITFORONE, NULL);
    CHECK(n > 0);
    for (int i = 0; i < n; i++) d->in_order &= bufs[i] == d->got + i;
    d->got += n;
    if (d->got % 20 < 4) msleep(1);
  }
  return NULL;
}

static void sendmmsg_blocking(void) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
  enum { N = 200 };
  struct dgram_drain d = {.fd = sv[1], .want = N};
  CHECK(pthread_create(&d.th, NULL, dgram_drainer, &d) == 0);
  int vals[N], sent = 0, calls = 0;
  struct mmsghdr mm[N];
  struct iovec iov[N];
  memset(mm, 0, sizeof mm);
  for (int i = 0; i < N; i++) {
    vals[i] = i;
    iov[i] = (struct iovec){&vals[i], sizeof vals[i]};
    mm[i].msg_hdr.msg_iov = &iov[i];
    mm[i].msg_hdr.msg_iovlen = 1;
  }
  while (sent < N) {
    int n = sendmmsg(sv[0], mm + sent, (unsigned)(N - sent), 0);
    CHECK(n > 0);
    sent += n;
    calls++;
  }
  CHECK(pthread_join(d.th, NULL) == 0);
  int lens_right = 1;
  for (int i = 0; i < N; i++) lens_right &= mm[i].msg_len == sizeof(int);
  printf("sendmmsg of %d datagrams into a slow AF_UNIX receiver: sent %d, msg_len right %s, received %d in order %s\n",
         N, sent, lens_right ? "yes" : "no", d.got, d.in_order ? "yes" : "no");
  close(sv[0]);
  close(sv[1]);
}

/* Everything runs on a created thread, as in a server: every party of each transfer is then a thread
 * the program made. */
static void *all(void *p) {
  (void)p;
  int file = make_file();
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  sendfile_to_socket("into a socketpair", file, sv[0], sv[1]);
  close(sv[0]);
  close(sv[1]);
  int a, b;
  tcp_pair(&a, &b);
  sendfile_to_socket("into TCP loopback", file, a, b);
  printf("socket still blocking: %s\n", (fcntl(a, F_GETFL) & O_NONBLOCK) ? "no" : "yes");
  close(a);
  close(b);
  sendfile_to_pipe(file);
  close(file);
  splice_cases();
  recvmmsg_case(0, 2, 2, 4);
  recvmmsg_case(MSG_WAITFORONE, 2, 2, 4);
  recvmmsg_case(0, 1, 3, 3);
  sendmmsg_blocking();
  return NULL;
}

int main(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, all, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  return 0;
}
