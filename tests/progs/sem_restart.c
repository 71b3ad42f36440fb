/* sem_restart — signal(7) for semaphores, as Linux does it: sem_wait interrupted by a handler installed
 * with SA_RESTART goes on waiting (its futex wait is restarted, since Linux 2.6.22) and fails with EINTR
 * after one installed without; sem_timedwait fails with EINTR either way. Each case is run by the main
 * thread and by a created thread, signalled with pthread_kill while it waits (at 40 ms), then posted
 * (at 300 ms).
 * stdout: one line per case with sem_wait's result. */
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <signal.h>
#include <unistd.h>

#include "progs.h"

static sem_t sem;
static _Atomic int handled;

static void on_usr1(int sig) {
  (void)sig;
  handled++;
}

struct target {
  pthread_t who;
};

static void *poster(void *p) {
  (void)p;
  usleep(300000); /* well after the signal, even on a loaded machine */
  sem_post(&sem);
  return NULL;
}

static void *killer(void *p) {
  usleep(40000);
  pthread_kill(((struct target *)p)->who, SIGUSR1);
  return NULL;
}

/* Wait on sem while a handler is delivered to this thread at 40 ms and a post arrives at 300 ms. */
static const char *wait_case(bool timed) {
  struct target t = {pthread_self()};
  pthread_t a, b;
  CHECK(pthread_create(&a, NULL, poster, NULL) == 0);
  CHECK(pthread_create(&b, NULL, killer, &t) == 0);
  int r;
  if (timed) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    r = sem_timedwait(&sem, &ts);
  } else {
    r = sem_wait(&sem);
  }
  int e = errno;
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  if (r != 0) CHECK(sem_wait(&sem) == 0); /* take the post that came after the EINTR */
  return r == 0 ? "0" : e == EINTR ? "EINTR" : "other error";
}

static void *in_thread(void *timed) { return (void *)wait_case(timed != NULL); }

int main(void) {
  CHECK(sem_init(&sem, 0, 0) == 0);
  for (int restart = 0; restart < 2; restart++) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    for (int timed = 0; timed < 2; timed++) {
      const char *fn = timed ? "sem_timedwait" : "sem_wait";
      const char *how = restart ? "SA_RESTART" : "no SA_RESTART";
      printf("main thread, %s, %s: %s\n", fn, how, wait_case(timed));
      pthread_t t;
      void *res;
      CHECK(pthread_create(&t, NULL, in_thread, timed ? (void *)1 : NULL) == 0);
      CHECK(pthread_join(t, &res) == 0);
      printf("created thread, %s, %s: %s\n", fn, how, (const char *)res);
    }
  }
  printf("handlers ran: %s\n", handled == 8 ? "8" : "not 8");
  return 0;
}
