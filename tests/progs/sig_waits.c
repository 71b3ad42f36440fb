/* sig_waits — waiting for signals in threads (issue 11 point 2): sigtimedwait timing out, and
 * receiving a pthread_kill'ed and a process-directed signal; sigsuspend woken by pthread_kill, and
 * returning at once for a signal already pending (sigpending shows it); pause; a signalfd read
 * (thread-directed and process-directed); ppoll and pselect with a mask that unblocks a pending
 * signal (EINTR at once) or one that arrives during the wait; raise() in a thread; a pending
 * signal's handler runs when the thread unblocks it. All while a ticker thread keeps making
 * progress (with one worker it shares the waiters' worker). Main blocks SIGUSR1 and SIGUSR2 before
 * making threads, so every thread starts with both blocked. */
#include <poll.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/signalfd.h>

#include "progs_util.h"

static _Atomic long ticks;
static _Atomic int stop;
static _Atomic int usr2_hits;
static __thread int my_hits;

static void on_sig(int sig) {
  if (sig == SIGUSR2) usr2_hits++;
  my_hits++;
}

static void *ticker(void *arg) {
  (void)arg;
  while (!stop) {
    ticks++;
    msleep(1);
  }
  return NULL;
}

struct kick_sig {
  pthread_t who;
  int sig, ms;
  int process; /* kill(getpid()) instead of pthread_kill */
};
static void *kicker(void *p) {
  struct kick_sig *k = p;
  msleep(k->ms);
  if (k->process) CHECK(kill(getpid(), k->sig) == 0);
  else CHECK(pthread_kill(k->who, k->sig) == 0);
  return NULL;
}
static pthread_t kick(struct kick_sig *k, pthread_t who, int sig, int ms, int process) {
  k->who = who, k->sig = sig, k->ms = ms, k->process = process;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, kicker, k) == 0);
  return t;
}

static sigset_t only(int sig) {
  sigset_t s;
  sigemptyset(&s);
  if (sig) sigaddset(&s, sig);
  return s;
}

static int progressed_during(long before) { return ticks > before + 5; }

static void *timedwait_cases(void *arg) {
  (void)arg;
  sigset_t s = only(SIGUSR2);
  siginfo_t si;
  struct timespec ts = {0, 150 * 1000000L};
  long t0 = ticks;
  double t = now_s();
  int r = sigtimedwait(&s, &si, &ts);
  int e = errno;
  printf("sigtimedwait timeout: %s\n", res(r, e));
  in_range("sigtimedwait 150 ms", now_s() - t, 0.15, 150);
  printf("ticker progressed during sigtimedwait: %d\n", progressed_during(t0));

  struct kick_sig k;
  pthread_t kt = kick(&k, pthread_self(), SIGUSR2, 60, 0);
  ts.tv_sec = 5;
  r = sigtimedwait(&s, &si, &ts);
  printf("sigtimedwait thread-directed: %s signo %d pid ok %d\n", res(r, errno), si.si_signo, si.si_pid == getpid());
  fprintf(stderr, "si_code %d\n", si.si_code);
  CHECK(pthread_join(kt, NULL) == 0);

  kt = kick(&k, pthread_self(), SIGUSR2, 60, 1);
  t0 = ticks;
  r = sigwaitinfo(&s, &si);
  printf("sigwaitinfo process-directed: %s signo %d code SI_USER %d pid ok %d\n", res(r, errno), si.si_signo,
         si.si_code == SI_USER, si.si_pid == getpid());
  printf("ticker progressed during sigwaitinfo: %d\n", progressed_during(t0));
  CHECK(pthread_join(kt, NULL) == 0);

  /* already pending: no wait */
  CHECK(pthread_kill(pthread_self(), SIGUSR2) == 0);
  sigset_t p;
  CHECK(sigpending(&p) == 0);
  printf("pending after pthread_kill to self: USR2 %d USR1 %d\n", sigismember(&p, SIGUSR2), sigismember(&p, SIGUSR1));
  int sig = 0;
  r = sigwait(&s, &sig);
  printf("sigwait pending: %d sig USR2 %d\n", r, sig == SIGUSR2);
  CHECK(sigpending(&p) == 0);
  printf("pending after sigwait: USR2 %d\n", sigismember(&p, SIGUSR2));
  return NULL;
}

static void *suspend_cases(void *arg) {
  (void)arg;
  sigset_t empty = only(0), cur;
  struct kick_sig k;
  long t0 = ticks;
  pthread_t kt = kick(&k, pthread_self(), SIGUSR1, 80, 0);
  int r = sigsuspend(&empty);
  int e = errno;
  printf("sigsuspend woken by pthread_kill: %s, my handler ran %d\n", res(r, e), my_hits);
  printf("ticker progressed during sigsuspend: %d\n", progressed_during(t0));
  CHECK(pthread_join(kt, NULL) == 0);
  CHECK(pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0);
  printf("mask restored after sigsuspend: USR1 blocked %d\n", sigismember(&cur, SIGUSR1));

  /* pending before: sigsuspend returns at once */
  CHECK(pthread_kill(pthread_self(), SIGUSR1) == 0);
  printf("handler ran while blocked: %d\n", my_hits - 1);
  double t = now_s();
  r = sigsuspend(&empty);
  printf("sigsuspend with one pending: %s, handler ran %d, at once %d\n", res(r, errno), my_hits,
         now_s() - t < 0.5);

  /* a pending signal runs when unblocked */
  CHECK(pthread_kill(pthread_self(), SIGUSR1) == 0);
  int before = my_hits;
  sigset_t one = only(SIGUSR1);
  CHECK(pthread_sigmask(SIG_UNBLOCK, &one, NULL) == 0);
  printf("handler ran on unblock: %d\n", my_hits - before);

  /* pause with SIGUSR1 unblocked */
  kt = kick(&k, pthread_self(), SIGUSR1, 60, 0);
  r = pause();
  printf("pause: %s, handler ran %d\n", res(r, errno), my_hits - before);
  CHECK(pthread_join(kt, NULL) == 0);

  /* raise() runs the handler before it returns */
  before = my_hits;
  CHECK(raise(SIGUSR1) == 0);
  printf("raise: handler ran %d\n", my_hits - before);
  CHECK(pthread_sigmask(SIG_BLOCK, &one, NULL) == 0);
  return NULL;
}

static void *signalfd_cases(void *arg) {
  (void)arg;
  sigset_t s = only(SIGUSR2);
  int fd = signalfd(-1, &s, SFD_CLOEXEC);
  CHECK(fd >= 0);
  struct kick_sig k;
  struct signalfd_siginfo f;
  long t0 = ticks;
  pthread_t kt = kick(&k, pthread_self(), SIGUSR2, 60, 0);
  ssize_t r = read(fd, &f, sizeof f);
  printf("signalfd read thread-directed: %s signo USR2 %d code SI_TKILL %d\n", res(r, errno), f.ssi_signo == SIGUSR2,
         f.ssi_code == SI_TKILL);
  printf("ticker progressed during signalfd read: %d\n", progressed_during(t0));
  CHECK(pthread_join(kt, NULL) == 0);
  kt = kick(&k, pthread_self(), SIGUSR2, 60, 1);
  r = read(fd, &f, sizeof f);
  printf("signalfd read process-directed: %s signo USR2 %d code SI_USER %d pid ok %d\n", res(r, errno),
         f.ssi_signo == SIGUSR2, f.ssi_code == SI_USER, f.ssi_pid == (uint32_t)getpid());
  CHECK(pthread_join(kt, NULL) == 0);
  CHECK(close(fd) == 0);
  return NULL;
}

static void *ppoll_cases(void *arg) {
  (void)arg;
  int p[2];
  CHECK(pipe(p) == 0);
  struct pollfd pfd = {.fd = p[0], .events = POLLIN};
  sigset_t empty = only(0), cur;
  struct timespec ts = {2, 0};
  /* pending and blocked; the mask lets it through: EINTR at once */
  CHECK(pthread_kill(pthread_self(), SIGUSR1) == 0);
  int before = my_hits;
  double t = now_s();
  int r = ppoll(&pfd, 1, &ts, &empty);
  int e = errno;
  printf("ppoll with a mask unblocking a pending signal: %s, handler ran %d, at once %d\n", res(r, e),
         my_hits - before, now_s() - t < 1.0);
  CHECK(pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0);
  printf("mask restored after ppoll: USR1 blocked %d\n", sigismember(&cur, SIGUSR1));

  /* arrives during the wait */
  struct kick_sig k;
  long t0 = ticks;
  pthread_t kt = kick(&k, pthread_self(), SIGUSR1, 60, 0);
  before = my_hits;
  r = ppoll(&pfd, 1, &ts, &empty);
  e = errno;
  printf("ppoll interrupted during the wait: %s, handler ran %d\n", res(r, e), my_hits - before);
  printf("ticker progressed during ppoll: %d\n", progressed_during(t0));
  CHECK(pthread_join(kt, NULL) == 0);

  /* the mask keeps blocking: a signal sent meanwhile stays pending, the wait times out */
  sigset_t blk = only(SIGUSR1);
  struct timespec short_ts = {0, 150 * 1000000L};
  kt = kick(&k, pthread_self(), SIGUSR1, 30, 0);
  before = my_hits;
  r = ppoll(&pfd, 1, &short_ts, &blk);
  printf("ppoll with a blocking mask: %s, handler ran %d\n", res(r, errno), my_hits - before);
  CHECK(pthread_join(kt, NULL) == 0);
  CHECK(sigpending(&cur) == 0);
  printf("still pending: USR1 %d\n", sigismember(&cur, SIGUSR1));

  /* pselect with a mask: the pending one ends it */
  fd_set rd;
  FD_ZERO(&rd);
  FD_SET(p[0], &rd);
  before = my_hits;
  r = pselect(p[0] + 1, &rd, NULL, NULL, &ts, &empty);
  printf("pselect with a mask unblocking a pending signal: %s, handler ran %d\n", res(r, errno), my_hits - before);
  CHECK(close(p[0]) == 0 && close(p[1]) == 0);
  return NULL;
}

/* signal(7): sigtimedwait, sigwaitinfo and sigsuspend are never restarted, SA_RESTART or not; a
 * signalfd read is (it gets the signal sent after the handler ran). */
static void *restart_cases(void *arg) {
  (void)arg;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sig;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  sigset_t one = only(SIGUSR1), s = only(SIGUSR2);
  CHECK(pthread_sigmask(SIG_UNBLOCK, &one, NULL) == 0);
  struct kick_sig k;
  struct timespec ts = {3, 0};
  int before = my_hits;
  pthread_t kt = kick(&k, pthread_self(), SIGUSR1, 60, 0);
  int r = sigtimedwait(&s, NULL, &ts);
  printf("sigtimedwait, SA_RESTART handler of another signal: %s, handler ran %d\n", res(r, errno), my_hits - before);
  CHECK(pthread_join(kt, NULL) == 0);
  kt = kick(&k, pthread_self(), SIGUSR1, 60, 0);
  r = sigwaitinfo(&s, NULL);
  printf("sigwaitinfo, SA_RESTART handler: %s\n", res(r, errno));
  CHECK(pthread_join(kt, NULL) == 0);
  int fd = signalfd(-1, &s, SFD_CLOEXEC);
  CHECK(fd >= 0);
  struct kick_sig k2;
  kt = kick(&k, pthread_self(), SIGUSR1, 60, 0);
  pthread_t kt2 = kick(&k2, pthread_self(), SIGUSR2, 200, 0);
  struct signalfd_siginfo f;
  before = my_hits;
  ssize_t n = read(fd, &f, sizeof f);
  printf("signalfd read, SA_RESTART handler: %s signo USR2 %d, handler ran %d\n", res(n, errno),
         f.ssi_signo == SIGUSR2, my_hits - before);
  CHECK(pthread_join(kt, NULL) == 0 && pthread_join(kt2, NULL) == 0);
  CHECK(close(fd) == 0);
  CHECK(pthread_sigmask(SIG_BLOCK, &one, NULL) == 0);
  sa.sa_flags = 0;
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  return NULL;
}

static void run(void *(*fn)(void *)) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fn, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sig;
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);
  sigset_t both = only(SIGUSR1);
  sigaddset(&both, SIGUSR2);
  CHECK(pthread_sigmask(SIG_BLOCK, &both, NULL) == 0);

  pthread_t tk;
  CHECK(pthread_create(&tk, NULL, ticker, NULL) == 0);
  run(timedwait_cases);
  run(suspend_cases);
  run(signalfd_cases);
  run(ppoll_cases);
  run(restart_cases);
  stop = 1;
  CHECK(pthread_join(tk, NULL) == 0);
  printf("USR2 handler runs (all were waited for): %d\n", usr2_hits);
  printf("done\n");
  return 0;
}
