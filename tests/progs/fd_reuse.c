/* fd_reuse — fd numbers get reused: a number that was used for blocking reads is closed and at once
 * names a new pipe or socket (same number, checked), and a blocking read on it is satisfied by a
 * writer thread; 200 times, alternating pipes and socketpairs; dup2() of a new pipe onto the old
 * number; fclose() of an fdopen()ed pipe (a close the program makes inside libc) followed by reuse of
 * the number by pipe(), by eventfd(EFD_NONBLOCK) and by open() of a FIFO; a stale description kept
 * alive by a dup while its old number is reused; and the numbers a program is given. */
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "progs_util.h"

static int make_pair(int kind, int fds[2]) {
  if (kind == 0) return pipe(fds);
  return socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
}

/* Blocking read on fds[0], satisfied by a thread writing to fds[1] after delay_ms. */
static int read_via_thread(int fds[2], int delay_ms, char want) {
  struct delayed_write d;
  char w = want, c = 0;
  delayed_write_start(&d, fds[1], delay_ms, &w, 1);
  ssize_t r = read(fds[0], &c, 1);
  delayed_write_join(&d);
  return r == 1 && c == want;
}

static void on_alarm(int sig) { (void)sig; }

struct fullread {
  int fd;
  ssize_t r;
  int e;
  char c;
  pthread_t th;
};
static void *fullread_fn(void *arg) {
  struct fullread *f = arg;
  f->r = read(f->fd, &f->c, 1);
  f->e = errno;
  return NULL;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm; /* no SA_RESTART: a blocked read ends with EINTR */
  CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
  /* The numbers a program is given: lowest free, whatever it did before */
  int p[2], q[2];
  CHECK(pipe(p) == 0);
  printf("first pipe read end: fd %d\n", p[0]);
  int ok = read_via_thread(p, 100, 'a');
  printf("blocking read on it: %s\n", ok ? "ok" : "WRONG");
  CHECK(pipe(q) == 0);
  printf("second pipe gets the next numbers: %s\n", q[0] == p[1] + 1 && q[1] == p[1] + 2 ? "yes" : "NO");
  fprintf(stderr, "first pipe %d %d, second %d %d\n", p[0], p[1], q[0], q[1]);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  printf("then a socket gets the next: %s\n", s == q[1] + 1 ? "yes" : "NO");
  fprintf(stderr, "socket %d\n", s);
  CHECK(close(s) == 0 && close(q[0]) == 0 && close(q[1]) == 0);

  /* close and reuse, 200 times, pipes and socketpairs alternating */
  int r0 = p[0], w0 = p[1], same = 1, reads = 0;
  CHECK(close(p[0]) == 0 && close(p[1]) == 0);
  double t0 = now_s();
  for (int i = 0; i < 200; i++) {
    int fds[2];
    CHECK(make_pair(i % 2, fds) == 0);
    if (fds[0] != r0 || fds[1] != w0) {
      same = 0;
      fprintf(stderr, "iteration %d got %d %d, expected %d %d\n", i, fds[0], fds[1], r0, w0);
    }
    reads += read_via_thread(fds, i < 4 ? 100 : 1, (char)('A' + i % 26));
    CHECK(close(fds[0]) == 0 && close(fds[1]) == 0);
  }
  printf("200 reuses: same numbers %s, %d reads ok\n", same ? "yes" : "NO", reads);
  fprintf(stderr, "200 reuses took %.3f s\n", now_s() - t0);

  /* reuse by the other end: the old read number becomes a write end */
  CHECK(pipe(p) == 0);
  CHECK(read_via_thread(p, 20, 'x'));
  int old_r = p[0];
  CHECK(close(p[0]) == 0);
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  printf("socketpair took the closed number: %s\n", sv[0] == old_r ? "yes" : "NO");
  int swapped[2] = {sv[1], sv[0]}; /* read on the other end this time, write through the old number */
  printf("read on the partner of the reused number: %s\n", read_via_thread(swapped, 100, 'y') ? "ok" : "WRONG");
  CHECK(close(sv[0]) == 0 && close(sv[1]) == 0 && close(p[1]) == 0);

  /* dup2 a new pipe onto a number that was used for blocking reads */
  CHECK(pipe(p) == 0);
  CHECK(read_via_thread(p, 50, 'd'));
  CHECK(pipe(q) == 0);
  CHECK(dup2(q[0], p[0]) == p[0]);
  CHECK(close(q[0]) == 0);
  int via[2] = {p[0], q[1]};
  printf("read through dup2'd number: %s\n", read_via_thread(via, 100, 'e') ? "ok" : "WRONG");
  printf("old write end now has no reader: %s\n", RES(write(p[1], "z", 1)));
  CHECK(close(p[0]) == 0 && close(p[1]) == 0 && close(q[1]) == 0);

  /* fclose() of an fdopen()ed pipe, then the number is reused by pipe() */
  CHECK(pipe(p) == 0);
  CHECK(read_via_thread(p, 50, 'f'));
  FILE *f = fdopen(p[0], "r");
  CHECK(f);
  CHECK(write(p[1], "line\n", 5) == 5);
  char line[16];
  CHECK(fgets(line, sizeof line, f) != NULL);
  printf("fgets: %s", line);
  int fnum = p[0];
  CHECK(fclose(f) == 0);
  CHECK(close(p[1]) == 0);
  CHECK(pipe(p) == 0);
  printf("pipe after fclose took the number: %s\n", p[0] == fnum ? "yes" : "NO");
  printf("blocking read on it: %s\n", read_via_thread(p, 100, 'g') ? "ok" : "WRONG");

  /* ...and by eventfd(EFD_NONBLOCK), which the program reads expecting EAGAIN at once */
  f = fdopen(p[0], "r");
  CHECK(f);
  CHECK(fclose(f) == 0);
  int efd = eventfd(0, EFD_NONBLOCK);
  CHECK(efd >= 0);
  printf("eventfd after fclose took the number: %s\n", efd == fnum ? "yes" : "NO");
  uint64_t v = 0;
  alarm(2); /* only a read that wrongly blocks sees this: it ends it with EINTR */
  t0 = now_s();
  ssize_t r = read(efd, &v, sizeof v);
  double took = now_s() - t0;
  alarm(0);
  printf("read on non-blocking eventfd: %s%s\n", RES(r), took < 0.5 ? "" : " after waiting");
  CHECK(close(efd) == 0 && close(p[1]) == 0);

  /* ...and by open() of a FIFO with O_NONBLOCK */
  char fifo[64];
  snprintf(fifo, sizeof fifo, "/tmp/progs-fifo-%d", (int)getpid());
  unlink(fifo);
  CHECK(mkfifo(fifo, 0600) == 0);
  CHECK(pipe(p) == 0);
  CHECK(read_via_thread(p, 50, 'h'));
  fnum = p[0];
  f = fdopen(p[0], "r");
  CHECK(f);
  CHECK(fclose(f) == 0);
  CHECK(close(p[1]) == 0);
  int fr = open(fifo, O_RDONLY | O_NONBLOCK);
  CHECK(fr >= 0);
  int fw = open(fifo, O_WRONLY);
  CHECK(fw >= 0);
  printf("fifo after fclose took the number: %s\n", fr == fnum ? "yes" : "NO");
  alarm(2);
  t0 = now_s();
  char buf[16];
  r = read(fr, buf, sizeof buf);
  took = now_s() - t0;
  alarm(0);
  printf("read on non-blocking fifo: %s%s\n", RES(r), took < 0.5 ? "" : " after waiting");
  /* a blocking read there, satisfied by a thread */
  int fl = fcntl(fr, F_GETFL);
  CHECK(fl >= 0 && fcntl(fr, F_SETFL, fl & ~O_NONBLOCK) == 0);
  int fifo_fds[2] = {fr, fw};
  alarm(2);
  printf("blocking read on that fifo: %s\n", read_via_thread(fifo_fds, 100, 'F') ? "ok" : "WRONG");
  alarm(0);
  CHECK(close(fr) == 0 && close(fw) == 0);
  CHECK(unlink(fifo) == 0);

  /* a description kept alive by a dup while its old number names a new pipe: data arriving on the
   * old pipe is nothing to the new one (and waiting costs no CPU) */
  CHECK(pipe(p) == 0);
  CHECK(read_via_thread(p, 50, 'i'));
  int keep = dup(p[0]);
  CHECK(keep >= 0);
  int oldnum = p[0];
  CHECK(close(p[0]) == 0);
  CHECK(write(p[1], "ghost", 5) == 5); /* the old pipe is readable now, through `keep` only */
  CHECK(pipe(q) == 0);
  printf("new pipe took the number of the dup'ed one: %s\n", q[0] == oldnum ? "yes" : "NO");
  double c0 = cpu_s();
  t0 = now_s();
  struct delayed_write d;
  char c = 0;
  delayed_write_start(&d, q[1], 300, "n", 1);
  r = read(q[0], &c, 1);
  took = now_s() - t0;
  double cpu = cpu_s() - c0;
  delayed_write_join(&d);
  printf("read on the new pipe: %s '%c'\n", RES(r), r == 1 ? c : '?');
  in_range("read on the new pipe waited", took, 0.3, 150);
  printf("waiting used little CPU: %s\n", cpu < 0.03 ? "yes" : "NO");
  fprintf(stderr, "cpu %.3f s\n", cpu);
  r = read(keep, buf, sizeof buf);
  printf("old pipe via the dup: %s '%.*s'\n", RES(r), r > 0 ? (int)r : 0, buf);
  CHECK(close(keep) == 0 && close(p[1]) == 0 && close(q[0]) == 0 && close(q[1]) == 0);

  /* every fd the limit allows is in use; a new thread blocks in read() on a pipe it already has */
  {
    struct rlimit old_rl, rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &old_rl) == 0);
    CHECK(pipe(p) == 0);
    int top = p[1] + 1;
    rl = old_rl;
    rl.rlim_cur = (rlim_t)top + 4; /* four free numbers... */
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    int fillers[8], nf = 0;
    for (;;) { /* ...which the program then uses up */
      int f2 = dup(0);
      if (f2 < 0) break;
      CHECK(nf < 8);
      fillers[nf++] = f2;
    }
    printf("fds filled up, then %s\n", errname(errno));
    fprintf(stderr, "%d more fds fitted under the limit\n", nf);
    struct fullread fr2 = {.fd = p[0]};
    CHECK(pthread_create(&fr2.th, NULL, fullread_fn, &fr2) == 0);
    msleep(100);
    CHECK(write(p[1], "R", 1) == 1);
    CHECK(pthread_join(fr2.th, NULL) == 0);
    printf("thread read with no fd to spare: %s '%c'\n", res(fr2.r, fr2.e), fr2.r == 1 ? fr2.c : '?');
    for (int i = 0; i < nf; i++) CHECK(close(fillers[i]) == 0);
    CHECK(setrlimit(RLIMIT_NOFILE, &old_rl) == 0);
    CHECK(close(p[0]) == 0 && close(p[1]) == 0);
  }

  /* a program that closes every fd it does not know about (as daemons do), then blocks */
  CHECK(pipe(p) == 0);
  int closed = 0;
  for (int fd = 3; fd < 256; fd++)
    if (fd != p[0] && fd != p[1] && close(fd) == 0) closed++;
  fprintf(stderr, "closed %d unknown fds\n", closed);
  printf("after closing unknown fds, blocking read: %s\n", read_via_thread(p, 100, 'k') ? "ok" : "WRONG");
  msleep(10);
  printf("and a sleep: ok\n");
  CHECK(close(p[0]) == 0 && close(p[1]) == 0);
  return 0;
}

