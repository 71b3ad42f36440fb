/* pipes_stdio — blocking pipes: 4 MiB from a writer thread in chunks of random sizes (fixed seed)
 * read with read() of other random sizes; single writes much larger than PIPE_BUF; writes of at most
 * PIPE_BUF from several threads stay whole; stdio (fdopen, fprintf, fgets) over a pipe; a forked child
 * that writes and exits while the parent reads to EOF and waitpid()s; popen(). */
#include <fcntl.h>
#include <limits.h>
#include <sys/wait.h>

#include "progs_util.h"

#define TOTAL (4u << 20)

struct writer {
  int fd;
  unsigned seed;
  pthread_t th;
};

static void *random_writer(void *p) {
  struct writer *w = p;
  static unsigned char buf[TOTAL];
  for (size_t i = 0; i < TOTAL; i++) buf[i] = pattern(i);
  size_t off = 0;
  unsigned seed = w->seed;
  while (off < TOTAL) {
    size_t n = 1 + (size_t)rand_r(&seed) % 200000;
    if (n > TOTAL - off) n = TOTAL - off;
    ssize_t r = write(w->fd, buf + off, n);
    CHECK(r == (ssize_t)n); /* blocking pipe writes are complete */
    off += n;
    if (rand_r(&seed) % 16 == 0) msleep(1);
  }
  CHECK(close(w->fd) == 0);
  return NULL;
}

/* Several threads write records of `rec` bytes (<= PIPE_BUF) filled with one byte value each. */
struct recwriter {
  int fd, id, n;
  size_t rec;
  pthread_t th;
};

static void *record_writer(void *p) {
  struct recwriter *w = p;
  unsigned char buf[PIPE_BUF];
  for (int i = 0; i < w->n; i++) {
    memset(buf, (unsigned char)(w->id * 50 + i % 50), w->rec);
    CHECK(write(w->fd, buf, w->rec) == (ssize_t)w->rec);
  }
  return NULL;
}

static void records(size_t rec) {
  int p[2];
  CHECK(pipe(p) == 0);
  struct recwriter w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (struct recwriter){.fd = p[1], .id = i, .n = 2000, .rec = rec};
    CHECK(pthread_create(&w[i].th, NULL, record_writer, &w[i]) == 0);
  }
  unsigned char buf[PIPE_BUF];
  int whole = 0, torn = 0;
  for (int i = 0; i < 4 * 2000; i++) {
    CHECK(read_full(p[0], buf, rec) == rec);
    int ok = 1;
    for (size_t k = 1; k < rec; k++) ok &= buf[k] == buf[0];
    whole += ok;
    torn += !ok;
  }
  for (int i = 0; i < 4; i++) CHECK(pthread_join(w[i].th, NULL) == 0);
  printf("4 writers x 2000 records of %zu bytes: %d whole, %d torn\n", rec, whole, torn);
  CHECK(close(p[0]) == 0 && close(p[1]) == 0);
}

struct fwriter {
  FILE *f;
  pthread_t th;
};
static void *fprintf_writer(void *p) {
  struct fwriter *w = p;
  for (int i = 0; i < 1000; i++) CHECK(fprintf(w->f, "line %d of the stdio test\n", i) > 0);
  CHECK(fclose(w->f) == 0);
  return NULL;
}

struct drainer {
  int fd;
  unsigned char *buf;
  size_t got;
};

/* After 50 ms, read 1 MiB (or to EOF). */
static void *drain(void *a) {
  struct drainer *d = a;
  msleep(50);
  d->got = read_full(d->fd, d->buf, 1u << 20);
  return NULL;
}

int main(void) {
  int p[2];
  /* 4 MiB in random chunks, read in other random chunks */
  CHECK(pipe(p) == 0);
  struct writer w = {.fd = p[1], .seed = 12345};
  CHECK(pthread_create(&w.th, NULL, random_writer, &w) == 0);
  unsigned char *in = malloc(TOTAL + 1);
  CHECK(in);
  size_t got = 0;
  unsigned seed = 777;
  for (;;) {
    size_t n = 1 + (size_t)rand_r(&seed) % 100000;
    if (n > TOTAL + 1 - got) n = TOTAL + 1 - got;
    ssize_t r = read(p[0], in + got, n);
    CHECK(r >= 0);
    if (r == 0) break;
    got += (size_t)r;
  }
  CHECK(pthread_join(w.th, NULL) == 0);
  size_t bad = 0;
  for (size_t i = 0; i < got && i < TOTAL; i++) bad += in[i] != pattern(i);
  printf("pipe random chunks: %zu bytes %s\n", got, bad ? "CORRUPT" : "ok");
  CHECK(close(p[0]) == 0);

  /* one write of 1 MiB (256 x PIPE_BUF) into a pipe read by a thread */
  CHECK(pipe(p) == 0);
  memset(in, 0, TOTAL);
  for (size_t i = 0; i < (1u << 20); i++) in[TOTAL - (1u << 20) + i] = pattern(i);
  {
    /* the reader is this thread; the writer a thread */
    struct delayed_write d;
    delayed_write_start(&d, p[1], 10, in + TOTAL - (1u << 20), 1u << 20);
    got = read_full(p[0], in, 1u << 20);
    delayed_write_join(&d);
    bad = 0;
    for (size_t i = 0; i < got; i++) bad += in[i] != pattern(i);
    printf("1 MiB single write through a pipe: %zu %s\n", got, bad ? "CORRUPT" : "ok");
  }
  /* and the other way round: the single big write blocks this thread until a reader drains */
  {
    unsigned char *out = malloc(1u << 20);
    CHECK(out);
    for (size_t i = 0; i < (1u << 20); i++) out[i] = pattern(i + 1);
    struct drainer args = {.fd = p[0], .buf = in};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, drain, &args) == 0);
    ssize_t wr = write(p[1], out, 1u << 20);
    printf("1 MiB write to a pipe drained by a thread: %s\n", RES(wr));
    CHECK(close(p[1]) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    bad = 0;
    for (size_t i = 0; i < args.got; i++) bad += in[i] != pattern(i + 1);
    printf("the thread read %zu %s\n", args.got, bad ? "CORRUPT" : "ok");
    CHECK(close(p[0]) == 0);
    free(out);
  }
  free(in);

  /* records of PIPE_BUF and of 100 bytes from 4 threads: never interleaved */
  records(PIPE_BUF);
  records(100);

  /* zero-length reads and writes */
  CHECK(pipe(p) == 0);
  char c;
  printf("read 0 bytes from empty pipe: %s\n", RES(read(p[0], &c, 0)));
  printf("write 0 bytes: %s\n", RES(write(p[1], &c, 0)));

  /* stdio over a pipe */
  FILE *fw = fdopen(p[1], "w"), *fr = fdopen(p[0], "r");
  CHECK(fw && fr);
  struct fwriter fwr = {.f = fw};
  CHECK(pthread_create(&fwr.th, NULL, fprintf_writer, &fwr) == 0);
  char line[128];
  int lines = 0, ok = 1;
  while (fgets(line, sizeof line, fr)) {
    char want[128];
    snprintf(want, sizeof want, "line %d of the stdio test\n", lines);
    ok &= strcmp(line, want) == 0;
    lines++;
  }
  CHECK(pthread_join(fwr.th, NULL) == 0);
  printf("stdio over a pipe: %d lines %s, feof %d\n", lines, ok ? "ok" : "WRONG", feof(fr) != 0);
  CHECK(fclose(fr) == 0);

  /* stdio on one end, read() on the other */
  CHECK(pipe(p) == 0);
  fw = fdopen(p[1], "w");
  CHECK(fw);
  fwr.f = fw;
  CHECK(pthread_create(&fwr.th, NULL, fprintf_writer, &fwr) == 0);
  size_t bytes = 0;
  char buf[4096];
  for (;;) {
    ssize_t r = read(p[0], buf, sizeof buf);
    CHECK(r >= 0);
    if (r == 0) break;
    bytes += (size_t)r;
  }
  CHECK(pthread_join(fwr.th, NULL) == 0);
  printf("fprintf to read(): %zu bytes\n", bytes);
  CHECK(close(p[0]) == 0);

  /* a child writes and exits; the parent reads to EOF */
  CHECK(pipe(p) == 0);
  fflush(stdout);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    CHECK(close(p[0]) == 0);
    msleep(100);
    for (int i = 0; i < 100; i++) {
      char msg[64];
      int n = snprintf(msg, sizeof msg, "child line %d\n", i);
      CHECK(write(p[1], msg, (size_t)n) == n);
    }
    _exit(7);
  }
  CHECK(close(p[1]) == 0);
  bytes = 0;
  double t0 = now_s();
  for (;;) {
    ssize_t r = read(p[0], buf, sizeof buf);
    CHECK(r >= 0);
    if (r == 0) break;
    bytes += (size_t)r;
  }
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  printf("from child: %zu bytes, exit %d\n", bytes, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  in_range("parent waited for the child", now_s() - t0, 0.1, 400);
  CHECK(close(p[0]) == 0);

  ssize_t r0;
  /* packet-mode pipe (O_DIRECT): each write is one packet, each read takes at most one */
  CHECK(pipe2(p, O_DIRECT) == 0);
  CHECK(write(p[1], "0123456789", 10) == 10);
  CHECK(write(p[1], "abc", 3) == 3);
  r0 = read(p[0], buf, sizeof buf);
  printf("packet pipe read: %s\n", RES(r0));
  r0 = read(p[0], buf, 2);
  printf("packet pipe short read: %s\n", RES(r0));
  printf("write another packet: %s\n", RES(write(p[1], "z", 1)));
  r0 = read(p[0], buf, sizeof buf);
  printf("next read gets the new packet, the rest of the old one is gone: %s '%.*s'\n", RES(r0), r0 > 0 ? (int)r0 : 0, buf);
  {
    struct delayed_write dw;
    delayed_write_start(&dw, p[1], 100, "late packet", 11);
    r0 = read(p[0], buf, sizeof buf);
    printf("blocking packet read: %s\n", RES(r0));
    delayed_write_join(&dw);
  }
  CHECK(close(p[0]) == 0 && close(p[1]) == 0);

  /* character devices */
  int dn = open("/dev/null", O_RDWR), dz = open("/dev/zero", O_RDONLY), du = open("/dev/urandom", O_RDONLY);
  CHECK(dn >= 0 && dz >= 0 && du >= 0);
  printf("read /dev/null: %s\n", RES(read(dn, buf, sizeof buf)));
  printf("write /dev/null: %s\n", RES(write(dn, buf, sizeof buf)));
  memset(buf, 1, sizeof buf);
  r0 = read(dz, buf, sizeof buf);
  printf("read /dev/zero: %s zeros %d\n", RES(r0), buf[0] == 0 && buf[sizeof buf - 1] == 0);
  printf("read /dev/urandom: %s\n", RES(read(du, buf, 64)));
  CHECK(close(dn) == 0 && close(dz) == 0 && close(du) == 0);

  FILE *pf = popen("echo hi; echo there", "r");
  CHECK(pf);
  lines = 0;
  while (fgets(line, sizeof line, pf)) printf("popen line %d: %s", lines++, line);
  printf("pclose: %d\n", pclose(pf));
  pf = popen("cat > /dev/null; exit 3", "w");
  CHECK(pf);
  for (int i = 0; i < 1000; i++) CHECK(fprintf(pf, "to the child %d\n", i) > 0);
  st = pclose(pf);
  printf("pclose of writer: exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  /* popen's fd read with read() */
  pf = popen("sleep 0.1; echo raw", "r");
  CHECK(pf);
  ssize_t r = read(fileno(pf), buf, sizeof buf);
  printf("read() on popen fd: %s '%.*s'\n", RES(r), r > 0 ? (int)r - 1 : 0, buf);
  printf("pclose: %d\n", pclose(pf));
  return 0;
}

