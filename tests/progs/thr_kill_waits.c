/* thr_kill_waits — daemons signal their threads (shutdown, reload): pthread_kill with a handler to a
 * thread that is waiting in pthread_mutex_lock, a read lock, a write lock, a barrier,
 * pthread_cond_timedwait, pthread_once and pthread_join. Natively the handler runs on that thread and
 * the wait goes on until the resource is released; the wait then completes normally. 20 rounds of
 * each, three signals per round, handler installed without SA_RESTART (none of these waits returns
 * EINTR natively).
 * stdout: per kind, rounds completed and whether the handler ran in every round. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "thr_util.h"

enum { ROUNDS = 20, KILLS = 3 };

static _Atomic int handled;      /* handler runs, all threads */
static _Atomic int waiting;      /* the waiter is about to block */
static _Atomic int go;           /* once/join: let the blocker finish */
static pthread_t target;         /* the waiter being signalled this round */
static _Atomic int ran_on_target; /* a handler ran on it */

static void on_usr1(int sig) {
  (void)sig;
  if (pthread_equal(pthread_self(), target)) atomic_store(&ran_on_target, 1);
  atomic_fetch_add(&handled, 1);
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_barrier_t bar;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ready;
static pthread_once_t once;
static pthread_t blocker;

enum kind { MUTEX, RDLOCK, WRLOCK, BARRIER, CONDTIMED, ONCE, JOIN, NKINDS };
static const char *names[NKINDS] = {"mutex", "rdlock", "wrlock", "barrier", "cond_timedwait", "once", "join"};

static void once_init(void) {
  while (!atomic_load(&go)) usleep(1000);
}

static void *once_blocker(void *p) {
  (void)p;
  pthread_once(&once, once_init);
  return NULL;
}

static void *join_blocker(void *p) {
  (void)p;
  while (!atomic_load(&go)) usleep(1000);
  return (void *)42;
}

static void *waiter(void *p) {
  enum kind k = (enum kind)(long)p;
  long ok = 0;
  atomic_store(&waiting, 1);
  switch (k) {
  case MUTEX:
    ok = pthread_mutex_lock(&mu) == 0 && pthread_mutex_unlock(&mu) == 0;
    break;
  case RDLOCK:
    ok = pthread_rwlock_rdlock(&rw) == 0 && pthread_rwlock_unlock(&rw) == 0;
    break;
  case WRLOCK:
    ok = pthread_rwlock_wrlock(&rw) == 0 && pthread_rwlock_unlock(&rw) == 0;
    break;
  case BARRIER: {
    int r = pthread_barrier_wait(&bar);
    ok = r == 0 || r == PTHREAD_BARRIER_SERIAL_THREAD;
    break;
  }
  case CONDTIMED: {
    struct timespec ts = thr_in_ms(CLOCK_REALTIME, 10000);
    int r = 0;
    pthread_mutex_lock(&mu);
    while (!ready && r == 0) r = pthread_cond_timedwait(&cv, &mu, &ts);
    ok = ready && r == 0;
    pthread_mutex_unlock(&mu);
    break;
  }
  case ONCE:
    ok = pthread_once(&once, once_init) == 0 && atomic_load(&go);
    break;
  case JOIN: {
    void *rv = NULL;
    ok = pthread_join(blocker, &rv) == 0 && rv == (void *)42;
    break;
  }
  default:
    break;
  }
  return (void *)ok;
}

/* One round: hold the resource, start the waiter, signal it while it waits, release, join. */
static int round_of(enum kind k, int *handler_ran) {
  atomic_store(&waiting, 0);
  atomic_store(&go, 0);
  ready = 0;
  switch (k) {
  case MUTEX: pthread_mutex_lock(&mu); break;
  case RDLOCK: pthread_rwlock_wrlock(&rw); break;
  case WRLOCK: pthread_rwlock_rdlock(&rw); break;
  case BARRIER: pthread_barrier_init(&bar, NULL, 2); break;
  case ONCE: once = (pthread_once_t)PTHREAD_ONCE_INIT; pthread_create(&blocker, NULL, once_blocker, NULL); break;
  case JOIN: pthread_create(&blocker, NULL, join_blocker, NULL); break;
  default: break;
  }
  if (k == ONCE) usleep(5000); /* the blocker is inside once_init first */
  pthread_t t;
  if (pthread_create(&t, NULL, waiter, (void *)(long)k) != 0) return 0;
  while (!atomic_load(&waiting)) usleep(500);
  usleep(5000); /* it is blocked now */
  target = t;
  atomic_store(&ran_on_target, 0);
  for (int i = 0; i < KILLS; i++) {
    pthread_kill(t, SIGUSR1);
    usleep(3000);
  }
  /* Generous: on a loaded machine the handler may take a while to be scheduled. */
  for (int k = 0; k < 2000 && !atomic_load(&ran_on_target); k++) usleep(1000);
  *handler_ran = atomic_load(&ran_on_target);
  switch (k) {
  case MUTEX: pthread_mutex_unlock(&mu); break;
  case RDLOCK: case WRLOCK: pthread_rwlock_unlock(&rw); break;
  case BARRIER: pthread_barrier_wait(&bar); break;
  case CONDTIMED:
    pthread_mutex_lock(&mu);
    ready = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    break;
  case ONCE: case JOIN: atomic_store(&go, 1); break;
  default: break;
  }
  void *rv = NULL;
  pthread_join(t, &rv);
  if (k == ONCE) pthread_join(blocker, NULL);
  if (k == BARRIER) pthread_barrier_destroy(&bar);
  return rv == (void *)1;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  expect("sigaction", sigaction(SIGUSR1, &sa, NULL) == 0 ? 0 : errno, 0);
  for (int k = 0; k < NKINDS; k++) {
    int completed = 0, ran = 0;
    for (int r = 0; r < ROUNDS; r++) {
      int h = 0;
      completed += round_of((enum kind)k, &h);
      ran += h;
    }
    printf("%s: %d of %d waits completed, handler ran on the waiter in %s round\n", names[k], completed,
           ROUNDS, ran == ROUNDS ? "every" : "NOT every");
    if (completed != ROUNDS || ran != ROUNDS) failures++;
  }
  printf("result: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
