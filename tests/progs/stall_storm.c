/* stall_storm — a storm of blocking calls no hook emulates: 1000 threads, released together by a
 * barrier, each block 50 ms in a raw nanosleep system call (syscall(SYS_nanosleep), which no preload
 * can interpose). Natively that is 1000 kernel tasks sleeping at once: the storm takes about 50 ms
 * after the threads are made.
 *
 * A runtime that runs threads as coroutines on a few OS threads has to give the blocked ones OS
 * threads of their own for the while (else they sleep one after another: 50 s on one worker), and
 * must give those OS threads back afterwards: once every thread is joined, the process's OS thread
 * count (/proc/self/status, Threads:) has to come down to a handful again (polled for up to 5 s).
 *
 * stdout: whether all completed, whether the storm took under 20 s, and threads_back: yes if the
 * count came down to 16 or fewer. A storm not done after 30 s is reported as such and the program
 * ends there, without waiting for the rest. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "progs_util.h"

enum { N = 1000, BLOCK_MS = 50, GIVE_UP_S = 30, THREADS_BACK = 16 };

static pthread_barrier_t go;
static _Atomic int done;

static void *storm(void *arg) {
  (void)arg;
  pthread_barrier_wait(&go);
  struct timespec ts = {0, BLOCK_MS * 1000000L};
  while (syscall(SYS_nanosleep, &ts, &ts) != 0) CHECK(errno == EINTR);
  done++;
  return NULL;
}

int main(void) {
  static pthread_t t[N];
  pthread_attr_t a;
  CHECK(pthread_attr_init(&a) == 0);
  CHECK(pthread_attr_setstacksize(&a, 64 * 1024) == 0); /* 1000 native threads: keep them small */
  CHECK(pthread_barrier_init(&go, NULL, N) == 0);
  double t0 = now_s();
  for (int i = 0; i < N; i++) {
    int r = pthread_create(&t[i], &a, storm, NULL);
    if (r) {
      fprintf(stderr, "pthread_create %d: %s\n", i, strerror(r));
      return 1;
    }
  }
  int most = os_threads();
  /* Wait for the storm with a deadline (a join cannot have one portably). */
  while (done < N && now_s() - t0 < GIVE_UP_S) msleep(10);
  double took = now_s() - t0;
  fprintf(stderr, "%d of %d done after %.3f s; %d OS threads while the threads were alive\n", (int)done,
          N, took, most);
  if (done < N) {
    printf("all %d threads completed: no (%d after %d s)\n", N, (int)done, GIVE_UP_S);
    fflush(stdout);
    _exit(1);
  }
  for (int i = 0; i < N; i++) CHECK(pthread_join(t[i], NULL) == 0);
  CHECK(pthread_barrier_destroy(&go) == 0);
  CHECK(pthread_attr_destroy(&a) == 0);
  printf("all %d threads completed: yes\n", N);
  printf("storm took under 20 s: %s\n", took < 20 ? "yes" : "no");

  double s0 = now_s();
  int n = os_threads();
  while (n > THREADS_BACK && now_s() - s0 < 5) {
    msleep(50);
    n = os_threads();
  }
  fprintf(stderr, "%d OS threads %.3f s after the joins\n", n, now_s() - s0);
  printf("threads_back: %s\n", n <= THREADS_BACK ? "yes" : "no");
  return 0;
}
