/* signals_eintr — signal handlers and blocking calls (signal(7)): a handler without SA_RESTART makes
 * a blocked read/write/accept return -1 EINTR; with SA_RESTART the read goes on waiting; nanosleep and
 * sleep are interrupted either way (with the time left); poll/select/epoll_wait are interrupted even
 * with SA_RESTART, and so is a read on a socket with SO_RCVTIMEO; a handler may write to a pipe (the
 * self-pipe trick); signal() has BSD semantics, sysv_signal() and siginterrupt() do not; sigaction()
 * reads back what the program installed; pthread_kill() interrupts the thread it is sent to.
 * Helper threads block SIGALRM so the signal always lands on the main thread. */
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/time.h>

#include "progs_util.h"

static volatile sig_atomic_t hits;
static int selfpipe[2] = {-1, -1};
static volatile int info_signo, info_ok;

static void on_sig(int sig) {
  (void)sig;
  hits++;
}

static void on_sig_selfpipe(int sig) {
  (void)sig;
  hits++;
  int saved = errno;
  char c = 'S';
  if (write(selfpipe[1], &c, 1) != 1) abort();
  errno = saved;
}

static void on_siginfo(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  hits++;
  info_signo = si->si_signo;
  info_ok = sig == si->si_signo;
}

static void install(void (*h)(int), int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = h;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
}

static void alarm_in(int ms) {
  struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
  CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
}

/* Threads started through here have SIGALRM blocked. */
static void start_blocked(pthread_t *th, void *(*fn)(void *), void *arg) {
  sigset_t s, old;
  sigemptyset(&s);
  sigaddset(&s, SIGALRM);
  CHECK(pthread_sigmask(SIG_BLOCK, &s, &old) == 0);
  CHECK(pthread_create(th, NULL, fn, arg) == 0);
  CHECK(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
}

struct late {
  int fd, ms;
  pthread_t th;
};
static void *late_write(void *p) {
  struct late *l = p;
  msleep(l->ms);
  CHECK(write(l->fd, "L", 1) == 1);
  return NULL;
}
static void late_start(struct late *l, int fd, int ms) {
  l->fd = fd;
  l->ms = ms;
  start_blocked(&l->th, late_write, l);
}

/* A read on an empty pipe with a signal after 100 ms; returns what read returned (and errno). */
static ssize_t read_with_alarm(int fd, char *c, double *took) {
  double t0 = now_s();
  alarm_in(100);
  ssize_t r = read(fd, c, 1);
  *took = now_s() - t0;
  return r;
}

struct tk {
  int fd;
  pthread_t self;
  ssize_t r;
  int e;
  double took;
  pthread_t th;
};
static void *thread_reader(void *p) {
  struct tk *t = p;
  char c;
  t->r = read(t->fd, &c, 1);
  t->e = errno;
  t->took = now_s(); /* when it returned */
  return NULL;
}
static void on_usr1(int sig) {
  (void)sig;
  hits++;
}

struct drainer {
  int fd;
  long got;
  pthread_t th;
};

/* Reads to EOF, starting after 400 ms. */
static void *drain_all(void *p) {
  struct drainer *d = p;
  msleep(400);
  static char b[65536];
  for (;;) {
    ssize_t n = read(d->fd, b, sizeof b);
    CHECK(n >= 0);
    if (n == 0) break;
    d->got += n;
  }
  return NULL;
}

int main(void) {
  int p[2];
  char c;
  double took, t0;
  ssize_t r;
  int e;
  struct late l;
  CHECK(pipe(p) == 0);

  /* no SA_RESTART: read -> EINTR */
  install(on_sig, 0);
  hits = 0;
  r = read_with_alarm(p[0], &c, &took);
  e = errno;
  printf("read, handler without SA_RESTART: %s, handler ran %d\n", res(r, e), (int)hits);
  in_range("read interrupted after 100 ms", took, 0.1, 150);

  /* SA_RESTART: the read goes on and gets the data written after 300 ms */
  install(on_sig, SA_RESTART);
  hits = 0;
  late_start(&l, p[1], 300);
  r = read_with_alarm(p[0], &c, &took);
  e = errno;
  printf("read, handler with SA_RESTART: %s '%c', handler ran %d\n", res(r, e), r == 1 ? c : '?', (int)hits);
  in_range("restarted read returned with the data", took, 0.3, 150);
  CHECK(pthread_join(l.th, NULL) == 0);

  /* write blocked on a full pipe, no SA_RESTART: EINTR (nothing written) */
  install(on_sig, 0);
  static char fill[65536];
  int fl_ok = 1;
  {
    /* fill the pipe with a thread-free trick: poll says writable until full */
    struct pollfd pf = {.fd = p[1], .events = POLLOUT};
    long total = 0;
    while (poll(&pf, 1, 0) == 1 && total < (1 << 24)) {
      CHECK(write(p[1], fill, 4096) == 4096);
      total += 4096;
    }
    fl_ok = total == 65536;
  }
  printf("pipe filled: %s\n", fl_ok ? "64 KiB" : "other size");
  t0 = now_s();
  alarm_in(100);
  r = write(p[1], "x", 1);
  e = errno;
  printf("write to full pipe, interrupted: %s\n", res(r, e));
  in_range("write interrupted after 100 ms", now_s() - t0, 0.1, 150);
  /* a big write that got part of the way returns the part */
  {
    int q[2];
    CHECK(pipe(q) == 0);
    static char big[200000];
    alarm_in(100);
    r = write(q[1], big, sizeof big);
    e = errno;
    printf("200000-byte write to empty pipe, interrupted: %s\n", r > 0 && r < (ssize_t)sizeof big ? "partial" : res(r, e));
    CHECK(close(q[0]) == 0 && close(q[1]) == 0);
  }
  CHECK(close(p[0]) == 0 && close(p[1]) == 0);
  CHECK(pipe(p) == 0);

  /* nanosleep and sleep are interrupted with SA_RESTART too; rem is the time left */
  install(on_sig, SA_RESTART);
  t0 = now_s();
  alarm_in(100);
  struct timespec req = {1, 0}, rem = {0, 0};
  int n = nanosleep(&req, &rem);
  e = errno;
  took = now_s() - t0;
  printf("nanosleep 1 s interrupted: %s\n", res(n, e));
  double left = (double)rem.tv_sec + rem.tv_nsec / 1e9;
  printf("nanosleep rem %s\n", left > 0.5 && left < 0.91 ? "in range" : "OUT OF RANGE");
  fprintf(stderr, "rem %.6f, took %.6f\n", left, took);
  alarm_in(100);
  unsigned left_s = sleep(2);
  printf("sleep(2) interrupted returns %s\n", left_s > 0 ? "> 0" : "0");
  fprintf(stderr, "sleep returned %u\n", left_s);
  t0 = now_s();
  alarm_in(100);
  printf("usleep 1 s interrupted: %s\n", RES(usleep(1000000)));
  in_range("usleep interrupted after 100 ms", now_s() - t0, 0.1, 150);
  alarm_in(100);
  req = (struct timespec){1, 0};
  printf("clock_nanosleep interrupted: %d\n", clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem));

  /* poll, select, epoll_wait: EINTR even with SA_RESTART */
  struct pollfd pf = {.fd = p[0], .events = POLLIN};
  t0 = now_s();
  alarm_in(100);
  printf("poll(-1) interrupted: %s\n", RES(poll(&pf, 1, -1)));
  in_range("poll interrupted after 100 ms", now_s() - t0, 0.1, 150);
  alarm_in(100);
  printf("poll(5000) interrupted: %s\n", RES(poll(&pf, 1, 5000)));
  fd_set rd;
  FD_ZERO(&rd);
  FD_SET(p[0], &rd);
  t0 = now_s();
  alarm_in(100);
  printf("select(NULL timeout) interrupted: %s\n", RES(select(p[0] + 1, &rd, NULL, NULL, NULL)));
  in_range("select interrupted after 100 ms", now_s() - t0, 0.1, 150);
  int ep = epoll_create1(0);
  CHECK(ep >= 0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = p[0]};
  CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
  alarm_in(100);
  printf("epoll_wait(-1) interrupted: %s\n", RES(epoll_wait(ep, &ev, 1, -1)));
  CHECK(close(ep) == 0);
  t0 = now_s();
  alarm_in(100);
  printf("pause: %s\n", RES(pause()));

  /* a socket with SO_RCVTIMEO: interrupted even with SA_RESTART */
  int a, b;
  tcp_pair(&a, &b);
  struct timeval tv = {5, 0};
  CHECK(setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
  t0 = now_s();
  alarm_in(100);
  printf("read with SO_RCVTIMEO, SA_RESTART handler: %s\n", RES(read(a, &c, 1)));
  in_range("SO_RCVTIMEO read interrupted after 100 ms", now_s() - t0, 0.1, 150);
  /* and a socket without: restarted, data after 300 ms */
  late_start(&l, b, 300);
  struct timeval zero = {0, 0};
  CHECK(setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &zero, sizeof zero) == 0);
  alarm_in(100);
  printf("recv without timeout, SA_RESTART handler: %s\n", RES(recv(a, &c, 1, 0)));
  CHECK(pthread_join(l.th, NULL) == 0);
  /* accept, no SA_RESTART */
  install(on_sig, 0);
  int port, lsn = tcp_listener(&port);
  alarm_in(100);
  printf("accept interrupted: %s\n", RES(accept(lsn, NULL, NULL)));
  CHECK(close(lsn) == 0 && close(a) == 0 && close(b) == 0);

  /* self-pipe: the handler writes, the main loop's blocking read gets it */
  CHECK(pipe(selfpipe) == 0);
  install(on_sig_selfpipe, SA_RESTART);
  hits = 0;
  t0 = now_s();
  alarm_in(100);
  r = read(selfpipe[0], &c, 1);
  e = errno;
  printf("self-pipe read: %s '%c', handler ran %d\n", res(r, e), r == 1 ? c : '?', (int)hits);
  in_range("self-pipe read after 100 ms", now_s() - t0, 0.1, 150);
  /* the same without SA_RESTART: EINTR, and the byte is there afterwards */
  install(on_sig_selfpipe, 0);
  alarm_in(100);
  r = read(selfpipe[0], &c, 1);
  e = errno;
  printf("self-pipe read without SA_RESTART: %s\n", res(r, e));
  r = read(selfpipe[0], &c, 1);
  printf("then: %s '%c'\n", RES(r), r == 1 ? c : '?');
  /* self-pipe with poll */
  pf = (struct pollfd){.fd = selfpipe[0], .events = POLLIN};
  alarm_in(100);
  n = poll(&pf, 1, 2000);
  e = errno;
  printf("poll on self-pipe: %s", res(n, e));
  n = poll(&pf, 1, 0);
  printf(", then %s revents %#x\n", RES(n), (unsigned)pf.revents);
  CHECK(read(selfpipe[0], &c, 1) == 1);

  /* SA_SIGINFO */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_siginfo;
  sa.sa_flags = SA_SIGINFO;
  CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
  alarm_in(100);
  r = read(p[0], &c, 1);
  e = errno;
  printf("read, SA_SIGINFO handler: %s, si_signo %d ok %d\n", res(r, e), info_signo, info_ok);

  /* signal(): BSD semantics (SA_RESTART), the read goes on */
  hits = 0;
  CHECK(signal(SIGALRM, on_sig) != SIG_ERR);
  late_start(&l, p[1], 300);
  r = read_with_alarm(p[0], &c, &took);
  e = errno;
  printf("read, signal() handler: %s '%c' handler ran %d\n", res(r, e), r == 1 ? c : '?', (int)hits);
  CHECK(pthread_join(l.th, NULL) == 0);
  /* siginterrupt(sig, 1) turns SA_RESTART off: EINTR (a thread writes after 1.5 s in case not) */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* old programs still call it */
  CHECK(siginterrupt(SIGALRM, 1) == 0);
#pragma GCC diagnostic pop
  late_start(&l, p[1], 1500);
  r = read_with_alarm(p[0], &c, &took);
  e = errno;
  printf("read, after siginterrupt(1): %s\n", res(r, e));
  CHECK(pthread_join(l.th, NULL) == 0);
  if (r < 0) CHECK(read(p[0], &c, 1) == 1);
  /* sysv_signal(): no SA_RESTART either */
  CHECK(sysv_signal(SIGALRM, on_sig) != SIG_ERR);
  late_start(&l, p[1], 1500);
  r = read_with_alarm(p[0], &c, &took);
  e = errno;
  printf("read, sysv_signal() handler: %s\n", res(r, e));
  CHECK(pthread_join(l.th, NULL) == 0);
  if (r < 0) CHECK(read(p[0], &c, 1) == 1);

  /* sigaction reads back what the program installed */
  install(on_sig, SA_RESTART);
  struct sigaction old;
  memset(&old, 0, sizeof old);
  CHECK(sigaction(SIGALRM, NULL, &old) == 0);
  printf("sigaction read back: handler %s, SA_RESTART %d, SA_SIGINFO %d\n",
         old.sa_handler == on_sig ? "same" : "DIFFERENT", (old.sa_flags & SA_RESTART) != 0,
         (old.sa_flags & SA_SIGINFO) != 0);
  printf("sigaction read back: sa_flags %#x\n", (unsigned)old.sa_flags);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  memset(&old, 0, sizeof old);
  CHECK(sigaction(SIGALRM, &sa, &old) == 0);
  printf("old action when replacing: handler %s, sa_flags %#x\n", old.sa_handler == on_sig ? "same" : "DIFFERENT",
         (unsigned)old.sa_flags);
  CHECK(sigaction(SIGALRM, NULL, &old) == 0);
  printf("now: handler %s\n", old.sa_handler == SIG_IGN ? "SIG_IGN" : "OTHER");
  void (*prev)(int) = signal(SIGALRM, on_sig);
  printf("signal() returned the previous: %s\n", prev == SIG_IGN ? "SIG_IGN" : "OTHER");
  prev = signal(SIGALRM, SIG_DFL);
  printf("signal() returned the previous: %s\n", prev == on_sig ? "same" : "OTHER");
  CHECK(sigaction(SIGALRM, NULL, &old) == 0);
  printf("SIG_DFL read back: %s, sa_flags %#x\n", old.sa_handler == SIG_DFL ? "SIG_DFL" : "OTHER",
         (unsigned)old.sa_flags);
  /* SA_RESETHAND: one-shot */
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESETHAND;
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  hits = 0;
  CHECK(raise(SIGUSR1) == 0);
  CHECK(sigaction(SIGUSR1, NULL, &old) == 0);
  printf("SA_RESETHAND: handler ran %d, now %s\n", (int)hits, old.sa_handler == SIG_DFL ? "SIG_DFL" : "OTHER");
  CHECK(sigaction(SIGUSR2, NULL, &old) == 0);
  printf("never-set signal: %s\n", old.sa_handler == SIG_DFL ? "SIG_DFL" : "OTHER");
  printf("sigaction on SIGKILL: %s\n", RES(sigaction(SIGKILL, &sa, NULL)));
  printf("sigaction on signal 0: %s\n", RES(sigaction(0, &sa, NULL)));

  /* pthread_kill interrupts the thread it is sent to (no SA_RESTART), not the main thread */
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  int q[2];
  CHECK(pipe(q) == 0);
  struct tk t = {.fd = q[0]};
  /* a byte after 1.5 s ends a read the signal failed to interrupt */
  struct delayed_write rescue = {.fd = q[1], .delay_ms = 1500, .buf = "r", .len = 1};
  start_blocked(&rescue.th, delayed_write_fn, &rescue);
  t0 = now_s();
  CHECK(pthread_create(&t.th, NULL, thread_reader, &t) == 0);
  msleep(100);
  CHECK(pthread_kill(t.th, SIGUSR1) == 0);
  CHECK(pthread_join(t.th, NULL) == 0);
  CHECK(pthread_join(rescue.th, NULL) == 0);
  printf("thread read, pthread_kill: %s\n", res(t.r, t.e));
  in_range("thread read interrupted after 100 ms", t.took - t0, 0.1, 150);
  CHECK(close(q[0]) == 0 && close(q[1]) == 0);

  /* SA_RESTART does not restart a call that already transferred data: it returns the part */
  install(on_sig, SA_RESTART);
  {
    int x, y;
    char buf[32];
    tcp_pair(&x, &y);
    CHECK(write(y, "abcd", 4) == 4);
    /* the other 12 after 600 ms: a restarted call would return all 16 then */
    struct delayed_write rest = {.fd = y, .delay_ms = 600, .buf = "efghijklmnop", .len = 12};
    start_blocked(&rest.th, delayed_write_fn, &rest);
    alarm_in(100);
    memset(buf, 0, sizeof buf);
    r = recv(x, buf, 16, MSG_WAITALL);
    e = errno;
    printf("recv MSG_WAITALL 16 with 4 there, SA_RESTART signal: %s '%s'\n", res(r, e), buf);
    CHECK(pthread_join(rest.th, NULL) == 0);
    CHECK(close(x) == 0 && close(y) == 0);
  }
  {
    CHECK(pipe(q) == 0);
    struct drainer dr = {.fd = q[0]};
    start_blocked(&dr.th, drain_all, &dr);
    static char big[300000];
    alarm_in(100);
    r = write(q[1], big, sizeof big);
    e = errno;
    printf("300000-byte pipe write, SA_RESTART signal: %s\n",
           r == 65536 ? "65536 (what fit)" : res(r, e));
    CHECK(close(q[1]) == 0);
    CHECK(pthread_join(dr.th, NULL) == 0);
    printf("the reader got what was written: %s\n", dr.got == r ? "yes" : "NO");
    CHECK(close(q[0]) == 0);
  }
  return 0;
}

