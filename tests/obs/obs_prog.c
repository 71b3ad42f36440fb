/*
 * obs_prog.c — a plain pthread program for the observability tests (check_obs.sh); it knows nothing
 * of cohook. What it does depends on its one argument:
 *
 *   spin      a thread computes for 200 ms in spin_200ms() while two others sleep in short steps
 *   syscall   a thread blocks 200 ms in a raw nanosleep system call (no libc wrapper to hook), in
 *             blocked_in_syscall(), while another sleeps in short steps
 *   run1s     four threads sleep and hand a mutex around for about one second
 *   fork      makes a thread, forks; the child makes a thread and exits with exit(), the parent waits
 *   idle      two threads sleep 5 s
 *
 * It prints "done" and exits 0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* Busy for 200 ms, mostly in its own loop (the clock is read once per ~100 000 iterations). */
__attribute__((noinline)) void spin_200ms(void) {
  uint64_t end = now_ms() + 200;
  do {
    for (volatile unsigned i = 0; i < 100000; i++) {
    }
  } while (now_ms() < end);
}

__attribute__((noinline)) void blocked_in_syscall(void) {
  struct timespec ts = {0, 200 * 1000 * 1000};
  syscall(SYS_nanosleep, &ts, NULL);
}

static void *spinner(void *arg) {
  (void)arg;
  usleep(20 * 1000); /* let the others get going: the spin happens while they exist */
  spin_200ms();
  return NULL;
}

static void *raw_sleeper(void *arg) {
  (void)arg;
  usleep(20 * 1000);
  blocked_in_syscall();
  return NULL;
}

static void *napper(void *arg) {
  int steps = (int)(intptr_t)arg;
  for (int i = 0; i < steps; i++) usleep(10 * 1000);
  return NULL;
}

static void *sleeper(void *arg) {
  (void)arg;
  sleep(5);
  return NULL;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long shared_count;

static void *worker(void *arg) {
  (void)arg;
  uint64_t end = now_ms() + 1000;
  while (now_ms() < end) {
    pthread_mutex_lock(&mu);
    shared_count++;
    pthread_mutex_unlock(&mu);
    usleep(5 * 1000);
  }
  return NULL;
}

static void run(void *(*fn)(void *), void *arg, int n) {
  pthread_t t[8];
  for (int i = 0; i < n; i++)
    if (pthread_create(&t[i], NULL, fn, arg) != 0) exit(2);
  for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "spin") == 0) {
    pthread_t a, b, c;
    pthread_create(&a, NULL, napper, (void *)(intptr_t)30);
    pthread_create(&b, NULL, spinner, NULL);
    pthread_create(&c, NULL, napper, (void *)(intptr_t)30);
    pthread_join(a, NULL), pthread_join(b, NULL), pthread_join(c, NULL);
  } else if (strcmp(mode, "syscall") == 0) {
    pthread_t a, b;
    pthread_create(&a, NULL, napper, (void *)(intptr_t)30);
    pthread_create(&b, NULL, raw_sleeper, NULL);
    pthread_join(a, NULL), pthread_join(b, NULL);
  } else if (strcmp(mode, "run1s") == 0) {
    run(worker, NULL, 4);
  } else if (strcmp(mode, "idle") == 0) {
    run(sleeper, NULL, 2);
  } else if (strcmp(mode, "fork") == 0) {
    run(napper, (void *)(intptr_t)2, 1);
    fflush(stdout);
    pid_t p = fork();
    if (p < 0) return 2;
    if (p == 0) {
      run(napper, (void *)(intptr_t)1, 1);
      exit(0);
    }
    int st;
    if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 3;
  } else {
    fprintf(stderr, "usage: obs_prog spin|syscall|run1s|fork|idle\n");
    return 2;
  }
  printf("done\n");
  return 0;
}
