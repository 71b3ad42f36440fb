/* fork_from_thread — issue 11: a coroutine-thread forks while 20 other threads are blocked in read.
 * The child keeps the forking thread's identity (pthread_self, TLS), makes and joins 10 threads,
 * forks a grandchild that does the same, and is ended by SIGTERM (default action) as natively;
 * the parent's threads carry on. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static int p[2];
static __thread int tlsv = 0;
static void *blocked(void *a) { char c; (void)a; (void)!read(p[0], &c, 1); return NULL; }
static void *child_thr(void *a) { return (void *)((long)a * 2); }
static int make_join(int n) {
  pthread_t t[16]; long sum = 0;
  for (int i = 0; i < n; i++) if (pthread_create(&t[i], 0, child_thr, (void *)(long)i)) return -1;
  for (int i = 0; i < n; i++) { void *r; pthread_join(t[i], &r); sum += (long)r; }
  return (int)sum;
}
static pthread_t forker_self;
/* pthread_self() is declared const: without a call of its own in the child the compiler reuses the
 * value from before fork(), and the comparison below would test nothing. */
static __attribute__((noinline)) pthread_t self_now(void) {
  pthread_t t = pthread_self();
  __asm__ volatile("" : "+r"(t));
  return t;
}
static void *forker(void *a) {
  (void)a; tlsv = 77; forker_self = self_now();
  pid_t pid = fork();
  if (pid == 0) {
    printf("child: self same=%d tls=%d sum=%d\n", pthread_equal(self_now(), forker_self), tlsv, make_join(10));
    fflush(stdout);
    pid_t g = fork();
    if (g == 0) { printf("grandchild: sum=%d\n", make_join(10)); fflush(stdout); _exit(3); }
    int st; waitpid(g, &st, 0); printf("child: grandchild exit=%d\n", WEXITSTATUS(st)); fflush(stdout);
    for (;;) pause();
  }
  usleep(300000);
  kill(pid, SIGTERM);
  int st; waitpid(pid, &st, 0);
  printf("parent: child signaled=%d sig=%d\n", WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  return NULL;
}
/* The forked thread returns in the child: the last thread's end is the process's exit(0). */
static void *forker_returns(void *a) {
  (void)a;
  pthread_t me = self_now();
  pid_t pid = fork();
  if (pid == 0) {
    printf("child2: self same=%d\n", pthread_equal(self_now(), me));
    return NULL;
  }
  int st;
  waitpid(pid, &st, 0);
  printf("parent: child2 exited=%d status=%d\n", WIFEXITED(st), WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (pipe(p)) return 1;
  pthread_t b[20], f;
  for (int i = 0; i < 20; i++) pthread_create(&b[i], 0, blocked, 0);
  pthread_create(&f, 0, forker, 0); pthread_join(f, 0);
  pthread_create(&f, 0, forker_returns, 0); pthread_join(f, 0);
  (void)!write(p[1], "xxxxxxxxxxxxxxxxxxxx", 20);
  for (int i = 0; i < 20; i++) pthread_join(b[i], 0);
  printf("parent: all joined\n");
  return 0;
}
