/* proc_wait — blocking waits for children from many threads at once, as a job runner does:
 * 10 threads each fork a child that sleeps 300 ms and waitpid() it (natively ~0.3 s in all; a wait
 * that blocked its OS thread would serialise them); 8 threads each run system("sleep 0.3; exit N");
 * then the exact results of every wait flavour (status, rusage of wait4, waitid's siginfo, wait(),
 * wait3, ECHILD, WNOHANG), and signal(7) for a wait: a handler installed without SA_RESTART ends it
 * with EINTR, one with SA_RESTART lets it go on (delivered with pthread_kill to the main thread and
 * to a created thread while they wait).
 * stdout: booleans for the timings (generous bounds), exit statuses, results. */
#include <signal.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "progs_util.h"

enum { FORKERS = 10, SYSTEMS = 8 };

static pid_t child_sleeping(int ms, int code) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    _exit(code);
  }
  return pid;
}

static void *forker(void *p) {
  long i = (long)p;
  pid_t pid = child_sleeping(300, 10 + (int)i);
  int st = -1;
  pid_t r = waitpid(pid, &st, 0);
  return (void *)(long)(r == pid && WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void *systemer(void *p) {
  long i = (long)p;
  char cmd[64];
  snprintf(cmd, sizeof cmd, "sleep 0.3; exit %ld", 20 + i);
  int st = system(cmd);
  return (void *)(long)(WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void concurrent(const char *what, void *(*fn)(void *), int n, int base) {
  pthread_t t[FORKERS > SYSTEMS ? FORKERS : SYSTEMS];
  double t0 = now_s();
  for (long i = 0; i < n; i++) CHECK(pthread_create(&t[i], NULL, fn, (void *)i) == 0);
  int right = 0;
  for (int i = 0; i < n; i++) {
    void *r;
    CHECK(pthread_join(t[i], &r) == 0);
    right += (long)r == base + i;
  }
  double took = now_s() - t0;
  printf("%s from %d threads: %d right statuses, concurrent (< 1.5 s): %s\n", what, n, right,
         took < 1.5 ? "yes" : "no");
  fprintf(stderr, "%s: %.3f s\n", what, took);
}

/* ---- signal(7): EINTR without SA_RESTART, restart with it ---------------------------------------- */


/* This thread waits for a child that exits after 300 ms; a handler arrives at 60 ms. */
static const char *wait_interrupted(bool restart, int flavour) {
  struct sigaction sa = {.sa_handler = usr1_count, .sa_flags = restart ? SA_RESTART : 0};
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  pid_t pid = child_sleeping(300, 5);
  struct kick k = {pthread_self()};
  pthread_t kt;
  int before = usr1_handled;
  CHECK(pthread_create(&kt, NULL, kick_after_60ms, &k) == 0);
  int st = -1;
  long r;
  siginfo_t si;
  if (flavour == 0) r = waitpid(pid, &st, 0);
  else if (flavour == 1) r = wait4(pid, &st, 0, NULL);
  else r = waitid(P_PID, (id_t)pid, &si, WEXITED);
  int e = errno;
  CHECK(pthread_join(kt, NULL) == 0);
  static char out[96];
  if (r < 0) {
    CHECK(waitpid(pid, &st, 0) == pid); /* reap it */
    snprintf(out, sizeof out, "-1 %s, handler ran: %s", errname(e), usr1_handled > before ? "yes" : "no");
  } else {
    bool right = flavour == 2 ? (r == 0 && si.si_pid == pid && si.si_status == 5)
                              : (r == pid && WIFEXITED(st) && WEXITSTATUS(st) == 5);
    snprintf(out, sizeof out, "child's status: %s, handler ran: %s", right ? "right" : "WRONG",
             usr1_handled > before ? "yes" : "no");
  }
  return out;
}

static const char *flavours[] = {"waitpid", "wait4", "waitid"};

static void *interrupted_thread(void *p) {
  (void)p;
  for (int f = 0; f < 3; f++) {
    printf("thread: %s, handler without SA_RESTART: %s\n", flavours[f], wait_interrupted(false, f));
    printf("thread: %s, handler with SA_RESTART: %s\n", flavours[f], wait_interrupted(true, f));
  }
  return NULL;
}

/* ---- exact results of each flavour --------------------------------------------------------------- */

static void *flavours_thread(void *p) {
  (void)p;
  int st = -1;
  /* wait4 with rusage: the child burnt some CPU, so its user+system time is not zero */
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    double t0 = cpu_s();
    while (cpu_s() - t0 < 0.05) {
    }
    msleep(100);
    _exit(7);
  }
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  pid_t r = wait4(pid, &st, 0, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
               ru.ru_stime.tv_usec / 1e6;
  printf("wait4: right pid %s, exit %d, rusage has the child's CPU time: %s\n", r == pid ? "yes" : "no",
         WIFEXITED(st) ? WEXITSTATUS(st) : -1, cpu >= 0.03 ? "yes" : "no");

  /* waitid P_PID: the siginfo */
  pid = child_sleeping(100, 9);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int w = waitid(P_PID, (id_t)pid, &si, WEXITED);
  printf("waitid P_PID: %d, si_signo SIGCHLD %s, si_code CLD_EXITED %s, right pid %s, status %d\n", w,
         si.si_signo == SIGCHLD ? "yes" : "no", si.si_code == CLD_EXITED ? "yes" : "no",
         si.si_pid == pid ? "yes" : "no", si.si_status);

  /* WNOWAIT leaves it waitable; then waitpid reaps it */
  pid = child_sleeping(100, 11);
  memset(&si, 0, sizeof si);
  w = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
  printf("waitid WNOWAIT: %d, status %d; ", w, si.si_status);
  r = waitpid(pid, &st, 0);
  printf("then waitpid: right pid %s, exit %d\n", r == pid ? "yes" : "no", WEXITSTATUS(st));

  /* a child killed by a signal */
  pid = child_sleeping(5000, 0);
  msleep(50);
  CHECK(kill(pid, SIGTERM) == 0);
  r = waitpid(pid, &st, 0);
  printf("killed child: signalled %s, by SIGTERM %s\n", r == pid && WIFSIGNALED(st) ? "yes" : "no",
         WTERMSIG(st) == SIGTERM ? "yes" : "no");

  /* stopped and continued: WUNTRACED and WCONTINUED */
  pid = child_sleeping(400, 4);
  msleep(50);
  CHECK(kill(pid, SIGSTOP) == 0);
  r = waitpid(pid, &st, WUNTRACED);
  printf("WUNTRACED: stopped %s by SIGSTOP %s\n", r == pid && WIFSTOPPED(st) ? "yes" : "no",
         WSTOPSIG(st) == SIGSTOP ? "yes" : "no");
  CHECK(kill(pid, SIGCONT) == 0);
  r = waitpid(pid, &st, WCONTINUED);
  printf("WCONTINUED: continued %s\n", r == pid && WIFCONTINUED(st) ? "yes" : "no");
  r = waitpid(pid, &st, 0);
  printf("then: exit %d\n", r == pid && WIFEXITED(st) ? WEXITSTATUS(st) : -1);

  /* wait() and wait3() for any child; waitpid(0) for the process group; waitid(P_ALL) */
  pid = child_sleeping(150, 12);
  r = wait(&st);
  printf("wait: right pid %s, exit %d\n", r == pid ? "yes" : "no", WEXITSTATUS(st));
  pid = child_sleeping(150, 13);
  r = wait3(&st, 0, &ru);
  printf("wait3: right pid %s, exit %d\n", r == pid ? "yes" : "no", WEXITSTATUS(st));
  pid = child_sleeping(150, 14);
  r = waitpid(0, &st, 0);
  printf("waitpid(0): right pid %s, exit %d\n", r == pid ? "yes" : "no", WEXITSTATUS(st));
  pid = child_sleeping(150, 15);
  memset(&si, 0, sizeof si);
  w = waitid(P_ALL, 0, &si, WEXITED);
  printf("waitid P_ALL: %d, right pid %s, status %d\n", w, si.si_pid == pid ? "yes" : "no", si.si_status);
  pid = child_sleeping(150, 16);
  r = waitpid(-getpgrp(), &st, 0);
  printf("waitpid(-pgrp): right pid %s, exit %d\n", r == pid ? "yes" : "no", WEXITSTATUS(st));

  /* errors and WNOHANG */
  printf("waitpid, no children: %s\n", RES(waitpid(-1, &st, 0)));
  printf("waitpid, not a child: %s\n", RES(waitpid(1, &st, 0)));
  printf("waitid, no children: %s\n", RES(waitid(P_ALL, 0, &si, WEXITED)));
  printf("waitid, no options: %s\n", RES(waitid(P_ALL, 0, &si, 0)));
  pid = child_sleeping(200, 17);
  printf("WNOHANG while it runs: %s\n", RES(waitpid(pid, &st, WNOHANG)));
  r = waitpid(pid, &st, 0);
  printf("then: exit %d\n", r == pid ? WEXITSTATUS(st) : -1);
  /* a child that is already a zombie when the wait starts */
  pid = child_sleeping(0, 18);
  msleep(100);
  r = waitpid(pid, &st, 0);
  printf("zombie: exit %d\n", r == pid ? WEXITSTATUS(st) : -1);
  return NULL;
}

int main(void) {
  concurrent("fork+waitpid", forker, FORKERS, 10);
  concurrent("system()", systemer, SYSTEMS, 20);
  int st = system(NULL);
  printf("system(NULL): %s\n", st ? "a shell" : "no shell");
  st = system("exit 3");
  printf("system(\"exit 3\"): exited %s, status %d\n", WIFEXITED(st) ? "yes" : "no", WEXITSTATUS(st));
  st = system("kill -TERM $$");
  printf("system(kill self): signalled %s, SIGTERM %s\n", WIFSIGNALED(st) ? "yes" : "no",
         WTERMSIG(st) == SIGTERM ? "yes" : "no");

  pthread_t t;
  CHECK(pthread_create(&t, NULL, flavours_thread, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);

  for (int f = 0; f < 3; f++) {
    printf("main: %s, handler without SA_RESTART: %s\n", flavours[f], wait_interrupted(false, f));
    printf("main: %s, handler with SA_RESTART: %s\n", flavours[f], wait_interrupted(true, f));
  }
  CHECK(pthread_create(&t, NULL, interrupted_thread, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  return 0;
}
