/* sig_daemon — the daemon pattern with signal masks (issue 11, acceptance 3): main blocks SIGUSR1 and
 * SIGTERM before making any thread; one thread waits in sigwait for SIGTERM while 6 service threads
 * work (counting, sleeping); one thread unblocks SIGUSR1 for itself, and a process-directed SIGUSR1
 * (kill(getpid())) runs the handler on that thread and cuts its sleep short with EINTR; threads
 * inherit their creator's mask; SIGTERM is finally taken by the sigwait thread, which shuts the
 * services down. */
#include <signal.h>

#include "progs_util.h"

#define NSERVICES 6

static _Atomic int stop, sleeping, services_up;
static _Atomic long counts[NSERVICES];
static pthread_t unblocker_th;
static _Atomic int handler_hits, handler_on_unblocker, handler_elsewhere;

static void on_usr1(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)uc;
  handler_hits++;
  if (pthread_equal(pthread_self(), unblocker_th)) handler_on_unblocker++;
  else handler_elsewhere++;
  if (si->si_code != SI_USER || si->si_pid != getpid()) handler_elsewhere += 100; /* kill()'s siginfo */
}

static int blocked(int sig) {
  sigset_t cur;
  CHECK(pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0);
  return sigismember(&cur, sig);
}

static void *service(void *arg) {
  long i = (long)(intptr_t)arg;
  __sync_fetch_and_add(&services_up, 1);
  while (!stop) {
    counts[i]++;
    msleep(2);
  }
  return NULL;
}

static void *sigwaiter(void *arg) {
  (void)arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  int r = sigwait(&set, &sig);
  printf("sigwait: %d %s\n", r, sig == SIGTERM ? "SIGTERM" : "other");
  stop = 1;
  return NULL;
}

static void *child_of_unblocker(void *arg) {
  (void)arg;
  printf("grandchild inherits: USR1 blocked %d, TERM blocked %d\n", blocked(SIGUSR1), blocked(SIGTERM));
  return NULL;
}

static void *unblocker(void *arg) {
  (void)arg;
  printf("unblocker inherits: USR1 blocked %d, TERM blocked %d\n", blocked(SIGUSR1), blocked(SIGTERM));
  sigset_t one, old;
  sigemptyset(&one);
  sigaddset(&one, SIGUSR1);
  CHECK(pthread_sigmask(SIG_UNBLOCK, &one, &old) == 0);
  printf("old mask had USR1: %d\n", sigismember(&old, SIGUSR1));
  printf("unblocker now: USR1 blocked %d, TERM blocked %d\n", blocked(SIGUSR1), blocked(SIGTERM));
  pthread_t g;
  CHECK(pthread_create(&g, NULL, child_of_unblocker, NULL) == 0);
  CHECK(pthread_join(g, NULL) == 0);
  struct timespec ts = {5, 0}, left = {0, 0};
  double t0 = now_s();
  sleeping = 1;
  int r = nanosleep(&ts, &left);
  int e = errno;
  double took = now_s() - t0;
  printf("unblocker's sleep: %s, cut short %d\n", res(r, e), took < 4.0 && left.tv_sec < 5);
  fprintf(stderr, "sleep took %.3f s, left %ld.%09ld\n", took, (long)left.tv_sec, left.tv_nsec);
  return NULL;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_usr1;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGTERM);
  CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0);

  pthread_t waiter, svc[NSERVICES];
  CHECK(pthread_create(&waiter, NULL, sigwaiter, NULL) == 0);
  for (long i = 0; i < NSERVICES; i++) CHECK(pthread_create(&svc[i], NULL, service, (void *)(intptr_t)i) == 0);
  CHECK(pthread_create(&unblocker_th, NULL, unblocker, NULL) == 0);

  for (int k = 0; k < 10000 && (!sleeping || services_up < NSERVICES); k++) msleep(1);
  CHECK(sleeping && services_up == NSERVICES);
  msleep(100); /* into its nanosleep */
  CHECK(kill(getpid(), SIGUSR1) == 0);
  CHECK(pthread_join(unblocker_th, NULL) == 0);
  printf("handler ran on the unblocker %d, elsewhere %d (hits %d)\n", handler_on_unblocker, handler_elsewhere,
         handler_hits);

  /* The services keep running while the sigwait thread waits. */
  long before[NSERVICES], all_moved = 1;
  for (int i = 0; i < NSERVICES; i++) before[i] = counts[i];
  msleep(200);
  for (int i = 0; i < NSERVICES; i++) all_moved &= counts[i] > before[i];
  printf("services progressed while sigwait waits: %ld\n", all_moved);
  printf("stopped before SIGTERM: %d\n", stop);

  CHECK(kill(getpid(), SIGTERM) == 0);
  CHECK(pthread_join(waiter, NULL) == 0);
  for (int i = 0; i < NSERVICES; i++) CHECK(pthread_join(svc[i], NULL) == 0);
  sigset_t pend;
  CHECK(sigpending(&pend) == 0);
  printf("main: pending USR1 %d, TERM %d\n", sigismember(&pend, SIGUSR1), sigismember(&pend, SIGTERM));
  printf("done\n");
  return 0;
}
